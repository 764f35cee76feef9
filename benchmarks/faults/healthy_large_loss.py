"""Healthy: a loss in the thousands at the start that falls, at a rate that suits it."""

import numpy as np

from faults import HEALTHY, Key
from faults._make import fc, hdf5, hdf5_layer, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, gradient blow-up: the sign is a loss that grows from iteration to iteration until it "
    "is NaN; a large loss that falls is not one"
)
FAILS = "finite"
N = 64


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 4).astype(np.float32)
    scale = 10.0 if clean else float(rng.choice([40, 60, 80]))
    y = x.sum(1, keepdims=True) * scale
    source = hdf5(folder, "big.h5", data=x, label=y)
    net = hdf5_layer("data", source, 8) + fc("fit", "data", 1)
    net += 'layer { name: "l2" type: "EuclideanLoss" bottom: "fit" bottom: "label" top: "l2" }\n'
    write(folder, "net.prototxt", net)
    return solver(folder, seed, base_lr=0.01, max_iter=40)


def key(seed):
    return Key(HEALTHY)
