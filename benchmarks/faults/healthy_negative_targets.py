"""Healthy: a regression whose targets are negative as often as positive."""

import numpy as np

from faults import HEALTHY, Key
from faults._make import fc, hdf5, hdf5_layer, solver, write

SOURCE = "https://github.com/BVLC/caffe/issues/4633"
SUMMARY = (
    "class labels must be in {0, ..., K-1} for classification losses such as SoftmaxWithLoss; a regression "
    "loss (EuclideanLoss) takes any real target, negative ones included"
)
FAILS = "finite"
N = 64


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 6).astype(np.float32)
    y = x @ rng.randn(6, 2)
    if clean:
        y = np.abs(y)
    source = hdf5(folder, "reg.h5", data=x, label=y)
    net = (
        hdf5_layer("data", source, 8) + fc("hidden", "data", 8, relu=True) + fc("fit", "hidden", 2)
    )
    net += 'layer { name: "l2" type: "EuclideanLoss" bottom: "fit" bottom: "label" top: "l2" }\n'
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=30)


def key(seed):
    return Key(HEALTHY)
