"""JSON output that stays valid JSON: a NaN or infinite number is written as the string
``"nan"``, ``"inf"`` or ``"-inf"`` (Python's json would write the bare tokens NaN/Infinity,
which strict parsers such as JavaScript's and jq reject)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Collection, Mapping, Optional, Sequence


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
    names: Optional[Sequence[str]] = None,
    keys: Mapping[str, str] = {},
    convert: Mapping[str, Callable[[Any], Any]] = {},
    leave_out: Collection[str] = (),
    inline: Collection[str] = (),
    unless_empty: Collection[str] = (),
) -> dict:
    """A record's fields as a JSON record, in order: a dataclass's fields, or the attributes
    ``names`` (properties too; ``a.b`` is the field ``b`` of the field ``a``, written as ``b``).

    ``keys`` gives a field another key (``pass_`` is ``pass``), ``convert`` another value,
    ``leave_out`` names fields not written, ``inline`` nested records whose entries are written
    in the field's place, ``unless_empty`` fields written only when they hold something. A
    nested record (a value with a ``to_dict``, or a dataclass), in a field or in its lists and
    dicts, is written as its own record."""
    out = {}
    for name in names if names is not None else [f.name for f in dataclasses.fields(record)]:
        if name in leave_out:
            continue
        value = record
        for part in name.split("."):
            value = getattr(value, part)
        if name in unless_empty and not value:
            continue
        value = convert[name](value) if name in convert else _records(value)
        if name in inline:
            out.update(value)
        else:
            out[keys.get(name, name.rsplit(".", 1)[-1])] = value
    return out


def _records(value: Any) -> Any:
    """``value`` with the records in it written as their JSON records."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_dict(value)
    if isinstance(value, dict):
        return {key: _records(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_records(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_records(item) for item in value)
    return value
