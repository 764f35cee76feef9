"""Where the first non-finite value of a debug_info trace came from, and whether values blew up
before it.

In one displayed iteration the trace is in execution order, so the first bad record is the
origin: every blob printed before it was finite, and a layer's bottoms are printed (as tops of
earlier layers) before its own tops. The same holds backward, where a layer's top diffs are the
bottom diffs printed by the layers above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Dict, Iterable, List, NamedTuple, Optional, Tuple

from caffe_nantools.diagnose.reading import SATURATED_SOFTMAX_LOSS, Valued, is_saturated
from caffe_nantools.diagnose.trace import Block, is_bad

#: Growth (in powers of ten) over the window that counts as a blow-up: per blob, and for the
#: all-params norms and the loss, which move much less in a healthy run.
BLOB_ORDERS = 3.0
GLOBAL_ORDERS = 2.0


@dataclass(frozen=True)
class Origin:
    """The first bad value of the trace.

    ``pass_``: ``forward`` (a layer's top), ``backward`` (a bottom or param diff) or ``update``
    (a param's data, bad at the start of the iteration: the last update made it so). ``input``
    is set when the layer is a data layer: the data itself is bad.
    """

    iteration: Optional[int]
    pass_: str
    layer: Optional[str]
    blob: Optional[str]
    line: int
    text: str
    value: float
    input: bool = False


def find_origin(block: Block, inputs: Optional[Collection[str]] = None) -> Optional[Origin]:
    """The origin of the first bad value in ``block``; ``inputs`` names the data layers (when
    unknown, the first layer of the forward pass is taken for one)."""
    first = next((r for r in block.records if r.bad), None)
    if first is None:
        norms = next((n for n in block.norms if n.bad), None)
        if norms is None:
            return None
        return Origin(
            block.iteration,
            "backward",
            None,
            "all params",
            norms.line,
            block.text(norms.line),
            norms.l1_diff if is_bad(norms.l1_diff) else norms.l2_diff,
        )
    if first.pass_ == "forward":
        param = next(
            (
                r
                for r in block.records
                if r.pass_ == "forward" and r.layer == first.layer and r.kind == "param" and r.bad
            ),
            None,
        )
        if param is not None:
            return Origin(
                block.iteration,
                "update",
                param.layer,
                param.what,
                param.line,
                block.text(param.line),
                param.value,
            )
        if inputs is None:
            inputs = _guess_inputs(block)
        return Origin(
            block.iteration,
            "forward",
            first.layer,
            first.what,
            first.line,
            block.text(first.line),
            first.value,
            input=first.layer in inputs,
        )
    return Origin(
        block.iteration,
        "backward",
        first.layer,
        first.what,
        first.line,
        block.text(first.line),
        first.value,
    )


def _guess_inputs(block: Block) -> List[str]:
    """Without the net: the first layer of the forward pass, when it looks like a data layer (no
    params, and a data-like name or a data and a label top); an excerpt may start anywhere."""
    first = next((r.layer for r in block.records if r.pass_ == "forward"), None)
    if first is None:
        return []
    mine = [r for r in block.records if r.layer == first and r.pass_ == "forward"]
    if any(r.kind == "param" for r in mine):
        return []
    named = any(word in first.lower() for word in ("data", "input", "image", "label"))
    return [first] if named or len({r.blob for r in mine}) > 1 else []


class Point(NamedTuple):
    """One value of a series, with the log line it was read from."""

    iteration: Optional[int]
    value: float
    line: int
    text: str


@dataclass(frozen=True)
class Blowup:
    """A series that grew by orders of magnitude over the displayed iterations before the
    first bad one; ``layer`` is None for the all-params norms and the loss."""

    layer: Optional[str]
    what: str
    start: Point
    end: Point

    @property
    def orders(self) -> float:
        return math.log10(self.end.value / self.start.value) if self.start.value > 0 else math.inf

    def to_dict(self) -> dict:
        """diagnose's JSON of it: the growth in orders of magnitude, and where it went from and
        to in the log."""
        ends = {
            key: {"iteration": p.iteration, "value": p.value, "line": p.line}
            for key, p in (("from", self.start), ("to", self.end))
        }
        return {"layer": self.layer, "what": self.what, "orders": round(self.orders, 2), **ends}


def find_blowup(
    window: List[Block],
    suspect: Optional[Block],
    origin: Optional[Origin],
    losses: Iterable[Valued],
    types: Optional[Dict[str, str]] = None,
) -> Optional[Blowup]:
    """The blob (or norm, or loss) whose growth started first, among those that grew by orders
    of magnitude from the window's start to the last finite value before the origin. A loss
    layer's blobs are left out: it only sums what grew before it."""
    series: Dict[Tuple[str, Optional[str]], List[Point]] = {}
    cut = origin.line if origin is not None else math.inf
    blocks = list(window)
    if suspect is not None:
        blocks.append(
            Block(
                suspect.iteration,
                [r for r in suspect.records if r.line < cut],
                [n for n in suspect.norms if n.line < cut],
                suspect.texts,
            )
        )
    for block in blocks:
        for r in block.records:
            if (r.pass_ == "forward" and r.kind == "param") or is_loss_layer(r.layer, types):
                continue  # a param's size says little; its update shows in the norms
            what = f"{r.what} {'data' if r.pass_ == 'forward' else 'diff'}"
            series.setdefault((what, r.layer), []).append(
                Point(block.iteration, r.value, r.line, block.text(r.line))
            )
        for n in block.norms:
            text = block.text(n.line)
            series.setdefault(("L2 norm of all param diffs", None), []).append(
                Point(block.iteration, n.l2_diff, n.line, text)
            )
            series.setdefault(("L2 norm of all param data", None), []).append(
                Point(block.iteration, n.l2_data, n.line, text)
            )
    loss = [
        Point(v.iteration, v.value, v.line, v.text)
        for v in losses
        if v.line < cut and not is_bad(v.value)
    ]
    series[("loss", None)] = loss
    found: List[Tuple[Tuple[int, int], Blowup]] = []
    for (what, layer), points in series.items():
        points = [p for p in points if not is_bad(p.value)]
        grown = _grown(
            points, BLOB_ORDERS if layer is not None else GLOBAL_ORDERS, layer is not None
        )
        if grown is not None:
            onset, base = grown
            found.append((_when(onset), Blowup(layer, what, base, points[-1])))
    saturated = next((p for p in loss if is_saturated(p.value)), None)
    if saturated is not None and not found and loss[0].value < SATURATED_SOFTMAX_LOSS - 1:
        found.append((_when(saturated), Blowup(None, "loss", loss[0], saturated)))
    if not found:
        return None
    return min(found, key=lambda f: f[0])[1]


def is_loss_layer(layer: str, types: Optional[Dict[str, str]]) -> bool:
    """By its type from the net, else by its name (loss, loss_cls, mbox_loss)."""
    kind = types.get(layer) if types else None
    return kind.endswith("Loss") if kind is not None else "loss" in layer.lower()


def _when(point: Point) -> Tuple[int, int]:
    """Order of growth onsets: by iteration (an unknown one first), then by line."""
    return (point.iteration if point.iteration is not None else -1, point.line)


def _grown(points: List[Point], orders: float, blob: bool) -> Optional[Tuple[Point, Point]]:
    """(onset point, baseline point) when the series grew ``orders`` powers of ten from its
    first positive value to its last; the onset is where it first passed 10x the baseline."""
    base = next((p for p in points if p.value > 0), None)
    if base is None or len(points) < 2:
        return None
    last = points[-1].value
    if last <= 0 or math.log10(last / base.value) < orders or (blob and last < 1.0):
        return None
    onset = next(p for p in points if p.value >= 10 * base.value)
    return onset, base
