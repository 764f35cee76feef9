"""A Python layer that L2-normalizes each sample without an epsilon; one sample is all zeros."""

import numpy as np

from faults import Key, layer_param
from faults._make import fc, hdf5, hdf5_layer, softmax_loss, solver, write

SOURCE = "seed 000: an article on NaN loss, a normalization layer dividing by a zero norm"
SUMMARY = (
    "a normalization that divides by a norm of 0 makes NaN; an epsilon in the denominator avoids it"
)
FAILS = "nonfinite"
N = 48
LAYER = """import caffe
import numpy as np


class L2Norm(caffe.Layer):
    def setup(self, bottom, top):
        self.eps = float(self.param_str.split(":")[1])

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        self.norm = np.sqrt((bottom[0].data ** 2).sum(1, keepdims=True)) + self.eps
        top[0].data[...] = bottom[0].data / self.norm

    def backward(self, top, propagate_down, bottom):
        y = top[0].data
        g = top[0].diff
        bottom[0].diff[...] = (g - y * (g * y).sum(1, keepdims=True)) / self.norm
"""


def _zero(seed):
    return int(np.random.RandomState(seed).randint(0, N))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 8).astype(np.float32)
    x[_zero(seed)] = 0  # a blank sample: fine data
    source = hdf5(folder, "train.h5", data=x, label=np.arange(N) % 3)
    write(folder, "l2norm_layer.py", LAYER)
    eps = "1e-6" if clean else "0"
    norm = (
        'layer { name: "embed_norm" type: "Python" bottom: "embed" top: "normed" '
        f'python_param {{ module: "l2norm_layer" layer: "L2Norm" param_str: "eps: {eps}" }} }}\n'
    )
    net = hdf5_layer("data", source, 8) + fc("embed", "data", 6, extra="", relu=True)
    net = net.replace("inner_product_param {", "inner_product_param { bias_term: false", 1)
    write(folder, "net.prototxt", net + norm + fc("scores", "normed", 3) + softmax_loss("scores"))
    return solver(folder, seed, max_iter=12)


def key(seed):
    eps = layer_param(
        "embed_norm",
        "python_param.param_str",
        lambda v: bool(v) and float(v[0].split(":")[1]) > 0,
        "eps > 0",
    )
    return Key(("layer_numerics",), ("embed_norm",), fixes=(eps,))
