"""A softmax loss written by hand in a Python layer, exp(x) / sum(exp(x)) without subtracting
the maximum first."""

import numpy as np

from faults import Key, layer_param
from faults._make import fc, hdf5, hdf5_layer, solver, write

SOURCE = (
    "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training",
    "seed 000: an article on NaN loss, a custom loss whose computation overflows",
)
SUMMARY = (
    "common causes, faulty loss: a custom loss layer computes the NaN (here exp of large scores is inf, "
    "and inf / inf is NaN); Caffe's own Softmax subtracts the maximum first"
)
FAILS = "nonfinite"
N = 48
LAYER = """import caffe
import numpy as np


class SoftmaxLoss(caffe.Layer):
    def setup(self, bottom, top):
        self.shift = self.param_str.split(":")[1].strip() == "max"

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.shift:
            x = x - x.max(1, keepdims=True)
        e = np.exp(x)
        self.p = e / e.sum(1, keepdims=True)
        labels = bottom[1].data.astype(int).ravel()
        picked = self.p[np.arange(len(labels)), labels]
        top[0].data[0] = -np.log(np.maximum(picked, 1e-30)).mean()

    def backward(self, top, propagate_down, bottom):
        labels = bottom[1].data.astype(int).ravel()
        g = self.p.copy()
        g[np.arange(len(labels)), labels] -= 1
        bottom[0].diff[...] = g / len(labels)
"""


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    # large but finite features, as raw pixel sums are
    x = (rng.randn(N, 6) * float(rng.choice([150, 250]))).astype(np.float32)
    source = hdf5(folder, "train.h5", data=x, label=np.arange(N) % 3)
    write(folder, "softmax_loss_layer.py", LAYER)
    loss = (
        'layer { name: "my_loss" type: "Python" bottom: "scores" bottom: "label" top: "my_loss" '
        f'loss_weight: 1 python_param {{ module: "softmax_loss_layer" layer: "SoftmaxLoss" '
        f'param_str: "shift: {"max" if clean else "none"}" }} }}\n'
    )
    net = hdf5_layer("data", source, 8) + fc("hidden", "data", 16, relu=True)
    write(folder, "net.prototxt", net + fc("scores", "hidden", 3) + loss)
    return solver(folder, seed, base_lr=0.001, max_iter=30)


def key(seed):
    shifted = layer_param(
        "my_loss",
        "python_param.param_str",
        lambda v: bool(v) and v[0].split(":")[1].strip() == "max",
        "shift: max",
    )
    return Key(("layer_numerics",), ("my_loss",), fixes=(shifted,))
