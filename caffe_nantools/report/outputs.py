"""Every train and test output of one run as a curve over iterations: what its ``Train net
output #k: name = v`` and ``Test net output #k: name = v`` lines said, thinned to what a plot
draws, with the first non-finite value of each kept.

The diagnosis keeps the loss and the rate only, so the log's output lines are read once more
here (a substring test before a line is parsed: a long log goes by at the speed of reading it).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from caffe_nantools.diagnose import Sampled
from caffe_nantools.logs import open_log, read_events

#: Points kept of each output's curve.
POINTS = 2000
#: The text of every line the curves need: the iteration lines, the outputs, a run's start.
_MARKS = ("Iteration ", " output #", "Test score #", "Solving ")


@dataclass
class Output:
    """One output's curve: ``phase`` train or test, ``name`` as the log names it (a second
    test net's with ``net1/``), ``count`` its values in the run, ``first_bad`` (iteration,
    value) of its first non-finite one."""

    phase: str
    name: str
    count: int = 0
    first_bad: Optional[Tuple[int, float]] = None
    sample: Sampled = field(default_factory=lambda: Sampled(POINTS), repr=False)

    @property
    def points(self) -> List[Tuple[int, float]]:
        """The sampled curve with its first non-finite value in it (thinning may drop it)."""
        points = list(self.sample.items)
        if self.first_bad is not None and self.first_bad not in points:
            points = sorted(points + [self.first_bad], key=lambda p: p[0])
        return points

    def add(self, iteration: int, value: float) -> None:
        self.count += 1
        self.sample.add((iteration, value))
        if self.first_bad is None and not math.isfinite(value):
            self.first_bad = (iteration, value)


def outputs_of(log: str, run: Optional[int] = None) -> List[Output]:
    """The outputs of run ``run`` (1-based, as a diagnosis counts them; None: the last) of
    ``log``, train ones first, each in the order the log first shows it.

    Raises:
        OSError: the log cannot be read.
    """
    runs: List[Dict[Tuple[str, str], Output]] = [{}]
    phase, iteration, net = "", None, 0
    shown = False  # whether the current run showed an iteration
    with open_log(log) as (f, _):
        lines = io.TextIOWrapper(f, encoding="utf-8", errors="replace")
        for e in read_events(line for line in lines if any(m in line for m in _MARKS)):
            if e.kind == "run":
                if shown:  # a run that showed nothing is the next one's start, as diagnose reads it
                    runs.append({})
                phase, iteration, shown = "", None, False
            elif e.kind == "loss":
                phase, iteration, shown = "train", e.iteration, True
            elif e.kind == "test":
                phase, iteration, net, shown = "test", e.iteration, e.index or 0, True
            elif e.kind == f"{phase}_output" and iteration is not None:
                name = e.name if phase == "train" or not net else f"net{net}/{e.name}"
                runs[-1].setdefault((phase, name), Output(phase, name)).add(iteration, e.value)
    chosen = runs[-1] if run is None or run > len(runs) else runs[run - 1]
    return sorted(chosen.values(), key=lambda o: o.phase != "train")
