"""One line of a glog log: ``[IWEF]MMDD HH:MM:SS.uuuuuu threadid file:line] message``.

The file:line part differs between Caffe versions, so nothing here depends on it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

_LINE = re.compile(r"([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) +(\d+) ([^\]]*)\] ?(.*)")


@dataclass(frozen=True)
class GlogLine:
    level: str
    month: int
    day: int
    seconds: float  # since midnight
    source: str
    message: str


def parse_line(line: str) -> Optional[GlogLine]:
    """The parts of a glog line, or None for any other line (a traceback, a printed net...)."""
    m = _LINE.match(line)
    if m is None:
        return None
    level, month, day, hh, mm, ss, us, _, source, message = m.groups()
    seconds = int(hh) * 3600 + int(mm) * 60 + int(ss) + int(us) / 1e6
    return GlogLine(level, int(month), int(day), seconds, source, message.rstrip("\r\n"))


def parse_value(text: str) -> float:
    """A number as Caffe prints it, ``nan``, ``-nan``, ``inf`` and ``-inf`` included.

    Raises:
        ValueError: not a number.
    """
    text = text.strip()
    lowered = text.lower()
    if lowered in ("nan", "-nan", "+nan"):
        return math.nan
    return float(text)
