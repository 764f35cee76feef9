"""JSON output that stays valid JSON: a NaN or infinite number is written as the string
``"nan"``, ``"inf"`` or ``"-inf"`` (Python's json would write the bare tokens NaN/Infinity,
which strict parsers such as JavaScript's and jq reject)."""

from __future__ import annotations

import json
import math
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """``value`` as indented JSON, non-finite numbers as strings."""
    return json.dumps(_plain(value), indent=2, allow_nan=False)
