"""Net rules: layers and settings known to make NaN or inf."""
from __future__ import annotations

import importlib.util
from typing import Dict, Optional

from caffe_nantools.lint.findings import Findings
from caffe_nantools.prototxt.net import Layer, Net, NetState

LEARNED = ("Convolution", "InnerProduct", "Deconvolution", "Embed")
DATA = ("Data", "ImageData", "WindowData")
#: Layers whose output is always > 0, so a Log/Power on it is safe.
POSITIVE = ("Softmax", "Sigmoid", "Exp")


def _param(layer: Layer, block: str, name: str, default=None):
    node = layer.node.find(block)
    return node.get(name, default) if node is not None else default


def check_net(net: Net, out: Findings) -> None:
    writer: Dict[str, Layer] = {}  # the last layer (in file order) that wrote each blob
    for layer in net.layers:
        source: Optional[Layer] = writer.get(layer.bottoms[0]) if layer.bottoms else None
        _check_layer(layer, source, out)
        for top in layer.tops:
            writer[top] = layer


def _check_layer(layer: Layer, source: Optional[Layer], out: Findings) -> None:
    at = layer.node
    kind = layer.type
    if kind == "Pooling":
        kernel = _param(layer, "pooling_param", "kernel_size") or _param(layer, "pooling_param", "kernel_h")
        stride = _param(layer, "pooling_param", "stride", 1)
        pad = _param(layer, "pooling_param", "pad", 0)
        if kernel and not _param(layer, "pooling_param", "global_pooling") == "true":
            if stride > kernel:
                out.add("pool-stride", "warning", at, f"Pooling {layer.name!r}: stride {stride} > kernel {kernel}; with Caffe's ceil rounding a window can fall past the input, where MAX gives -FLT_MAX (inf downstream) and AVE 0",
                        "make stride <= kernel_size")
            if pad >= kernel:
                out.add("pool-pad", "error", at, f"Pooling {layer.name!r}: pad {pad} >= kernel {kernel}: windows made of padding only",
                        "make pad < kernel_size")
    elif kind == "BatchNorm":
        eps = _param(layer, "batch_norm_param", "eps", 1e-5)
        if float(eps) <= 0:
            out.add("batchnorm-eps", "error", at, f"BatchNorm {layer.name!r}: eps {eps} <= 0: a constant channel gives 0/0 = NaN",
                    "leave eps at its default 1e-5 or set a positive value")
        if str(_param(layer, "batch_norm_param", "use_global_stats", "")) == "true" and layer.active(NetState("TRAIN")):
            out.add("batchnorm-global-train", "warning", at, f"BatchNorm {layer.name!r}: use_global_stats: true in TRAIN uses the stored statistics, not the batch's",
                    "drop use_global_stats in the TRAIN net (Caffe chooses it by phase)")
    elif kind == "MultinomialLogisticLoss" and source is not None and source.type == "Softmax":
        out.add("softmax-logloss", "warning", at, f"Softmax {source.name!r} then MultinomialLogisticLoss: log of a probability that underflows to 0 is -inf",
                "use SoftmaxWithLoss on the scores instead")
    elif kind == "InfogainLoss" and (source is None or source.type not in ("Softmax",)):
        out.add("infogain-unnormalized", "warning", at, f"InfogainLoss {layer.name!r} is fed {source.type if source else 'its input'} scores, not probabilities: log of values <= 0",
                "put a Softmax before it")
    elif kind in ("Log", "Power") and (source is None or source.type not in POSITIVE):
        power = _param(layer, "power_param", "power", 1.0)
        if kind == "Log" or float(power) < 1 and float(power) != 0:
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
        if transform is None or (transform.get("scale") is None and transform.get("mean_file") is None and not transform.get_all("mean_value")):
            out.add("raw-input", "info", at, f"{kind} {layer.name!r} feeds raw 0..255 values (no scale, no mean)",
                    "add transform_param { scale: 0.00390625 } or a mean")
    if kind == "HDF5Data" and str(_param(layer, "hdf5_data_param", "shuffle", "")) == "true":
        out.add("hdf5-shuffle", "info", at, f"HDF5Data {layer.name!r} shuffles: a bad row shows up at a different iteration each run",
                "turn shuffle off while hunting a NaN (scan --mode net does)")
    if kind == "Python":
        module = _param(layer, "python_param", "module")
        if module and not _importable(str(module)):
            out.add("python-module", "error", at, f"Python layer {layer.name!r}: module {module!r} cannot be imported here",
                    "put its folder on PYTHONPATH (python_param.module is an import name, not a path)")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
