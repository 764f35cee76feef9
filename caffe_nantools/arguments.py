"""Checks of the arguments of the library's public functions, done first, before anything is
read or run: a wrong kind or value is one :class:`ArgumentError` naming the argument as Python
does (``every=0: must be 1 or more``), which the CLI says in its flags' terms
(``--every 0: must be 1 or more``).

Each check returns the value as the function goes on with it (a path as ``str``, a list of paths
as a list), and lets ``None`` through where ``optional`` says so.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import List, Optional

from caffe_nantools.errors import NanToolsError


class ArgumentError(NanToolsError, ValueError):
    """An argument of a library function that it cannot take: the message names it."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong kind (a string where a number goes, one path for a list)."""


def _refuse(kind: type, name: str, value: object, why: str) -> ArgumentError:
    return kind("{%s}: %s" % (name, why), arguments={name: value})


def whole(name: str, value: object, minimum: int = 1, *, optional: bool = False) -> Optional[int]:
    """An integer of ``minimum`` or more (numpy's integers too; not a bool, not 2.0)."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise _refuse(ArgumentTypeError, name, value, f"must be an integer ({minimum} or more)")
    if value < minimum:
        raise _refuse(ArgumentError, name, value, f"must be {minimum} or more")
    return int(value)


def positive(name: str, value: object, *, optional: bool = False) -> Optional[float]:
    """A finite number above 0 (a threshold, a timeout)."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise _refuse(ArgumentTypeError, name, value, "must be a number")
    if not (math.isfinite(value) and value > 0):
        raise _refuse(ArgumentError, name, value, "must be a finite number above 0")
    return float(value)


def flag(name: str, value: object) -> bool:
    """True or False (numpy's bool too): a string such as "no" would count as true."""
    if type(value).__name__ not in ("bool", "bool_"):
        raise _refuse(ArgumentTypeError, name, value, "must be True or False")
    return bool(value)


def path(name: str, value: object, *, optional: bool = False) -> Optional[str]:
    """A file or folder name: a ``str`` or an ``os.PathLike`` (an ``int`` would open a file
    descriptor, bytes are not what the messages can show)."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _refuse(ArgumentTypeError, name, value, "must be a path (a str or os.PathLike)")
    if not value:
        raise _refuse(ArgumentError, name, value, "an empty path")
    return value


def paths(name: str, value: object) -> List[str]:
    """One or more paths in a list or tuple: a single path here would be read letter by letter."""
    return [path(name, item) for item in _listed(name, value, "paths")]


def names(name: str, value: object) -> List[str]:
    """One or more non-empty strings in a list or tuple (blob names, patterns)."""
    items = _listed(name, value, "strings")
    if not all(isinstance(item, str) and item for item in items):
        raise _refuse(ArgumentTypeError, name, value, "must be a list of non-empty strings")
    return list(items)


def command(name: str, value: object) -> List[str]:
    """A command line as a list or tuple of strings (one string would be run letter by letter;
    an empty one is left to the caller, which says what to give)."""
    if isinstance(value, (list, tuple)) and not value:
        return []
    items = _listed(name, value, "strings")
    if not all(isinstance(item, str) for item in items):
        raise _refuse(ArgumentTypeError, name, value, "must be a list of strings")
    return items


def _listed(name: str, value: object, what: str) -> list:
    if isinstance(value, (str, bytes, os.PathLike)):
        raise _refuse(ArgumentTypeError, name, value, f"must be a list of {what}, not one")
    if not isinstance(value, (list, tuple)):
        raise _refuse(ArgumentTypeError, name, value, f"must be a list of {what}")
    if not value:
        raise _refuse(ArgumentError, name, value, "an empty list")
    return list(value)
