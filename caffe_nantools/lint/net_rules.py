"""Net rules: layers and settings known to make NaN or inf."""
from __future__ import annotations

from typing import Dict, Optional

from caffe_nantools.lint.findings import Findings
from caffe_nantools.lint.modules import findable
from caffe_nantools.lint.shapes import hw_pair, blob_sizes, empty_windows
from caffe_nantools.prototxt.fields import BOOL, FLOAT, STRING, Kind
from caffe_nantools.prototxt.net import Layer, Net, NetState

LEARNED = ("Convolution", "InnerProduct", "Deconvolution", "Embed")
DATA = ("Data", "ImageData", "WindowData")
#: Layers whose output is always > 0, so a Log/Power on it is safe.
POSITIVE = ("Softmax", "Sigmoid", "Exp")


def _param(layer: Layer, block: str, name: str, kind: Kind, default=None):
    node = layer.node.find(block)
    return node.field(name, kind, default) if node is not None else default


def check_net(net: Net, out: Findings) -> None:
    writer: Dict[str, Layer] = {}  # the last layer (in file order) that wrote each blob
    sizes = {**blob_sizes(net, "TEST"), **blob_sizes(net, "TRAIN")}
    for layer in net.layers:
        source: Optional[Layer] = writer.get(layer.bottoms[0]) if layer.bottoms else None
        _check_layer(layer, source, out)
        if layer.type == "Pooling":
            _check_pooling(layer, sizes.get(layer.bottoms[0]) if layer.bottoms else None, out)
        for top in layer.tops:
            writer[top] = layer


def _check_pooling(layer: Layer, size, out: Findings) -> None:
    params = layer.node.find("pooling_param")
    if params is None or params.field("global_pooling", BOOL, False):
        return
    (kh, kw), (sh, sw), (ph, pw) = hw_pair(params, "kernel", 1), hw_pair(params, "stride", 1), hw_pair(params, "pad", 0)
    if ph >= kh or pw >= kw:
        out.add("pool-pad", "error", layer.node, f"Pooling {layer.name!r}: pad {ph} >= kernel {kh}: windows made of padding only",
                "make pad < kernel_size")
        return
    if size is None:
        if sh > kh or sw > kw:
            out.add("pool-stride", "warning", layer.node,
                    f"Pooling {layer.name!r}: stride {sh} > kernel {kh} and the input size is not known here; with Caffe's ceil "
                    "rounding a window can fall past the input, where MAX gives -FLT_MAX (inf downstream) and AVE 0",
                    "make stride <= kernel_size, or declare the input shape so lint can check the windows")
        return
    rows, cols = empty_windows(size[0], kh, sh, ph), empty_windows(size[1], kw, sw, pw)
    if rows or cols:
        parts = [f"{what} {', '.join(f'{p} (input {a}..{b})' for p, a, b in spots)}"
                 for what, spots in (("output rows", rows), ("output columns", cols)) if spots]
        out.add("pool-empty-window", "error", layer.node,
                f"Pooling {layer.name!r} on a {size[0]}x{size[1]} input: {'; '.join(parts)} lie past the input: MAX gives "
                "-FLT_MAX there (inf downstream), AVE 0",
                "make stride <= kernel_size, or pad/crop the input so the windows fit")


def _check_layer(layer: Layer, source: Optional[Layer], out: Findings) -> None:
    at = layer.node
    kind = layer.type
    if kind == "BatchNorm":
        eps = _param(layer, "batch_norm_param", "eps", FLOAT, 1e-5)
        if not eps > 0:
            out.add("batchnorm-eps", "error", at, f"BatchNorm {layer.name!r}: eps {eps} <= 0: a constant channel gives 0/0 = NaN",
                    "leave eps at its default 1e-5 or set a positive value")
        if _param(layer, "batch_norm_param", "use_global_stats", BOOL, False) and layer.active(NetState("TRAIN")):
            out.add("batchnorm-global-train", "warning", at, f"BatchNorm {layer.name!r}: use_global_stats: true in TRAIN uses the stored statistics, not the batch's",
                    "drop use_global_stats in the TRAIN net (Caffe chooses it by phase)")
    elif kind == "MultinomialLogisticLoss" and source is not None and source.type == "Softmax":
        out.add("softmax-logloss", "warning", at, f"Softmax {source.name!r} then MultinomialLogisticLoss: log of a probability that underflows to 0 is -inf",
                "use SoftmaxWithLoss on the scores instead")
    elif kind == "InfogainLoss" and (source is None or source.type not in ("Softmax",)):
        out.add("infogain-unnormalized", "warning", at, f"InfogainLoss {layer.name!r} is fed {source.type if source else 'its input'} scores, not probabilities: log of values <= 0",
                "put a Softmax before it")
    elif kind in ("Log", "Power") and (source is None or source.type not in POSITIVE):
        power = _param(layer, "power_param", "power", FLOAT, 1.0)
        if kind == "Log" or power < 1 and power != 0:
            what = source.type if source else "the input"
            out.add("log-nonpositive", "warning", at, f"{kind} {layer.name!r} on {what} output, which can be <= 0: log or fractional power of it is -inf or NaN",
                    "add a shift (power_param/log_param shift) or feed it a positive input")
    if kind in LEARNED:
        block = {"Convolution": "convolution_param", "Deconvolution": "convolution_param", "InnerProduct": "inner_product_param", "Embed": "embed_param"}[kind]
        params = layer.node.find(block)
        if params is not None and params.find("weight_filler") is None:
            out.add("no-weight-filler", "warning", at, f"{kind} {layer.name!r} has no weight_filler: its weights start at 0",
                    "add weight_filler { type: \"xavier\" } (or gaussian)")
    if kind in DATA:
        transform = layer.node.find("transform_param")
        if transform is None or (transform.field("scale", FLOAT) is None and transform.field("mean_file", STRING) is None
                                 and not transform.fields("mean_value", FLOAT)):
            out.add("raw-input", "info", at, f"{kind} {layer.name!r} feeds raw 0..255 values (no scale, no mean)",
                    "add transform_param { scale: 0.00390625 } or a mean")
    if kind == "HDF5Data" and _param(layer, "hdf5_data_param", "shuffle", BOOL, False):
        out.add("hdf5-shuffle", "info", at, f"HDF5Data {layer.name!r} shuffles: a bad row shows up at a different iteration each run",
                "turn shuffle off while hunting a NaN (scan --mode net does)")
    if kind == "Python":
        module = _param(layer, "python_param", "module", STRING)
        if module is not None and not findable(module):
            out.add("python-module", "error", at, f"Python layer {layer.name!r}: module {module!r} cannot be imported here",
                    "put its folder on PYTHONPATH (python_param.module is an import name, not a path)")
