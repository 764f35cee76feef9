"""How big each update was against the weights it changed: ``lr * mean|diff| / mean|data|`` per
learned layer and displayed iteration, from the param lines of a debug_info trace.

Healthy training keeps this ratio near 1e-3; an explosion starts where it passes ~1 (the step
is as large as the weights). Only param blob 0 (the weights) counts: a bias starts at 0, where
the ratio says nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from caffe_nantools.diagnose.trace import Block, is_bad

#: Ratio from which a step is as large as the weights: the explosion starts here.
EXPLODING_RATIO = 1.0
#: What the suggested base_lr keeps every ratio under.
SAFE_RATIO = 1e-2


@dataclass(frozen=True)
class Ratio:
    iteration: Optional[int]
    layer: str
    value: float
    line: int  # the param diff's line
    text: str


@dataclass(frozen=True)
class Updates:
    """The ratios of every learned layer over the displayed iterations, in order."""

    ratios: List[Ratio]

    def first_exploding(self) -> Optional[Ratio]:
        """The largest ratio of the first iteration where any passed EXPLODING_RATIO."""
        first = next((r for r in self.ratios if r.value >= EXPLODING_RATIO), None)
        if first is None:
            return None
        return max(
            (r for r in self.ratios if r.iteration == first.iteration), key=lambda r: r.value
        )

    def largest_at_onset(self) -> Optional[Ratio]:
        """The largest ratio up to the iteration where the first one passed 1: what a lower rate
        had to tame (the ratios after it are the explosion feeding on itself)."""
        first = self.first_exploding()
        until = [
            r
            for r in self.ratios
            if first is None or _order(r.iteration) <= _order(first.iteration)
        ]
        return max(until, key=lambda r: r.value, default=None)

    def series(self, layer: str) -> List[Ratio]:
        return [r for r in self.ratios if r.layer == layer]


def _order(iteration: Optional[int]) -> float:
    return math.inf if iteration is None else iteration


def update_ratios(blocks: Iterable[Block], rates: Mapping[int, float]) -> Updates:
    """The ratios of ``blocks`` whose iteration has a known, finite learning rate."""
    ratios: List[Ratio] = []
    for block in blocks:
        lr = rates.get(block.iteration) if block.iteration is not None else None
        if lr is None or is_bad(lr) or lr <= 0:
            continue
        data: Dict[str, float] = {}
        for r in block.records:
            if r.kind != "param" or r.blob != "0" or is_bad(r.value):
                continue
            if r.pass_ == "forward":
                data[r.layer] = r.value
            elif data.get(r.layer, 0) > 0:
                ratios.append(
                    Ratio(
                        block.iteration,
                        r.layer,
                        lr * r.value / data[r.layer],
                        r.line,
                        block.text(r.line),
                    )
                )
    return Updates(ratios)


def safe_base_lr(base_lr: float, largest: Ratio) -> float:
    """The base_lr that would have kept ``largest`` (and so every ratio) at SAFE_RATIO, rounded
    down to one significant digit: the ratio scales with the rate."""
    exact = base_lr * SAFE_RATIO / largest.value
    scale = 10.0 ** math.floor(math.log10(exact))
    return float(f"{math.floor(exact / scale * (1 + 1e-9)) * scale:.1g}")


def healthy_gradient_norm(norms: Iterable[Tuple[Optional[int], float]]) -> Optional[float]:
    """The L2 norm of the param diffs at the start of the trace, before any growth: a bound for
    clip_gradients that a healthy step stays under."""
    finite = [value for _, value in norms if not is_bad(value) and value > 0]
    return finite[0] if finite else None
