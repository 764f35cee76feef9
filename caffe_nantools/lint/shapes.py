"""Spatial sizes (height, width) of blobs where the net says them: from Input layers, the
net's input_dim/input_shape, DummyData, or a data layer's crop_size, through the layers whose
output size Caffe computes from their parameters. Unknown sizes stay unknown."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from caffe_nantools.prototxt.net import Layer, Net, NetState

Size = Tuple[int, int]
#: Layers whose top has the bottom's spatial size.
SAME = ("ReLU", "Sigmoid", "TanH", "Dropout", "BatchNorm", "Scale", "Bias", "LRN", "Power", "Log", "Exp", "AbsVal",
        "BNLL", "Eltwise", "Concat", "Split", "MVN", "PReLU", "ELU", "Threshold", "Python", "Softmax")


def _dims(values: List) -> Optional[Size]:
    return (int(values[-2]), int(values[-1])) if len(values) >= 4 else None


def hw_pair(params, name: str, default: int) -> Tuple[int, int]:
    """Caffe's h/w parameters: ``name_h``/``name_w``, or ``name`` (repeated for N-D), or default."""
    if params.get(f"{name}_h") is not None:
        return int(params.get(f"{name}_h")), int(params.get(f"{name}_w", params.get(f"{name}_h")))
    values = params.get_all(name if name != "kernel" else "kernel_size")
    if not values:
        return default, default
    return int(values[0]), int(values[-1])


def pooled_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's PoolingLayer output size: ceil rounding, then the last window must start inside
    the padded input."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def empty_windows(size: int, kernel: int, stride: int, pad: int) -> List[Tuple[int, int, int]]:
    """The output positions whose window holds no input (``(position, first, last)`` input
    index): there MAX gives -FLT_MAX and AVE 0, as measured in Debian's Caffe."""
    empty = []
    for p in range(pooled_size(size, kernel, stride, pad)):
        start = p * stride - pad
        end = min(start + kernel, size + pad)
        if min(end, size) <= max(start, 0):
            empty.append((p, start, start + kernel - 1))
    return empty


def blob_sizes(net: Net, phase: str = "TRAIN") -> Dict[str, Size]:
    sizes: Dict[str, Size] = {}
    shapes = net.doc.find_all("input_shape")
    dims = net.doc.get_all("input_dim")
    for i, name in enumerate(net.inputs):
        if i < len(shapes) and _dims(shapes[i].get_all("dim")):
            sizes[name] = _dims(shapes[i].get_all("dim"))
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
    return [_dims(s.get_all("dim")) for s in block.find_all("shape")] if block is not None else []


def _layer_size(layer: Layer, sizes: Dict[str, Size]) -> Optional[Size]:
    kind = layer.type
    if kind in ("Input", "DummyData"):
        shapes = _shapes(layer)
        return shapes[0] if shapes else None
    if kind in ("Data", "ImageData", "WindowData"):
        transform = layer.node.find("transform_param")
        crop = transform.get("crop_size") if transform is not None else None
        return (int(crop), int(crop)) if crop else None
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
        (kh, kw), (sh, sw), (ph, pw) = hw_pair(params, "kernel", 1), hw_pair(params, "stride", 1), hw_pair(params, "pad", 0)
        dilation = int(params.get("dilation", 1))
        if kind == "Deconvolution":
            return sh * (below[0] - 1) + dilation * (kh - 1) + 1 - 2 * ph, sw * (below[1] - 1) + dilation * (kw - 1) + 1 - 2 * pw
        return ((below[0] + 2 * ph - dilation * (kh - 1) - 1) // sh + 1, (below[1] + 2 * pw - dilation * (kw - 1) - 1) // sw + 1)
    if kind == "Pooling":
        params = layer.node.find("pooling_param")
        if params is None or str(params.get("global_pooling", "")) == "true":
            return 1, 1
        (kh, kw), (sh, sw), (ph, pw) = hw_pair(params, "kernel", 1), hw_pair(params, "stride", 1), hw_pair(params, "pad", 0)
        return pooled_size(below[0], kh, sh, ph), pooled_size(below[1], kw, sw, pw)
    return None
