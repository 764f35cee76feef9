"""Pooling's and convolution's windows along one axis: Caffe's h/w parameters and where the
windows fall on an input of known size."""

from __future__ import annotations

from typing import List, Tuple

from caffe_nantools.prototxt import POSITIVE, UINT32, Node


def hw_pair(params: Node, name: str, default: int) -> Tuple[int, int]:
    """Caffe's h/w parameters: ``name_h``/``name_w``, or ``name`` (repeated for N-D), or default.
    Kernels and strides of 0 are refused as Caffe's set-up refuses them.

    Raises:
        FieldError: a value that is not such an integer.
    """
    kind = UINT32 if name == "pad" else POSITIVE
    height = params.field(f"{name}_h", kind)
    if height is not None:
        return height, params.field(f"{name}_w", kind, height)
    values = params.fields(name if name != "kernel" else "kernel_size", kind)
    if not values:
        return default, default
    return values[0], values[-1]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def pooled_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's PoolingLayer output size: ceil rounding, then the last window must start inside
    the padded input."""
    out = _ceil_div(size + 2 * pad - kernel, stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def empty_windows(size: int, kernel: int, stride: int, pad: int) -> List[Tuple[int, int, int]]:
    """The output positions whose window holds no input (``(position, first, last)`` input
    index): there MAX gives -FLT_MAX and AVE 0, as measured in Debian's Caffe.

    With ``1 <= size`` and ``pad < kernel`` every window reaches index 0 or later, so a window
    is empty exactly when it starts at ``size`` or past it: the positions from
    ``ceil((size + pad) / stride)`` to the last one (at most a few, whatever the size).
    """
    first = max(0, _ceil_div(size + pad, stride))
    return [
        (p, p * stride - pad, p * stride - pad + kernel - 1)
        for p in range(first, pooled_size(size, kernel, stride, pad))
    ]
