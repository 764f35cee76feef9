"""Net rules: layers and settings known to make NaN or inf. A layer is checked by the rules
of its type's entry in :mod:`caffe_nantools.layertypes`' table; the net as a whole by
``NET_RULES``."""

from __future__ import annotations

from typing import Dict

from caffe_nantools.lint.findings import Findings
from caffe_nantools.layertypes import (
    EVERY_LAYER,
    Found,
    LayerProblem,
    LayerSeen,
    Rule,
    SettingProblem,
    layer_type,
)
from caffe_nantools.lint.rules import run
from caffe_nantools.lint.shapes import blob_sizes
from caffe_nantools.prototxt import (
    BOOL,
    FLOAT,
    POSITIVE as AT_LEAST_1,
    STRING,
    UINT32,
    Enum,
    Layer,
    Net,
)

#: NVIDIA Caffe's data and math types, of a layer and of the net (its defaults).
PRECISION = Enum("DOUBLE", "FLOAT", "FLOAT16", "INT", "UINT")
FP16_FIELDS = ("forward_type", "backward_type", "forward_math", "backward_math")
FP16_DEFAULTS = tuple(f"default_{f}" for f in FP16_FIELDS)
#: The parameters Caffe reads as numbers, enums and flags in the layers lint looks at (caffe.proto):
#: another value is bad input for lint as it is for scan and for Caffe.
PARAM_KINDS = {
    "data_param": {
        "batch_size": AT_LEAST_1,
        "backend": Enum("LEVELDB", "LMDB"),
        "rand_skip": UINT32,
        "source": STRING,
    },
    "hdf5_data_param": {"batch_size": AT_LEAST_1, "shuffle": BOOL, "source": STRING},
    "image_data_param": {
        "batch_size": AT_LEAST_1,
        "shuffle": BOOL,
        "new_height": UINT32,
        "new_width": UINT32,
        "is_color": BOOL,
        "source": STRING,
    },
    "transform_param": {"scale": FLOAT, "mirror": BOOL, "crop_size": UINT32, "mean_value": FLOAT},
    "convolution_param": {
        "num_output": UINT32,
        "kernel_size": AT_LEAST_1,
        "stride": AT_LEAST_1,
        "pad": UINT32,
        "group": AT_LEAST_1,
        "dilation": AT_LEAST_1,
        "bias_term": BOOL,
    },
    "inner_product_param": {"num_output": UINT32, "bias_term": BOOL},
    "batch_norm_param": {"eps": FLOAT, "use_global_stats": BOOL, "moving_average_fraction": FLOAT},
    "dropout_param": {"dropout_ratio": FLOAT},
}


def _check_kinds(layer: Layer) -> None:
    """Read the known parameters as their types: a FieldError names file:line:col."""
    for block, kinds in PARAM_KINDS.items():
        for params in layer.node.find_all(block):
            for name, kind in kinds.items():
                params.fields(name, kind)


def check_net(net: Net, out: Findings) -> None:
    writer: Dict[str, Layer] = {}  # the last layer (in file order) that wrote each blob
    sizes = {**blob_sizes(net, "TEST"), **blob_sizes(net, "TRAIN")}
    # A net without a data layer (Input layers, an input: header) is a deploy net: its weights
    # come from a caffemodel, so missing fillers say nothing.
    deploy = not any(layer.is_data and layer.type != "Input" for layer in net.layers)
    for layer in net.layers:
        _check_kinds(layer)
        bottom = layer.bottoms[0] if layer.bottoms else None
        seen = LayerSeen(layer, writer.get(bottom), sizes.get(bottom), deploy)
        run(layer_type(layer.type).lint + EVERY_LAYER, seen, out)
        for top in layer.tops:
            writer[top] = layer
    run(NET_RULES, net, out)


FP16_PROBLEM = (
    "computes in FLOAT16 without loss scaling (global_grad_scale): values past 65504 overflow to inf "
    "and small gradients flush to 0"
)
FP16_FIX = "set global_grad_scale (e.g. 128) or global_grad_scale_adaptive: true in the net, or FLOAT for the layers that overflow"


def _fp16_no_loss_scale(net: Net) -> Found:
    """NVIDIA Caffe's half precision without loss scaling: values past 65504 become inf."""
    doc = net.doc
    if doc.field("global_grad_scale", FLOAT, 1.0) > 1 or doc.field(
        "global_grad_scale_adaptive", BOOL, False
    ):
        return
    defaults = [f for f in FP16_DEFAULTS if doc.field(f, PRECISION) == "FLOAT16"]
    if defaults:
        yield SettingProblem(
            "warning",
            doc.find(defaults[0]),
            f"the net ({', '.join(defaults)}: FLOAT16) {FP16_PROBLEM}",
            FP16_FIX,
        )
    for layer in net.layers:
        if any(layer.node.field(f, PRECISION) == "FLOAT16" for f in FP16_FIELDS):
            yield LayerProblem(
                layer, "warning", f"{layer.type} {layer.name!r}", FP16_PROBLEM, FP16_FIX
            )


#: The rules the net is checked by as a whole, after its layers.
NET_RULES = (
    Rule(
        "fp16-no-loss-scale", "FLOAT16 (NVIDIA Caffe) comes with loss scaling", _fp16_no_loss_scale
    ),
)
