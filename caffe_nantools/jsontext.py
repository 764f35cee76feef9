"""JSON output that stays valid JSON: a NaN or infinite number is written as the string
``"nan"``, ``"inf"`` or ``"-inf"`` (Python's json would write the bare tokens NaN/Infinity,
which strict parsers such as JavaScript's and jq reject)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Collection, Mapping


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


def fields_dict(
    record: Any,
    *,
    keys: Mapping[str, str] = {},
    convert: Mapping[str, Callable[[Any], Any]] = {},
    leave_out: Collection[str] = (),
) -> dict:
    """A dataclass's fields as a JSON record, in field order: ``keys`` gives a field another
    key (``pass_`` is ``pass``), ``convert`` another value, ``leave_out`` names fields not
    written. A value with a ``to_dict`` (a nested record) is written as what it returns."""
    out = {}
    for f in dataclasses.fields(record):
        if f.name in leave_out:
            continue
        value = getattr(record, f.name)
        if f.name in convert:
            value = convert[f.name](value)
        elif hasattr(value, "to_dict"):
            value = value.to_dict()
        out[keys.get(f.name, f.name)] = value
    return out
