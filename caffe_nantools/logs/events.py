"""The solver's lines of a Caffe log, as events: losses, outputs, learning rates, test passes.

The layouts of Caffe's versions and forks are read: ``Iteration N, loss = X`` and the newer
``Iteration N (x iter/s, y s/n iters), loss = X`` (NVIDIA Caffe's ``Iteration N (x s), loss = X``
too); the rate line before the loss line (2014) or after it, alone or followed by NVIDIA Caffe's
``, m = 0.9, wd = ..., gs = 1``; 2014's ``Testing net`` without a number and its ``Test score #k``
outputs. A log may hold several runs or resumes: each ``Solving <net>`` starts a new one. Lines
that are not canonical glog lines are read through :func:`~caffe_nantools.logs.glog.canonical`.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from caffe_nantools.logs.glog import DATE, canonical, parse_line, parse_value

# Counts have at most 18 digits: a longer one is no real iteration, and int() of thousands of
# digits is refused by Python 3.11+ (a line with one is left unread, like any other stray text).
#: A value ends at a space, at the backtick that closes a pasted log, or where the next glog
#: record was glued on (a paste that lost its line breaks: ``loss = -nanI1121 07:12:32.000002``).
_GLUED = rf"[IWEF]{DATE} \d\d:\d\d:\d\d\.\d{{6}} "
_VALUE = rf"(\S+?)(?=[\s`]|$|{_GLUED})"
_LOSS = re.compile(r"Iteration (\d{1,18})(?: \([^)]*\))?, loss = " + _VALUE)
_LR = re.compile(rf"Iteration (\d{{1,18}}), lr = ([^\s,]+?)(?=[\s,`]|$|{_GLUED})")
_TESTING = re.compile(r"Iteration (\d{1,18}), Testing net(?: \(#(\d{1,18})\))?")
_OUTPUT = re.compile(r"(Train|Test) net output #(\d{1,18}): (\S+) = " + _VALUE)
_SCORE = re.compile(r"Test score #(\d{1,18}): " + _VALUE)
_SOLVING = re.compile(r"Solving (.*)")


@dataclass(frozen=True)
class Event:
    """One solver line.

    ``kind``: ``run`` (a run starts), ``loss`` (train loss at ``iteration``), ``lr``, ``test``
    (a test pass of net ``index`` starts), ``train_output`` / ``test_output`` (output ``index``
    called ``name``; 2014's ``Test score #k`` is ``score<k>``). ``line`` is the 1-based line
    number, ``time`` seconds since the log's first dated line (None for a line without a time).
    """

    kind: str
    line: int
    time: Optional[float]
    iteration: Optional[int] = None
    name: Optional[str] = None
    value: Optional[float] = None
    index: Optional[int] = None


class _Clock:
    """Seconds since the first line, across midnight and month ends (the log has no year)."""

    def __init__(self) -> None:
        self.first: Optional[float] = None
        self.day: Optional[datetime.date] = None
        self.days = 0

    def __call__(self, month: int, day: int, seconds: float) -> Optional[float]:
        if month == 0:
            return None  # a line made canonical from one without a time
        try:
            date = datetime.date(2001, month, day)
        except ValueError:
            date = self.day or datetime.date(2001, 1, 1)
        if self.day is not None and date != self.day:
            self.days += (date - self.day).days % 365
        self.day = date
        now = self.days * 86400 + seconds
        if self.first is None:
            self.first = now
        return now - self.first


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """The solver events of a log, streamed (any size; lines that are not solver lines, or not
    glog lines at all, are passed over)."""
    clock = _Clock()
    for number, text in enumerate(lines, 1):
        line = parse_line(text)
        if line is None:
            fixed = canonical(text)
            line = parse_line(fixed) if fixed is not None else None
        if line is None:
            continue
        time = clock(line.month, line.day, line.seconds)
        message = line.message.strip()
        event = parse_event(message, number, time)
        if event is not None:
            yield event


def parse_event(message: str, number: int, time: Optional[float] = 0.0) -> Optional[Event]:
    """The event of one glog message (its text after the ``] ``), or None."""
    if message.startswith("Iteration "):
        m = _LR.match(message) if ", lr = " in message else None
        if m:
            return _valued("lr", number, time, m.group(2), iteration=int(m.group(1)))
        m = _TESTING.match(message) if "Testing net" in message else None
        if m:
            return Event(
                "test", number, time, iteration=int(m.group(1)), index=int(m.group(2) or 0)
            )
        m = _LOSS.match(message)
        return m and _valued("loss", number, time, m.group(2), iteration=int(m.group(1)))
    m = _OUTPUT.match(message)
    if m:
        phase, index, name, value = m.groups()
        return _valued(f"{phase.lower()}_output", number, time, value, name=name, index=int(index))
    m = _SCORE.match(message)
    if m:
        return _valued(
            "test_output",
            number,
            time,
            m.group(2),
            name=f"score{m.group(1)}",
            index=int(m.group(1)),
        )
    m = _SOLVING.match(message)
    if m:
        return Event("run", number, time, name=m.group(1).strip())
    return None


def _valued(kind: str, number: int, time: Optional[float], text: str, **fields) -> Optional[Event]:
    try:
        value = parse_value(text)
    except ValueError:
        return None
    return Event(kind, number, time, value=value, **fields)
