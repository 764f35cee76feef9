"""The trace of a diagnosis as the pictures show it: the user's layers only (a check layer's
numbers belong to its blob's row), every column with the iteration it is of."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

from caffe_nantools.diagnose import Column, Run, larger
from caffe_nantools.inject import CHECK_PREFIX, check_place


@dataclass
class Trace:
    """Heatmap columns over the user's ``layers`` (net order), in iteration order; ``failing``
    is the index of the column of the first non-finite value (or None)."""

    layers: List[str]
    columns: List[Column]
    failing: Optional[int]

    @property
    def labels(self) -> List[str]:
        return [str(c.iteration) if c.iteration is not None else "?" for c in self.columns]


def trace_of(run: Optional[Run], first_bad: Optional[int] = None) -> Trace:
    """The trace of a diagnosed ``run`` (its kept trace; None: none kept); ``first_bad``: the
    iteration of the first non-finite value, where the diagnosis knows it."""
    if run is None:
        return Trace([], [], None)
    layers = [name for name in run.layers if not name.startswith(CHECK_PREFIX)]
    by_iteration: Dict[Optional[int], Column] = {
        c.iteration: c for c in run.columns.items if c is not None
    }
    suspect = None
    for block in run.window + ([run.suspect] if run.suspect is not None else []):
        column = Column.of(block)
        if block is run.suspect:
            # A check stops the iteration before its loss line: the block has no iteration of
            # its own, the first non-finite value tells it.
            column.iteration = _failing_iteration(run, block.iteration, first_bad)
            suspect = column
            if block.iteration is None:
                by_iteration.pop(None, None)  # the same block, sampled for the heatmap
        by_iteration[column.iteration] = column
    known = set(layers)
    drawn = [_folded(c, known) for c in by_iteration.values()]
    drawn = [c for c in drawn if c.forward or c.backward]
    drawn.sort(key=lambda c: math.inf if c.iteration is None else c.iteration)
    failing = next(
        (
            k
            for k, c in enumerate(drawn)
            if suspect is not None and c.iteration == suspect.iteration
        ),
        None,
    )
    return Trace(layers, drawn, failing)


def _failing_iteration(
    run: Run, iteration: Optional[int], first_bad: Optional[int]
) -> Optional[int]:
    if iteration is not None:
        return iteration
    if first_bad is not None:
        return first_bad
    shown = run.iterations[-1] if run.iterations else None
    return shown + 1 if shown is not None else None


def _folded(column: Column, layers: set) -> Column:
    """``column`` with each check layer's value in the row of the layer it checks
    (``nancheck/BLOB@WRITER``: WRITER's; ``nancheck/BLOB``: the layer named BLOB, if any)."""
    return Column(column.iteration, _fold(column.forward, layers), _fold(column.backward, layers))


def _fold(values: Dict[str, float], layers: set) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for name, value in values.items():
        if name.startswith(CHECK_PREFIX):
            blob, writer = check_place(name)
            name = writer if writer in layers else blob
        if name in layers:
            out[name] = larger(out.get(name), value)
    return out
