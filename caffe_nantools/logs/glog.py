"""One line of a glog log: ``[IWEF]MMDD HH:MM:SS.uuuuuu threadid file:line] message``, or
``[IWEF]YYYYMMDD ...`` (glog 0.5 and later put the year first by default: a Caffe built on a
recent system logs so).

The file:line part differs between Caffe versions, so nothing here depends on it. Lines as users
have them (quoted, numbered, behind a job runner's prefix, retyped without any prefix, or from a
logger that rewrote glog's) are made canonical glog lines by :func:`canonical`.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from typing import Optional

#: glog's date: ``MMDD``, or ``YYYYMMDD`` (glog's log_year_in_prefix).
DATE = r"(?:\d{4})?\d{4}"
_PREFIX = r"([IWEF])(?:\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) +(\d+) ([^\]]*)\] ?"
_LINE = re.compile(_PREFIX + "(.*)")
_SOME_PREFIX = re.compile(_PREFIX)

#: Messages read wherever they stand in a line: the solver's, debug_info's, the check layer's and
#: those of an abort (glog's fatal CHECK, its stack trace, a Python layer's traceback).
KNOWN = (
    r"Iteration \d|Solving |(?:Train|Test) net output #|Test score #|\[(?:Forward|Backward)\] |"
    r"Gradient clipping|caffe-nantools |Check failed|\*\*\\?\* (?:Check failure|Aborted at)|"
    r"Traceback \(most recent call last\)"
)
_KNOWN = re.compile(KNOWN)
#: A fork's tag between glog's header and a known message (``] [rank 0] Iteration 5, ...``,
#: ``] <worker> ...``): the message is what follows it.
_TAG = re.compile(rf"(?:\[[^\[\]]{{1,40}}\]|<[^<>]{{1,40}}>) +(?=\s*(?:{KNOWN}))")
#: A logger's own level word and time before the message (Python's logging, job runners).
_LEVEL = re.compile(r"\b(INFO|WARN(?:ING)?|ERROR|FATAL|CRITICAL)\b")
_LEVELS = {"I": "I", "W": "W", "E": "E", "F": "F", "C": "F"}
_EPOCH = re.compile(r"^\W*(1\d{9})(?:\.\d+)?\b")
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)")
#: Month 00 in a canonical line: the original had no time.
UNDATED = "0000 00:00:00.000000"


@dataclass(frozen=True)
class GlogLine:
    level: str
    month: int
    day: int
    seconds: float  # since midnight
    source: str
    message: str


def parse_line(line: str) -> Optional[GlogLine]:
    """The parts of a glog line, or None for any other line (a traceback, a printed net...);
    a fork's tag before a known message is not the message's."""
    m = _LINE.match(line)
    if m is None:
        return None
    level, month, day, hh, mm, ss, us, _, source, message = m.groups()
    seconds = int(hh) * 3600 + int(mm) * 60 + int(ss) + int(us) / 1e6
    if message[:1] in "[<":
        tag = _TAG.match(message)
        message = message[tag.end() :] if tag else message
    return GlogLine(level, int(month), int(day), seconds, source, message.rstrip("\r\n"))


def holds_known_message(text: str) -> bool:
    """Whether a known message of Caffe's stands anywhere in ``text``."""
    return _KNOWN.search(text) is not None


def canonical(text: str) -> Optional[str]:
    """``text`` as a canonical glog line, or None when it holds neither a glog line nor a known
    message.

    What stands before the glog prefix (``> ``, ``12: ``, ``[worker-3] ``, a timestamp) and
    backticks after the message are dropped; a known message without a glog prefix gets one, with
    the level and time its own prefix gives (a logger's ``INFO:``, a Unix or ISO time), else ``I``
    and :data:`UNDATED`.
    """
    body = text.rstrip("\r\n")
    m = _SOME_PREFIX.search(body)
    if m is not None:
        return body[m.start() :].rstrip().rstrip("`")
    m = _KNOWN.search(body)
    if m is None:
        return None
    head = body[: m.start()]
    level = _LEVEL.search(head)
    letter = _LEVELS[level.group(1)[0]] if level else "I"
    return f"{letter}{_stamp(head)} 0 ?] " + body[m.start() :].rstrip().rstrip("`")


def _stamp(head: str) -> str:
    """glog's ``MMDD HH:MM:SS.uuuuuu`` of a Unix or ISO time in ``head``, else :data:`UNDATED`."""
    m = _EPOCH.search(head)
    if m is not None:
        return datetime.datetime.fromtimestamp(int(m.group(1)), datetime.timezone.utc).strftime(
            "%m%d %H:%M:%S.000000"
        )
    m = _ISO.search(head)
    if m is not None:
        _, month, day, hh, mm, ss = m.groups()
        return f"{month}{day} {hh}:{mm}:{ss}.000000"
    return UNDATED


#: NaN and infinity as C runtimes print them: glibc's ``-nan``, MSVC's ``-nan(ind)``,
#: ``1.#QNAN``, ``-1.#IND`` and ``1.#INF`` (Caffe built on Windows).
_NON_FINITE = re.compile(r"([+-]?)(?:(nan)(?:\(\w*\))?|1\.#(?:(q?nan|ind)\w*|(inf)\w*))\Z")


def parse_value(text: str) -> float:
    """A number as Caffe prints it, NaN and infinity in every C runtime's spelling included.

    Raises:
        ValueError: not a number.
    """
    text = text.strip()
    if text[-1:].isdigit():  # a plain number (the common case): float reads it alike
        try:
            return float(text)
        except ValueError:
            pass
    m = _NON_FINITE.match(text.lower())
    if m is not None:
        sign, nan, windows_nan, windows_inf = m.groups()
        if nan or windows_nan:
            return math.nan
        return -math.inf if sign == "-" else math.inf
    return float(text)
