"""The changes to try on a layer of a given type that made non-finite values from finite
inputs (or on the net setting that makes them), each the net's text with the change, in the
order to try them: the entry of the layer's type names its function
(:mod:`~caffe_nantools.layertypes.table`), and hunt trains each until one stays finite."""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

from caffe_nantools.prototxt import (
    BOOL,
    FLOAT,
    INT32,
    Layer,
    Net,
    NetState,
    dump,
    set_param,
)

TRAIN = NetState("TRAIN")
#: Shifts tried before a Log or a Power, smallest first: the least change that keeps the input
#: off 0 (log 0 = -inf, the gradient of a square root at 0 is inf).
SHIFTS = (1e-6, 1e-3, 1.0)
#: Caffe's default BatchNorm eps.
BATCH_NORM_EPS = "1e-05"


class Edit(NamedTuple):
    """A change to the net and the net's text with it."""

    change: str
    net_text: str


#: A type's edits: ``(net_text, path, layer, nan)`` to the edits, best first; ``nan``: the
#: failure was a NaN in the forward pass (a fractional power of a negative base).
Edits = Callable[[str, str, Layer, bool], List[Edit]]


def global_stats_edit(net_text: str, path: str) -> Optional[Edit]:
    """use_global_stats dropped from every BatchNorm of the TRAIN net that sets it true: with
    no statistics yet (training from scratch) it divides by sqrt(eps), about 300x per layer;
    without the setting Caffe takes the batch's statistics in TRAIN and the stored ones in
    TEST."""
    net = Net.parse(net_text, path)
    names = [
        l.name
        for l in net.active_layers(TRAIN)
        if l.type == "BatchNorm" and _value(l, "batch_norm_param", "use_global_stats", BOOL)
    ]
    if not names:
        return None
    for layer in net.layers:
        params = layer.node.find("batch_norm_param") if layer.name in names else None
        for field in params.find_all("use_global_stats") if params is not None else ():
            params.remove(field)
    return Edit(
        f"use_global_stats dropped from BatchNorm {', '.join(names)} (Caffe then uses the "
        "batch's statistics in TRAIN, the stored ones in TEST)",
        dump(net.doc),
    )


def log_edits(net_text: str, path: str, layer: Layer, nan: bool) -> List[Edit]:
    """A shift of the Log's input off 0, smallest first."""
    shift = _value(layer, "log_param", "shift", FLOAT) or 0.0
    return [
        _edited(
            net_text,
            path,
            [layer.name],
            "log_param",
            "shift",
            _number(shift + s),
            f"Log {layer.name!r}: log_param shift {_number(shift + s)} (log of 0 is -inf)",
        )
        for s in SHIFTS
    ]


def power_edits(net_text: str, path: str, layer: Layer, nan: bool) -> List[Edit]:
    """A shift of the Power's base off 0, and a whole power in place of a fractional one
    (first when the failure was a NaN: a negative base, which no small shift lifts)."""
    power = _value(layer, "power_param", "power", FLOAT)
    power = 1.0 if power is None else power
    shift = _value(layer, "power_param", "shift", FLOAT) or 0.0
    shifts = [
        _edited(
            net_text,
            path,
            [layer.name],
            "power_param",
            "shift",
            _number(shift + s),
            f"Power {layer.name!r}: power_param shift {_number(shift + s)} (x^{power:g} at 0 is "
            "not finite, or its gradient is not)",
        )
        for s in SHIFTS
    ]
    if power == int(power):
        return shifts
    whole = max(1, round(power))
    integer = _edited(
        net_text,
        path,
        [layer.name],
        "power_param",
        "power",
        str(whole),
        f"Power {layer.name!r}: power {whole} instead of {power:g} (a fractional power of a "
        "negative value is NaN; or feed it values >= 0: a ReLU or AbsVal before it)",
    )
    # A NaN from finite inputs is a negative base, which no small shift lifts.
    return [integer] + shifts if nan else shifts + [integer]


def exp_edits(net_text: str, path: str, layer: Layer, nan: bool) -> List[Edit]:
    """Exp's scale brought to 1 where it is larger than 1 in size."""
    scale = _value(layer, "exp_param", "scale", FLOAT)
    if scale is None or abs(scale) <= 1:
        return []
    return [
        _edited(
            net_text,
            path,
            [layer.name],
            "exp_param",
            "scale",
            "1",
            f"Exp {layer.name!r}: exp_param scale 1 instead of {scale:g} (exp of more than 88 "
            "overflows float)",
        )
    ]


def batch_norm_edits(net_text: str, path: str, layer: Layer, nan: bool) -> List[Edit]:
    """BatchNorm's eps at Caffe's default where it is 0 or below, and use_global_stats
    dropped in TRAIN."""
    eps = _value(layer, "batch_norm_param", "eps", FLOAT)
    edits = []
    if eps is not None and not eps > 0:
        edits.append(
            _edited(
                net_text,
                path,
                [layer.name],
                "batch_norm_param",
                "eps",
                BATCH_NORM_EPS,
                f"BatchNorm {layer.name!r}: eps {BATCH_NORM_EPS} instead of {eps:g} (a constant "
                "channel gives 0/0)",
            )
        )
    stats = global_stats_edit(net_text, path)
    return edits + ([stats] if stats is not None else [])


def pooling_edits(net_text: str, path: str, layer: Layer, nan: bool) -> List[Edit]:
    """Pooling's stride brought down to its kernel where it is larger."""
    params = layer.node.find("pooling_param")
    if params is None:
        return []
    kernel = params.field("kernel_size", INT32)
    stride = params.field("stride", INT32)
    if kernel is None or stride is None or stride <= kernel:
        return []
    return [
        _edited(
            net_text,
            path,
            [layer.name],
            "pooling_param",
            "stride",
            str(kernel),
            f"Pooling {layer.name!r}: stride {kernel} instead of {stride} (no window past the "
            "input, where MAX gives -FLT_MAX)",
        )
    ]


def _value(layer: Layer, block: str, name: str, kind):
    params = layer.node.find(block)
    return params.field(name, kind) if params is not None else None


def _number(value: float) -> str:
    return f"{value:g}"


def _edited(
    net_text: str, path: str, names: List[str], block: str, name: str, raw: str, change: str
) -> Edit:
    """The net with ``block { name: raw }`` set in the layers ``names`` (the field replaced, or
    added to the block, or the block added)."""
    net = Net.parse(net_text, path)
    for layer in net.layers:
        if layer.name in names:
            set_param(layer.node, block, name, raw)
    return Edit(change, dump(net.doc))
