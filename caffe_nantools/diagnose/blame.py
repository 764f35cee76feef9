"""Where the trouble began, which is not always where the first non-finite value appeared.

The first bad record of a trace says where a value overflowed. When values grew by many orders
of magnitude along one forward pass before that, the layer where the growth began is to blame;
a layer that only moves values (a ReLU, a Split) never makes NaN or inf from finite inputs; and
a BatchNorm whose statistics are all 0 (the moving-average factor too: nothing accumulated or
loaded) divides by sqrt(eps) and scales its input up about 300 times, layer after layer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

from caffe_nantools.diagnose.origin import Origin
from caffe_nantools.diagnose.trace import Block, Record, is_bad
from caffe_nantools.jsontext import fields_dict

#: Layer types that only move or drop values: their output is bad only if their input was.
PASS_THROUGH = ("ReLU", "Split", "Concat", "Dropout", "Flatten", "Reshape", "Slice")
#: Without the net, names tell the type (relu1, drop6, fc7_split, concat_3, flatten).
_PASS_THROUGH_NAME = re.compile(r"relu|drop|split|concat|flatten|reshape|slice", re.IGNORECASE)
#: Growth along one pass, in powers of ten, that counts as the start of an overflow.
PASS_GROWTH_ORDERS = 6.0


@dataclass(frozen=True)
class Blame:
    """The layer and pass where the trouble began, and why it is blamed."""

    layer: Optional[str]
    pass_: str
    iteration: Optional[int]
    why: str
    #: BatchNorm layers with all-zero statistics are part of the story (their advice differs).
    no_statistics: bool = False

    def to_dict(self) -> dict:
        return fields_dict(self, keys={"pass_": "pass"}, leave_out={"no_statistics"})


def layer_type(layer: str, types: Optional[Dict[str, str]]) -> Optional[str]:
    return types.get(layer) if types else None


def passes_through(layer: str, types: Optional[Dict[str, str]]) -> bool:
    kind = layer_type(layer, types)
    if kind is not None:
        return kind in PASS_THROUGH
    return bool(_PASS_THROUGH_NAME.search(layer))


def zero_statistics(block: Block, types: Optional[Dict[str, str]]) -> List[str]:
    """BatchNorm layers whose param blobs (mean, variance, moving-average factor) are all 0, or
    whose factor is."""
    params: Dict[str, List[float]] = {}
    for r in block.records:
        if r.pass_ == "forward" and r.kind == "param":
            params.setdefault(r.layer, []).append(r.value)
    found = []
    for layer, values in params.items():
        kind = layer_type(layer, types)
        is_batch_norm = kind == "BatchNorm" if kind is not None else len(values) == 3
        # A moving-average factor of 0 makes Caffe scale mean and variance by 0: the
        # statistics it uses are all 0, whatever blobs 0 and 1 hold.
        if is_batch_norm and (all(v == 0 for v in values) or values[2:3] == [0]):
            found.append(layer)
    return found


def find_blame(
    block: Block,
    first: Origin,
    types: Optional[Dict[str, str]] = None,
    *,
    grew_over_iterations: bool = False,
) -> Blame:
    """Who is to blame for ``first``, the first bad record of ``block``. When values grew over
    the iterations before (weights that exploded), growth along the last pass is its effect, not
    a cause of its own."""
    if first.pass_ != "forward" or first.input or first.layer is None:
        return Blame(first.layer, first.pass_, first.iteration, _plain_why(first))
    tops = _tops_before(block, first)
    zeros = [layer for layer in zero_statistics(block, types) if layer in {r.layer for r in tops}]
    start = None if grew_over_iterations else _growth_start(tops)
    if start is not None:
        base, begin, last = start
        why = (
            f"values grew {math.log10(last.value / base.value):.0f} orders of magnitude within one forward pass, "
            f"from mean |x| {base.value:g} before layer {begin.layer!r} to {last.value:g} before layer "
            f"{first.layer!r} went non-finite"
        )
        if zeros:
            begin_layer = zeros[0] if zeros[0] in _layers_from(tops, begin) else begin.layer
            why += "; " + _zero_statistics_why(zeros)
            return Blame(begin_layer, "forward", first.iteration, why, no_statistics=True)
        return Blame(begin.layer, "forward", first.iteration, why)
    if zeros:
        return Blame(
            zeros[0], "forward", first.iteration, _zero_statistics_why(zeros), no_statistics=True
        )
    if passes_through(first.layer, types) and tops:
        before = tops[-1]
        kind = layer_type(first.layer, types) or "layer that only moves values"
        return Blame(
            before.layer,
            "forward",
            first.iteration,
            f"{first.layer!r} is a {kind}, which never makes NaN or inf from finite inputs: the trouble is "
            f"in what layer {before.layer!r} produced (mean |x| {before.value:g})",
        )
    return Blame(
        first.layer, first.pass_, first.iteration, _plain_why(first, seen_inputs=bool(tops))
    )


def _plain_why(first: Origin, seen_inputs: bool = True) -> str:
    if first.input:
        return "the data layer delivered it: the input itself holds NaN or inf"
    if first.pass_ == "update":
        return "its params were non-finite at the start of the iteration: the update before made them so"
    if first.pass_ == "backward":
        return "the first gradient to go non-finite in the backward pass"
    if not seen_inputs:
        return (
            "the first layer of the trace with a non-finite output; its inputs are not in the log"
        )
    return "the first layer whose output went non-finite from finite inputs"


def _zero_statistics_why(layers: List[str]) -> str:
    names = ", ".join(repr(l) for l in layers[:4]) + (
        f" and {len(layers) - 4} more" if len(layers) > 4 else ""
    )
    return (
        f"{'BatchNorm' if len(layers) == 1 else 'BatchNorm layers'} {names} {'has' if len(layers) == 1 else 'have'} all-zero statistics (param blobs 0-2 all 0, or "
        "a moving-average factor of 0, which zeroes the other two): mean and variance were never accumulated or never loaded (use_global_stats "
        "with statistics the weights file lacks, or layer names that do not match it), so it divides by "
        "sqrt(eps) and scales its input up about 300 times"
    )


def _tops_before(block: Block, first: Origin) -> List[Record]:
    """The forward top records before ``first``: one per layer (the largest), in order."""
    tops: Dict[str, Record] = {}
    for r in block.records:
        if r.line >= first.line:
            break
        if (
            r.pass_ == "forward"
            and r.kind == "top"
            and not is_bad(r.value)
            and (r.layer not in tops or r.value > tops[r.layer].value)
        ):
            tops[r.layer] = r
    return sorted(tops.values(), key=lambda r: r.line)


def _layers_from(tops: List[Record], begin: Record) -> List[str]:
    return [r.layer for r in tops if r.line >= begin.line]


def _growth_start(tops: List[Record]):
    """(baseline, first grown, last) when the pass's values rose PASS_GROWTH_ORDERS from a layer
    on and stayed at least 10x above what came before it; the earliest such layer."""
    if len(tops) < 2 or tops[-1].value <= 0:
        return None
    last = tops[-1]
    for k in range(1, len(tops)):
        base = tops[k - 1]
        if base.value <= 0 or math.log10(last.value / base.value) < PASS_GROWTH_ORDERS:
            continue
        if min(r.value for r in tops[k:]) >= 10 * base.value:
            return base, tops[k], last
    return None
