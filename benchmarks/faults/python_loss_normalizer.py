"""A Python loss normalized by the number of positive labels in the batch; one batch has none."""

import numpy as np

from faults import Key, layer_param
from faults._make import fc, hdf5, hdf5_layer, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, faulty loss function: a loss normalized by the count of a label in the batch becomes "
    "NaN when a batch holds none of that label"
)
FAILS = "nonfinite"
N, BATCH = 48, 8
LAYER = '''import caffe
import numpy as np


class PositiveLoss(caffe.Layer):
    """Squared error on the positive samples, averaged over them."""

    def setup(self, bottom, top):
        self.least = float(self.param_str.split(":")[1])

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        pos = bottom[1].data.reshape(-1, 1)
        self.count = max(pos.sum(), self.least)
        self.diff = (bottom[0].data - pos) * pos
        top[0].data[0] = (self.diff ** 2).sum() / 2 / self.count

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff[0] * self.diff / self.count
'''


def _empty_batch(seed):
    return int(np.random.RandomState(seed).randint(1, N // BATCH))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 5).astype(np.float32)
    labels = np.zeros(N, np.float32)
    labels[::BATCH] = 1  # one positive per batch ...
    labels[_empty_batch(seed) * BATCH] = 0  # ... but one batch holds none
    source = hdf5(folder, "train.h5", data=x, label=labels)
    write(folder, "positive_loss.py", LAYER)
    least = "1" if clean else "0"
    loss = (
        'layer { name: "pos_loss" type: "Python" bottom: "score" bottom: "label" top: "pos_loss" loss_weight: 1 '
        f'python_param {{ module: "positive_loss" layer: "PositiveLoss" param_str: "least: {least}" }} }}\n'
    )
    net = (
        hdf5_layer("data", source, BATCH)
        + fc("hidden", "data", 8, relu=True)
        + fc("score", "hidden", 1)
    )
    write(folder, "net.prototxt", net + loss)
    return solver(folder, seed, max_iter=12)


def key(seed):
    least = layer_param(
        "pos_loss",
        "python_param.param_str",
        lambda v: bool(v) and float(v[0].split(":")[1]) > 0,
        "a floor > 0",
    )
    return Key(("layer_numerics",), ("pos_loss",), fixes=(least,))
