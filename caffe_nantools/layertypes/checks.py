"""What lint checks in a layer of a given type: one function per rule, each reading a
:class:`~caffe_nantools.layertypes.rules.LayerSeen` of a layer of the types whose entries list
it (:mod:`~caffe_nantools.layertypes.table`), so none tests the layer's type again."""

from __future__ import annotations

import re
from typing import Optional

from caffe_nantools.layertypes.modules import findable
from caffe_nantools.layertypes.rules import Found, LayerProblem, LayerSeen, Rule
from caffe_nantools.layertypes.windows import empty_windows, hw_pair
from caffe_nantools.prototxt import BOOL, FLOAT, STRING, Enum, Kind, Layer, NetState

#: Layers whose output is always > 0, so a Log/Power on it is safe.
POSITIVE = ("Softmax", "Sigmoid", "Exp")
NORMALIZATION = Enum("FULL", "VALID", "BATCH_SIZE", "NONE")
#: Names of layers that replace NaN (NaN2Zero, NanToNum, RemoveNaN, ...), lower-case letters and digits only.
NAN_HIDING = re.compile(
    r"nan(2|to)(zero|num|0)|(remove|replace|filter|clean|mask|zero|fix|suppress|ignore|skip|kill|drop)nans?"
    r"|nans?(filter|remov|replac|mask|clean|guard|zero|kill)"
)


def _param(layer: Layer, block: str, name: str, kind: Kind, default=None):
    node = layer.node.find(block)
    return node.field(name, kind, default) if node is not None else default


def _batchnorm_eps(seen: LayerSeen) -> Found:
    layer = seen.layer
    eps = _param(layer, "batch_norm_param", "eps", FLOAT, 1e-5)
    if not eps > 0:
        yield LayerProblem(
            layer,
            "error",
            f"BatchNorm {layer.name!r} (eps {eps:g})",
            "eps <= 0: a constant channel gives 0/0 = NaN",
            "leave eps at its default 1e-5 or set a positive value",
        )


def _batchnorm_global_train(seen: LayerSeen) -> Found:
    layer = seen.layer
    if _param(layer, "batch_norm_param", "use_global_stats", BOOL, False) and layer.active(
        NetState("TRAIN")
    ):
        yield LayerProblem(
            layer,
            "warning",
            f"BatchNorm {layer.name!r}",
            "use_global_stats: true in TRAIN uses the stored statistics, not the batch's",
            "drop use_global_stats in the TRAIN net (Caffe chooses it by phase)",
        )


def _softmax_logloss(seen: LayerSeen) -> Found:
    layer, source = seen.layer, seen.source
    if source is not None and source.type == "Softmax":
        yield LayerProblem(
            layer,
            "warning",
            f"MultinomialLogisticLoss {layer.name!r} after Softmax {source.name!r}",
            "log of a probability that underflows to 0 is -inf",
            "use SoftmaxWithLoss on the scores instead",
        )


def _infogain_unnormalized(seen: LayerSeen) -> Found:
    layer, source = seen.layer, seen.source
    if source is None or source.type != "Softmax":
        yield LayerProblem(
            layer,
            "warning",
            f"InfogainLoss {layer.name!r} on {source.type if source else 'its input'} scores",
            "not probabilities: log of values <= 0",
            "put a Softmax before it",
        )


def _log_nonpositive(seen: LayerSeen) -> Found:
    layer, source, kind = seen.layer, seen.source, seen.layer.type
    if source is not None and source.type in POSITIVE:
        return
    power = _param(layer, "power_param", "power", FLOAT, 1.0)
    if kind == "Log" or power < 1 and power != 0:
        yield LayerProblem(
            layer,
            "warning",
            f"{kind} {layer.name!r} on {source.type if source else 'the input'} output",
            "its input can be <= 0: log or fractional power of it is -inf or NaN",
            "add a shift (power_param/log_param shift) or feed it a positive input",
        )


def _smoothl1_sigma(seen: LayerSeen) -> Found:
    layer = seen.layer
    if _param(layer, "smooth_l1_loss_param", "sigma", FLOAT, 1.0) == 0:
        yield LayerProblem(
            layer,
            "warning",
            f"SmoothL1Loss {layer.name!r}",
            "sigma 0 divides by zero (1/sigma^2 = inf): the loss and its gradient are 0 for every finite difference "
            "(the boxes learn nothing) and inf - inf = NaN for an infinite one",
            "leave sigma at 1 (or 3, as Faster R-CNN's RPN)",
        )


def _multibox_valid(seen: LayerSeen) -> Found:
    layer = seen.layer
    if _normalization(layer) == "VALID":
        yield LayerProblem(
            layer,
            "info",
            f"MultiBoxLoss {layer.name!r}",
            "normalization VALID divides the loss by the batch's matched boxes, 0 in a batch without any: forks "
            "without Caffe's max(1, count) make that 0/0 = NaN",
            "drop the images without boxes (scan lists empty annotation lists), or use normalization: BATCH_SIZE",
        )


#: The parameter block of each learned layer, where its weight_filler goes.
LEARNED_PARAMS = {
    "Convolution": "convolution_param",
    "Deconvolution": "convolution_param",
    "InnerProduct": "inner_product_param",
    "Embed": "embed_param",
}


def _no_weight_filler(seen: LayerSeen) -> Found:
    layer = seen.layer
    if seen.deploy:
        return
    params = layer.node.find(LEARNED_PARAMS[layer.type])
    if params is not None and params.find("weight_filler") is None:
        yield LayerProblem(
            layer,
            "warning",
            f"{layer.type} {layer.name!r}",
            "no weight_filler: the weights start at 0 unless they are copied from a caffemodel",
            'add weight_filler { type: "xavier" } (or gaussian)',
        )


def _raw_input(seen: LayerSeen) -> Found:
    layer = seen.layer
    transform = layer.node.find("transform_param")
    if transform is None or (
        transform.field("scale", FLOAT) is None
        and transform.field("mean_file", STRING) is None
        and not transform.fields("mean_value", FLOAT)
    ):
        yield LayerProblem(
            layer,
            "info",
            f"{layer.type} {layer.name!r}",
            "feeds raw 0..255 values (no scale, no mean)",
            "add transform_param { scale: 0.00390625 } or a mean",
        )


def _hdf5_shuffle(seen: LayerSeen) -> Found:
    layer = seen.layer
    if _param(layer, "hdf5_data_param", "shuffle", BOOL, False):
        yield LayerProblem(
            layer,
            "info",
            f"HDF5Data {layer.name!r}",
            "shuffles: a bad row shows up at a different iteration each run",
            "turn shuffle off while hunting a NaN (scan --mode net does)",
        )


def _python_module(seen: LayerSeen) -> Found:
    layer = seen.layer
    module = _param(layer, "python_param", "module", STRING)
    if module is not None and not findable(module):
        yield LayerProblem(
            layer,
            "error",
            f"Python layer {layer.name!r} (module {module!r})",
            "cannot be imported here",
            "put its folder on PYTHONPATH (python_param.module is an import name, not a path)",
        )


def _normalization(layer: Layer) -> str:
    """LossParameter's normalization as Caffe resolves it: the mode, else the old ``normalize``
    flag (true: VALID), else VALID."""
    params = layer.node.find("loss_param")
    if params is None:
        return "VALID"
    mode = params.field("normalization", NORMALIZATION)
    if mode is not None:
        return mode
    return "VALID" if params.field("normalize", BOOL, True) else "BATCH_SIZE"


def _hides_nan(name: str) -> bool:
    return bool(NAN_HIDING.search(re.sub(r"[^a-z0-9]", "", name.lower())))


def _named_to_hide_nan(seen: LayerSeen) -> Found:
    layer = seen.layer
    python = layer.node.find("python_param")
    names = [layer.type] + (
        [str(python.get(f, "")) for f in ("module", "layer")]
        if layer.type == "Python" and python
        else []
    )
    hider = next((n for n in names if _hides_nan(n)), None)
    if hider is not None:
        yield LayerProblem(
            layer,
            "warning",
            f"{layer.type} {layer.name!r}" + (f" ({hider})" if hider != layer.type else ""),
            "replaces NaN instead of stopping it: the loss stays finite while the layers before it are broken",
            "remove it while hunting the NaN, and fix where the NaN comes from (caffe-nantools inject, scan)",
        )


def _threshold_hides_nan(seen: LayerSeen) -> Found:
    layer = seen.layer
    yield LayerProblem(
        layer,
        "info",
        f"Threshold {layer.name!r}",
        "gives 0 for NaN (NaN > threshold is false), so a NaN before it does not reach the loss",
        "check its input with caffe-nantools inject while hunting a NaN",
    )


def _pool_windows(layer: Layer) -> Optional[tuple]:
    """A Pooling layer's (kernel, stride, pad), each (height, width); None without
    pooling_param and for global pooling."""
    params = layer.node.find("pooling_param")
    if params is None or params.field("global_pooling", BOOL, False):
        return None
    return hw_pair(params, "kernel", 1), hw_pair(params, "stride", 1), hw_pair(params, "pad", 0)


def _pads_only(windows: tuple) -> bool:
    (kh, kw), _, (ph, pw) = windows
    return ph >= kh or pw >= kw


def _pool_pad(seen: LayerSeen) -> Found:
    layer, windows = seen.layer, _pool_windows(seen.layer)
    if windows is not None and _pads_only(windows):
        (kh, _), _, (ph, _) = windows
        yield LayerProblem(
            layer,
            "error",
            f"Pooling {layer.name!r}",
            f"pad {ph} >= kernel {kh}: windows made of padding only (Caffe refuses it at set-up)",
            "make pad < kernel_size",
        )


def _pool_stride(seen: LayerSeen) -> Found:
    layer, windows = seen.layer, _pool_windows(seen.layer)
    if windows is None or _pads_only(windows) or seen.size is not None:
        return
    (kh, kw), (sh, sw), _ = windows
    if sh > kh or sw > kw:
        yield LayerProblem(
            layer,
            "warning",
            f"Pooling {layer.name!r} (stride {sh}, kernel {kh})",
            "stride > kernel and the input size is not known here; with Caffe's ceil rounding a window can "
            "fall past the input, where MAX gives -FLT_MAX (inf downstream) and AVE 0",
            "make stride <= kernel_size, or declare the input shape so lint can check the windows",
        )


def _pool_empty_window(seen: LayerSeen) -> Found:
    layer, windows, size = seen.layer, _pool_windows(seen.layer), seen.size
    if windows is None or _pads_only(windows) or size is None:
        return
    (kh, kw), (sh, sw), (ph, pw) = windows
    rows, cols = empty_windows(size[0], kh, sh, ph), empty_windows(size[1], kw, sw, pw)
    if rows or cols:
        parts = [
            f"{what} {', '.join(f'{p} (input {a}..{b})' for p, a, b in spots)}"
            for what, spots in (("output rows", rows), ("output columns", cols))
            if spots
        ]
        yield LayerProblem(
            layer,
            "error",
            f"Pooling {layer.name!r} on a {size[0]}x{size[1]} input",
            f"{'; '.join(parts)} lie past the input: MAX gives -FLT_MAX there (inf downstream), AVE 0",
            "make stride <= kernel_size, or pad/crop the input so the windows fit",
        )


# The rules, each listed by the entries of the types it checks (the table's order of a type's
# rules is the order of their findings at one layer).
BATCHNORM_EPS = Rule("batchnorm-eps", "BatchNorm's eps is above 0", _batchnorm_eps)
BATCHNORM_GLOBAL_TRAIN = Rule(
    "batchnorm-global-train",
    "BatchNorm uses the batch's statistics in TRAIN",
    _batchnorm_global_train,
)
SOFTMAX_LOGLOSS = Rule(
    "softmax-logloss", "MultinomialLogisticLoss does not take a Softmax's output", _softmax_logloss
)
INFOGAIN_UNNORMALIZED = Rule(
    "infogain-unnormalized", "InfogainLoss takes a Softmax's output", _infogain_unnormalized
)
LOG_NONPOSITIVE = Rule(
    "log-nonpositive", "Log and fractional Power take a positive input", _log_nonpositive
)
SMOOTHL1_SIGMA = Rule("smoothl1-sigma", "SmoothL1Loss's sigma is not 0", _smoothl1_sigma)
MULTIBOX_VALID = Rule(
    "multibox-valid",
    "MultiBoxLoss's VALID normalization (0/0 without boxes in forks)",
    _multibox_valid,
)
NO_WEIGHT_FILLER = Rule(
    "no-weight-filler", "learned layers of a training net have a weight_filler", _no_weight_filler
)
RAW_INPUT = Rule("raw-input", "data layers scale or center their input", _raw_input)
HDF5_SHUFFLE = Rule("hdf5-shuffle", "HDF5Data does not shuffle", _hdf5_shuffle)
PYTHON_MODULE = Rule("python-module", "a Python layer's module can be imported", _python_module)
NAMED_TO_HIDE_NAN = Rule("hides-nan", "no layer named for replacing NaN", _named_to_hide_nan)
THRESHOLD_HIDES_NAN = Rule("hides-nan", "Threshold, which turns NaN into 0", _threshold_hides_nan)
POOL_PAD = Rule("pool-pad", "Pooling's pad is below its kernel", _pool_pad)
POOL_STRIDE = Rule(
    "pool-stride", "Pooling's stride is at most its kernel (input size unknown)", _pool_stride
)
POOL_EMPTY_WINDOW = Rule(
    "pool-empty-window", "Pooling's windows lie on its input (input size known)", _pool_empty_window
)
