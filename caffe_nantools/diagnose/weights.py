"""An explosion, a policy that grows the rate, or one layer's numerics: what hunt's trace tells
apart.

An explosion shows in the weights: their L2 norm (debug_info's ``All net params`` line, every
iteration in hunt's copies) grows by orders of magnitude over the iterations before the
failure, wherever the overflow first shows (an InnerProduct that overflows has no log, sqrt or
division to look for). One layer's numerics makes a non-finite value from finite inputs while
the weights stay in scale. An explosion that came after a policy grew the rate (lint's
:func:`~caffe_nantools.lint.solver_rules.rate_grows`) is the policy's: a lower base_lr only
delays it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

from caffe_nantools.diagnose.origin import GLOBAL_ORDERS
from caffe_nantools.diagnose.trace import net_norms
from caffe_nantools.logs import read_events


@dataclass(frozen=True)
class Trained:
    """What hunt's log says of the iterations trained: the L2 norm of all weights at the end of
    each (finite ones, in order) and the rate of each, ``(iteration, lr)``."""

    weights: List[float]
    rates: List[Tuple[int, float]]

    @property
    def weight_orders(self) -> float:
        """How many powers of ten the weights grew from the first iteration to the last."""
        if len(self.weights) < 2 or self.weights[0] <= 0:
            return 0.0
        return math.log10(max(self.weights[-1], self.weights[0]) / self.weights[0])

    @property
    def exploded(self) -> bool:
        return self.weight_orders >= GLOBAL_ORDERS

    @property
    def rate_rose(self) -> bool:
        """Whether the rate rose above where it started."""
        finite = [lr for _, lr in self.rates if math.isfinite(lr)]
        return len(finite) > 1 and max(finite) > finite[0]

    def weights_text(self) -> str:
        return (
            f"the L2 norm of all weights grew from {self.weights[0]:g} to {self.weights[-1]:g} "
            f"over {len(self.weights)} iterations, {self.weight_orders:.1f} orders of magnitude"
        )


def read_trained(log: str) -> Trained:
    """The weights' norms and the rates in ``log`` (empty for a log that cannot be read)."""
    weights: List[float] = []
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return Trained([], [])
    for line in lines:
        norms = net_norms(line) if "All net params" in line else None
        if norms is not None and math.isfinite(norms[2]):  # the L2 norm of the data
            weights.append(norms[2])
    rates = [(e.iteration, e.value) for e in read_events(lines) if e.kind == "lr"]
    return Trained(weights, rates)


def policy_advice(grows: Tuple[str, str, str], trained: Trained) -> str:
    name, what, decays = grows
    finite = [lr for _, lr in trained.rates if math.isfinite(lr)]
    rose = f" (from {finite[0]:g} to {max(finite):g} in the iterations trained)" if finite else ""
    return (
        f"{what}{rose}: the updates diverged as the rate grew; set {name}: {decays} (a lower "
        "base_lr only delays the NaN)"
    )
