"""Long series of values kept small: a thinned sample, and every non-finite value kept as the
stretches of consecutive ones it fills (a loss that stays NaN for 100 000 iterations is one
stretch), so a 1 GB log's curves fit a page and still show each bad value."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

#: Points kept per plotted series of a diagnosis; past it every other one is dropped.
SAMPLES = 600
#: Finite points kept of each curve of a report.
POINTS = 2000

Point = Tuple[int, float]


class Sampled:
    """At most ``limit`` items of a long series, evenly thinned: every stride-th is kept, and the
    stride doubles whenever the list would grow past the limit."""

    def __init__(self, limit: int = SAMPLES) -> None:
        self.limit = limit
        self.items: list = []
        self.stride = 1
        self.seen = 0

    def wants_next(self) -> bool:
        return self.seen % self.stride == 0

    def add(self, item) -> None:
        if self.wants_next():
            self.items.append(item)
            if len(self.items) > self.limit:
                self.items = self.items[::2]
                self.stride *= 2
        self.seen += 1

    def add_many(self, count: int, item: Callable[[int], object]) -> None:
        """``add`` of ``count`` items, of which ``item(k)`` makes the k-th: only those kept
        are made."""
        k = 0
        while k < count:
            skip = min((-self.seen) % self.stride, count - k)
            self.seen += skip
            k += skip
            if k < count:
                self.add(item(k))
                k += 1


@dataclass
class Stretch:
    """Consecutive non-finite values of one curve: the ``first`` and the ``last`` (iteration,
    value), ``count`` values in all."""

    first: Point
    last: Point
    count: int = 1


@dataclass
class Curve:
    """One value over iterations: ``phase`` train or test, ``name`` as the log names it (a
    second test net's with ``net1/``), ``count`` its values, ``bad`` its non-finite ones."""

    phase: str
    name: str
    count: int = 0
    bad: List[Stretch] = field(default_factory=list)
    sample: Sampled = field(default_factory=lambda: Sampled(POINTS), repr=False)
    #: Whether the last value was non-finite (the next one extends its stretch).
    _in_bad: bool = field(default=False, repr=False)

    @property
    def first_bad(self) -> Optional[Point]:
        """(iteration, value) of the first non-finite value, or None."""
        return self.bad[0].first if self.bad else None

    @property
    def bad_count(self) -> int:
        return sum(s.count for s in self.bad)

    @property
    def points(self) -> List[Point]:
        """The thinned finite values with the first and last value of each non-finite
        stretch, in iteration order."""
        ends = [p for s in self.bad for p in ((s.first, s.last) if s.count > 1 else (s.first,))]
        return sorted(list(self.sample.items) + ends, key=lambda p: p[0])

    @property
    def spans(self) -> List[Tuple[int, int]]:
        """The iterations each stretch of more than one non-finite value covers."""
        return [(s.first[0], s.last[0]) for s in self.bad if s.count > 1]

    def add(self, iteration: int, value: float) -> None:
        self.count += 1
        if math.isfinite(value):
            self.sample.add((iteration, value))
            self._in_bad = False
        elif self._in_bad:
            self.bad[-1].last = (iteration, value)
            self.bad[-1].count += 1
        else:
            self.bad.append(Stretch((iteration, value), (iteration, value)))
            self._in_bad = True

    def add_finite(self, count: int, point: Callable[[int], Point]) -> None:
        """``count`` values known to be finite, of which ``point(k)`` makes the k-th: only
        those the sample keeps are made."""
        if count:
            self.count += count
            self.sample.add_many(count, point)
            self._in_bad = False


@dataclass
class Curves:
    """One run's curves: the ``loss`` and ``rate`` of its iteration lines, and its outputs."""

    loss: Curve = field(default_factory=lambda: Curve("train", "loss"))
    rate: Curve = field(default_factory=lambda: Curve("train", "lr"))
    by_name: Dict[Tuple[str, str], Curve] = field(default_factory=dict, repr=False)

    @property
    def outputs(self) -> List[Curve]:
        """The outputs, train ones first, each in the order the log first shows it."""
        return sorted(self.by_name.values(), key=lambda o: o.phase != "train")

    def output(self, phase: str, name: str) -> Curve:
        """The curve of output ``name`` of ``phase``, made on its first value."""
        curve = self.by_name.get((phase, name))
        if curve is None:
            curve = self.by_name[(phase, name)] = Curve(phase, name)
        return curve
