"""Every curve of one run as the report draws it: the loss and the rate its ``Iteration N``
lines show, and each train and test output (``Train net output #k: name = v``, ``Test net
output #k: name = v``). The finite values are thinned to what a plot draws; the non-finite
ones are all kept, as the stretches of consecutive values they fill (a run whose loss stays NaN
for 100 000 iterations is one stretch), so a long log gives a small page that still shows every
one.

The diagnosis keeps thinned loss and rate curves only, so the log's lines are read once more
here (a substring test before a line is parsed: a long log goes by at the speed of reading it).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from caffe_nantools.diagnose import Sampled
from caffe_nantools.logs import open_log, read_events

#: Finite points kept of each curve.
POINTS = 2000
#: The text of every line the curves need: the iteration lines, the outputs, a run's start.
_MARKS = ("Iteration ", " output #", "Test score #", "Solving ")

Point = Tuple[int, float]


@dataclass
class Stretch:
    """Consecutive non-finite values of one curve: the ``first`` and the ``last`` (iteration,
    value), ``count`` values in all."""

    first: Point
    last: Point
    count: int = 1


@dataclass
class Output:
    """One curve: ``phase`` train or test, ``name`` as the log names it (a second test net's
    with ``net1/``), ``count`` its values in the run, ``bad`` its non-finite values."""

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


@dataclass
class Curves:
    """One run's curves: the ``loss`` and ``rate`` of its iteration lines, and its outputs."""

    loss: Output = field(default_factory=lambda: Output("train", "loss"))
    rate: Output = field(default_factory=lambda: Output("train", "lr"))
    by_name: Dict[Tuple[str, str], Output] = field(default_factory=dict, repr=False)

    @property
    def outputs(self) -> List[Output]:
        """The outputs, train ones first, each in the order the log first shows it."""
        return sorted(self.by_name.values(), key=lambda o: o.phase != "train")


def curves_of(log: str, run: Optional[int] = None) -> Curves:
    """The curves of run ``run`` (1-based, as a diagnosis counts them; None: the last) of
    ``log``.

    Raises:
        OSError: the log cannot be read.
    """
    runs: List[Curves] = [Curves()]
    phase, iteration, net = "", None, 0
    shown = False  # whether the current run showed an iteration
    with open_log(log) as (f, _):
        lines = io.TextIOWrapper(f, encoding="utf-8", errors="replace")
        for e in read_events(line for line in lines if any(m in line for m in _MARKS)):
            if e.kind == "run":
                if shown:  # a run that showed nothing is the next one's start, as diagnose reads it
                    runs.append(Curves())
                phase, iteration, shown = "", None, False
            elif e.kind == "loss":
                phase, iteration, shown = "train", e.iteration, True
                runs[-1].loss.add(e.iteration, e.value)
            elif e.kind == "lr":
                runs[-1].rate.add(e.iteration, e.value)
            elif e.kind == "test":
                phase, iteration, net, shown = "test", e.iteration, e.index or 0, True
            elif e.kind == f"{phase}_output" and iteration is not None:
                name = e.name if phase == "train" or not net else f"net{net}/{e.name}"
                runs[-1].by_name.setdefault((phase, name), Output(phase, name)).add(
                    iteration, e.value
                )
    return runs[-1] if run is None or run > len(runs) else runs[run - 1]
