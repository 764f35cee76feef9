"""The data checked against what each loss and metric layer requires of its inputs (the
``contract`` of its type's entry in :mod:`caffe_nantools.layertypes`: which bottom, what its
values must be, what Caffe does when they are not), and the fix of a systematic breach (a
setting of the net, or a relabelled or rescaled copy of the source that ``scan --write-clean``
writes).

A breach in a few records is theirs: they are dropped. A breach in many (more than 1% of the
source, and more than :data:`FEW` records) that follows a pattern (labels 1..K, one 'void'
value, 0..255 targets, one-hot rows) is one fault of the whole source, fixed as a whole.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.jsontext import fields_dict
from caffe_nantools.layertypes import BINARY, CLASS, REQUIRES, SCALE, UNIT, layer_type
from caffe_nantools.prototxt import FLOAT, UINT32, Layer, Net, NetState

#: The breached records that make a breach the source's own rather than theirs: more than this
#: many, and more than :data:`SHARE` of the source.
FEW = 3
SHARE = 0.01
#: Distinct values a tally counts (class labels, 0/255 targets); past it, only ranges.
DISTINCT = 1024
#: A regression target this large (in |value|) against a prediction of order 1 at the start.
RAW_SCALE = 50.0


@dataclass(frozen=True)
class Bound:
    """A contract as one layer of a net holds it on one blob.

    Attributes:
        layer, type: the loss or metric layer; blob: the bottom it reads.
        classes: K, the num_output of the layer making the scores (CLASS), where known.
        ignore: the layer's ignore_label, a value that is always fine.
        one_per_sample: the scores come from an InnerProduct: one label per sample.
        scores: the layer making the scores (whose num_output a fix would change).
    """

    layer: str
    type: str
    blob: str
    kind: str
    classes: Optional[int] = None
    ignore: Optional[float] = None
    one_per_sample: bool = False
    scores: Optional[str] = None
    ignore_block: Optional[str] = None
    aborts: str = ""

    @property
    def name(self) -> str:
        return f"{self.type} {self.layer!r}"


def bound_contracts(net: Net, state: NetState) -> Dict[str, List[Bound]]:
    """Every contract of the net's active loss and metric layers, by the blob it is on."""
    layers = net.active_layers(state)
    out: Dict[str, List[Bound]] = {}
    for at, layer in enumerate(layers):
        for rule in layer_type(layer.type).contract:
            if rule.bottom >= len(layer.bottoms):
                continue
            scores = _producer(layers[:at], layer.bottoms[0]) if rule.kind == CLASS else None
            block = layer.node.find(rule.ignore) if rule.ignore else None
            ignore = block.field("ignore_label", FLOAT) if block is not None else None
            out.setdefault(layer.bottoms[rule.bottom], []).append(
                Bound(
                    layer.name,
                    layer.type,
                    layer.bottoms[rule.bottom],
                    rule.kind,
                    classes=_num_output(scores),
                    ignore=ignore,
                    one_per_sample=scores is not None and scores.type == "InnerProduct",
                    scores=scores.name if scores is not None else None,
                    ignore_block=rule.ignore,
                    aborts=rule.aborts,
                )
            )
    return out


def _producer(before: Sequence[Layer], blob: str) -> Optional[Layer]:
    return next((l for l in reversed(before) if blob in l.tops and not l.in_place(blob)), None)


def _num_output(layer: Optional[Layer]) -> Optional[int]:
    for holder in ("inner_product_param", "convolution_param"):
        params = layer.node.find(holder) if layer is not None else None
        if params is not None:
            return params.field("num_output", UINT32)
    return None


@dataclass
class Tally:
    """What the scanned records of one blob held, for the judgement of the whole source:
    records, those that breach the contract, the distinct values (up to :data:`DISTINCT`),
    values per record, records that are one-hot rows, the range and mean |x|."""

    records: int = 0
    breached: int = 0
    values: Optional[Counter] = field(default_factory=Counter)
    widths: Counter = field(default_factory=Counter)
    one_hot: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    total_abs: float = 0.0
    count: int = 0

    def merge(self, other: Tally) -> None:
        self.records += other.records
        self.breached += other.breached
        if self.values is not None and other.values is not None:
            self.values.update(other.values)
            if len(self.values) > DISTINCT:
                self.values = None
        else:
            self.values = None
        self.widths.update(other.widths)
        self.one_hot += other.one_hot
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        self.total_abs += other.total_abs
        self.count += other.count


def check_rows(rows: np.ndarray, bound: Bound, tally: Tally) -> List[Tuple[int, str]]:
    """The rows (records, flattened) that break ``bound``, each with why; ``tally`` takes
    them all in. Non-finite values are left to the NaN/inf checks."""
    if not len(rows):
        return []  # a batch cut short where Caffe stopped
    rows = rows.reshape(len(rows), -1)
    values = rows.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if bound.ignore is not None:
        finite &= values != bound.ignore
    bad = _breaches(values, bound) & finite
    seen = values[finite]
    tally.records += len(rows)
    tally.widths[rows.shape[1]] += len(rows)
    if seen.size:
        tally.low, tally.high = (
            min(tally.low, float(seen.min())),
            max(tally.high, float(seen.max())),
        )
        tally.total_abs += float(np.abs(seen).sum())
        tally.count += int(seen.size)
    if tally.values is not None and bound.kind != SCALE:
        kinds, counts = np.unique(seen, return_counts=True)
        tally.values.update(dict(zip(kinds.tolist(), counts.tolist())))
        if len(tally.values) > DISTINCT:
            tally.values = None
    if bound.kind == CLASS and rows.shape[1] > 1:
        hot = ((values == 0) | (values == 1)).all(axis=1) & (values.sum(axis=1) == 1)
        tally.one_hot += int(hot.sum())
    broken = np.flatnonzero(bad.any(axis=1))
    tally.breached += len(broken)
    return [(int(r), _why(values[r][bad[r]][0], bound)) for r in broken]


def problem_name(bound: Bound) -> str:
    """A scan finding's ``problem`` for a record that breaks ``bound``."""
    return "label" if bound.kind == CLASS else "target"


def _breaches(values: np.ndarray, bound: Bound) -> np.ndarray:
    if bound.kind == CLASS:
        out = (values < 0) | (values != np.round(values))
        return out | (values >= bound.classes) if bound.classes is not None else out
    if bound.kind == UNIT:
        return (values < 0) | (values > 1)
    if bound.kind == BINARY:
        return (values != 0) & (values != 1)
    return np.zeros(values.shape, bool)


def _why(value: float, bound: Bound) -> str:
    """Why ``value`` breaks ``bound``, naming the layer whose contract it is."""
    if bound.kind == CLASS:
        if value >= 0 and value == round(value):
            return f"label {value:g} >= {bound.classes}, the number of classes of {bound.name}"
        what = "is negative" if value < 0 else "is not a whole number"
        return f"label {value:g} {what}: {bound.name} takes class indices"
    what = "is outside [0, 1]" if bound.kind == UNIT else "is neither 0 nor 1"
    return (
        f"{'target' if bound.kind == UNIT else 'value'} {value:g} {what}, as {bound.name} requires"
    )


@dataclass(frozen=True)
class Transform:
    """A copy of the source with ``blob`` rewritten: ``(x - offset) / divisor``, or each row's
    argmax (one-hot rows to class indices)."""

    blob: str
    offset: float = 0.0
    divisor: float = 1.0
    argmax: bool = False

    def apply(self, rows: np.ndarray) -> np.ndarray:
        if self.argmax:
            flat = rows.reshape(len(rows), -1)
            return flat.argmax(axis=1).astype(rows.dtype)
        return ((rows - self.offset) / self.divisor).astype(rows.dtype)

    def label(self, value: int) -> int:
        """A Datum's (whole) label, transformed."""
        return int(round((value - self.offset) / self.divisor))

    @property
    def words(self) -> str:
        if self.argmax:
            return f"{self.blob} as each row's argmax (its class index)"
        shift = f"{self.blob} - {self.offset:g}" if self.offset else self.blob
        return shift if self.divisor == 1 else f"({shift}) / {self.divisor:g}"


#: What :meth:`Breach.to_dict` writes: the contract's layer and blob, what breaks it, how often
#: and the fix in words (not the setting or the transform, which are for the fix's code).
_BREACH_FIELDS = ("bound.layer", "bound.type", "bound.blob", "source", "what", "fix", "records")


@dataclass
class Breach:
    """A systematic breach of a contract by a whole source: what is wrong, and its fix: a
    net setting (``setting``: layer name -> (block.field, value)) or a transformed copy."""

    bound: Bound
    source: str
    what: str
    fix: str
    records: int = 0
    setting: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    transform: Optional[Transform] = None

    #: The values (of a record's breach) that the fix mends, as (low, high, whole only).
    mends: Tuple[float, float, bool] = (float("inf"), float("-inf"), True)

    def mended(self, detail: str) -> bool:
        """Whether the fix mends the record whose breach a finding's ``detail`` tells."""
        try:
            value = float(detail.split()[1])
        except (IndexError, ValueError):
            return False
        low, high, whole = self.mends
        return low <= value <= high and (value == int(value) or not whole)

    @property
    def detail(self) -> str:
        return f"{self.what}; fix: {self.fix}"

    def to_dict(self) -> dict:
        return fields_dict(self, names=_BREACH_FIELDS)


def systematic_breach(
    tally: Tally, bound: Bound, source: str, others: Sequence[Bound] = ()
) -> Optional[Breach]:
    """The source's systematic breach of ``bound``, or None (no breach, or a few records:
    theirs). ``others``: the other contracts on the same blob (an Accuracy beside the loss),
    which an ignore_label must reach too."""
    if bound.kind == CLASS:
        return _class_breach(tally, bound, source, others)
    if bound.kind in (UNIT, BINARY):
        return _range_breach(tally, bound, source)
    return None


def _many(tally: Tally) -> bool:
    return tally.breached > FEW and tally.breached > SHARE * tally.records


def _class_breach(
    tally: Tally, bound: Bound, source: str, others: Sequence[Bound]
) -> Optional[Breach]:
    k = bound.classes
    values = tally.values
    wide = max(tally.widths, default=1)
    if bound.one_per_sample and wide > 1:
        return _wide_labels(tally, bound, source, wide)
    if not _many(tally) or values is None or k is None:
        return None
    # Labels that are no whole number are their records' own fault, whatever the rest hold.
    labels = sorted(v for v in values if v != bound.ignore and v == int(v))
    out = [v for v in labels if v < 0 or v >= k]
    if not out:
        return None
    count = sum(values[v] for v in out)
    if labels[0] == 1 and labels[-1] == k:
        return Breach(
            bound,
            source,
            f"labels 1..{k} where {bound.name} wants 0..{k - 1}: shifted by one",
            f"a copy with {bound.blob} - 1",
            tally.breached,
            transform=Transform(bound.blob, offset=1),
            mends=(k, k, True),
        )
    if len(out) == 1 and out[0] != k:
        void = out[0]
        if bound.ignore is not None or any(o.ignore is not None for o in others):
            return None  # one ignore_label per layer: another value is taken already
        layers = [bound] + [o for o in others if o.kind == CLASS and o.ignore_block]
        return Breach(
            bound,
            source,
            f"{count} label values are {void:g} (a 'void' class past the {k} classes, in "
            f"{tally.breached} of {tally.records} records) and {bound.name} has no ignore_label",
            " and ".join(
                f"{b.ignore_block} {{ ignore_label: {void:g} }} in {b.layer!r}" for b in layers
            ),
            tally.breached,
            setting={b.layer: (f"{b.ignore_block}.ignore_label", f"{void:g}") for b in layers},
            mends=(void, void, True),
        )
    if out[0] >= k and bound.scores is not None:
        top = int(out[-1]) + 1
        return Breach(
            bound,
            source,
            f"labels up to {out[-1]:g} in {tally.breached} of {tally.records} records: "
            f"{top} classes, but {bound.scores!r} makes {k} scores",
            f"num_output: {top} in {bound.scores!r}",
            tally.breached,
            setting={bound.scores: (_num_output_field(bound), str(top))},
            mends=(k, top - 1, True),
        )
    return None


def _wide_labels(tally: Tally, bound: Bound, source: str, wide: int) -> Breach:
    """Labels ``wide`` values per sample for a layer that takes one class index: one-hot rows
    (a copy mends them), or rows the net's scores must match."""
    k = bound.classes
    # Caffe CHECKs the label count at set-up: every record is wrong, not a few.
    if k is not None and wide == k and tally.one_hot == tally.records:
        return Breach(
            bound,
            source,
            f"{bound.blob} holds one-hot rows of {k} values, {bound.name} takes one class "
            "index per sample",
            "a copy with each row's argmax as its label",
            tally.records,
            transform=Transform(bound.blob, argmax=True),
            mends=(float("-inf"), float("inf"), False),
        )
    return Breach(
        bound,
        source,
        f"{bound.blob} holds {wide} values per sample, {bound.name} takes one class index "
        "per sample",
        f"store one label per sample (or make the scores {wide} wide)",
        tally.records,
    )


def _num_output_field(bound: Bound) -> str:
    return (
        "inner_product_param.num_output" if bound.one_per_sample else "convolution_param.num_output"
    )


def _range_breach(tally: Tally, bound: Bound, source: str) -> Optional[Breach]:
    if not _many(tally) or tally.count == 0:
        return None
    low, high = tally.low, tally.high
    whole = tally.values is not None and all(v == int(v) for v in tally.values)
    if low >= 0 and 1 < high <= 255 and whole:
        return Breach(
            bound,
            source,
            f"{bound.blob} holds 0..255 values (up to {high:g}) in {tally.breached} of "
            f"{tally.records} records, where {bound.name} wants {REQUIRES[bound.kind]}",
            f"a copy with {bound.blob} / 255",
            tally.breached,
            transform=Transform(bound.blob, divisor=255),
            mends=(0, 255, False),
        )
    if low == -1 and high == 1 and (bound.kind == BINARY or whole):
        return Breach(
            bound,
            source,
            f"{bound.blob} is -1/1 in {tally.breached} of {tally.records} records, where "
            f"{bound.name} wants {REQUIRES[bound.kind]}",
            f"a copy with ({bound.blob} + 1) / 2",
            tally.breached,
            transform=Transform(bound.blob, offset=-1, divisor=2),
            mends=(-1, 1, True),
        )
    return Breach(
        bound,
        source,
        f"{bound.blob} ranges {low:g}..{high:g} in {tally.breached} of {tally.records} records, "
        f"where {bound.name} wants {REQUIRES[bound.kind]}",
        f"bring {bound.blob} to {REQUIRES[bound.kind]} where it is made",
        tally.breached,
    )


def scale_note(tally: Tally, bound: Bound, source: str) -> Optional[str]:
    """A regression target far off the prediction's scale (raw pixel coordinates): its
    gradient starts that many times larger, so the net's rate is too high for it."""
    if bound.kind != SCALE or not tally.count:
        return None
    biggest = max(abs(tally.low), abs(tally.high))
    if biggest < RAW_SCALE:
        return None
    mean = tally.total_abs / tally.count
    return (
        f"{source}: {bound.blob}, the target of {bound.name}, reaches {biggest:.4g} (mean |x| "
        f"{mean:.3g}), where the prediction starts near 1: its gradient starts about "
        f"{mean:.0f}x a normalized target's; normalize the targets (divide by {biggest:.4g}) "
        f"or lower base_lr about {mean:.0f}x"
    )
