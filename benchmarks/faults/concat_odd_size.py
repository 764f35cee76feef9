"""A Concat of a feature map and its pooled-then-upsampled copy, on an input of odd size."""

import numpy as np

from faults import Key, layer_param
from faults._make import dummy_data, fc, softmax_loss, solver, write

SOURCE = (
    "https://github.com/xiaohaoChen/rrc_detection/issues/54",
    "https://github.com/farmingyard/ShuffleNet/issues/14",
)
SUMMARY = (
    "'concat_layer.cpp:42] Check failed: top_shape[j] == bottom[i]->shape(j) (45 vs. 46) All inputs must "
    "have the same shape, except at concat_axis' after changing the input size: a pooled and upsampled "
    "branch is one pixel off the other"
)
FAILS = "abort: All inputs must have the same shape"


def _size(seed, clean=False):
    size = int(np.random.RandomState(seed).choice([9, 11, 13]))
    return size + 1 if clean else size


def build(folder, seed, clean=False):
    size = _size(seed, clean)
    net = dummy_data((4, 2, size, size), (4,)) + (
        'layer { name: "pool_half" type: "Pooling" bottom: "data" top: "half" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "upsample" type: "Deconvolution" bottom: "half" top: "up" '
        "convolution_param { num_output: 2 kernel_size: 2 stride: 2 "
        'weight_filler { type: "xavier" } } }\n'
        'layer { name: "fuse" type: "Concat" bottom: "data" bottom: "up" top: "fused" }\n'
    )
    write(folder, "net.prototxt", net + fc("scores", "fused", 3) + softmax_loss("scores"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    even = layer_param(
        "data",
        "dummy_data_param.shape.dim",
        lambda v: len(v) >= 4 and v[2] % 2 == 0 and v[3] % 2 == 0,
        "an input of even height and width",
    )
    return Key(("caffe_abort", "config"), ("fuse",), fixes=(even,))
