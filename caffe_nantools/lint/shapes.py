"""Spatial sizes (height, width) of blobs where the net says them: from Input layers, the
net's input_dim/input_shape, DummyData, or a data layer's crop_size, through the layers whose
output size Caffe computes from their parameters. Unknown sizes stay unknown."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from caffe_nantools.layertypes import hw_pair, pooled_size
from caffe_nantools.prototxt import BOOL, INT64, POSITIVE, UINT32, Layer, Net, NetState

Size = Tuple[int, int]
#: Layers whose top has the bottom's spatial size.
SAME = (
    "ReLU",
    "Sigmoid",
    "TanH",
    "Dropout",
    "BatchNorm",
    "Scale",
    "Bias",
    "LRN",
    "Power",
    "Log",
    "Exp",
    "AbsVal",
    "BNLL",
    "Eltwise",
    "Concat",
    "Split",
    "MVN",
    "PReLU",
    "ELU",
    "Threshold",
    "Python",
    "Softmax",
)


def _dims(values: List[int]) -> Optional[Size]:
    # A size below 1 is no size Caffe could build; it stays unknown.
    return (values[-2], values[-1]) if len(values) >= 4 and min(values[-2:]) >= 1 else None


def _known(size: Size) -> Optional[Size]:
    return size if min(size) >= 1 else None


def blob_sizes(net: Net, phase: str = "TRAIN") -> Dict[str, Size]:
    sizes: Dict[str, Size] = {}
    shapes = net.doc.find_all("input_shape")
    dims = net.doc.fields("input_dim", INT64)
    for i, name in enumerate(net.inputs):
        if i < len(shapes) and _dims(shapes[i].fields("dim", INT64)):
            sizes[name] = _dims(shapes[i].fields("dim", INT64))
        elif len(dims) >= 4 * (i + 1):
            sizes[name] = _dims(dims[4 * i : 4 * i + 4])
    for layer in net.active_layers(NetState(phase)):
        size = _layer_size(layer, sizes)
        if size is not None and layer.tops:
            sizes[layer.tops[0]] = size
            if layer.type in ("Input", "DummyData"):
                for top, shape in zip(layer.tops, _shapes(layer)):
                    if shape is not None:
                        sizes[top] = shape
    return sizes


def _shapes(layer: Layer) -> List[Optional[Size]]:
    block = layer.node.find("input_param" if layer.type == "Input" else "dummy_data_param")
    return (
        [_dims(s.fields("dim", INT64)) for s in block.find_all("shape")]
        if block is not None
        else []
    )


def _layer_size(layer: Layer, sizes: Dict[str, Size]) -> Optional[Size]:
    kind = layer.type
    if kind in ("Input", "DummyData"):
        shapes = _shapes(layer)
        return shapes[0] if shapes else None
    if kind in ("Data", "ImageData", "WindowData"):
        transform = layer.node.find("transform_param")
        crop = transform.field("crop_size", UINT32) if transform is not None else None
        return (crop, crop) if crop else None
    below = sizes.get(layer.bottoms[0]) if layer.bottoms else None
    if below is None:
        return None
    if kind in SAME:
        return below
    if kind == "InnerProduct":
        return 1, 1
    if kind in ("Convolution", "Deconvolution"):
        params = layer.node.find("convolution_param")
        if params is None:
            return None
        (kh, kw), (sh, sw), (ph, pw) = (
            hw_pair(params, "kernel", 1),
            hw_pair(params, "stride", 1),
            hw_pair(params, "pad", 0),
        )
        dilation = params.field("dilation", POSITIVE, 1)
        if kind == "Deconvolution":
            return _known(
                (
                    sh * (below[0] - 1) + dilation * (kh - 1) + 1 - 2 * ph,
                    sw * (below[1] - 1) + dilation * (kw - 1) + 1 - 2 * pw,
                )
            )
        return _known(
            (
                (below[0] + 2 * ph - dilation * (kh - 1) - 1) // sh + 1,
                (below[1] + 2 * pw - dilation * (kw - 1) - 1) // sw + 1,
            )
        )
    if kind == "Pooling":
        params = layer.node.find("pooling_param")
        if params is None or params.field("global_pooling", BOOL, False):
            return 1, 1
        (kh, kw), (sh, sw), (ph, pw) = (
            hw_pair(params, "kernel", 1),
            hw_pair(params, "stride", 1),
            hw_pair(params, "pad", 0),
        )
        return _known((pooled_size(below[0], kh, sh, ph), pooled_size(below[1], kw, sw, pw)))
    return None
