"""Healthy: raw 0..255 pixels, and a rate small enough for them: activations in the thousands,
all finite."""

import numpy as np

from faults import HEALTHY, Key
from faults._make import conv_classifier, data_layer, datums, images, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, gradient blow-up: what marks it is values that grow from iteration to iteration until "
    "they overflow; activations that are large from the start (unscaled pixels) but stay put are not it"
)
FAILS = "finite"
N = 48


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", images(rng, N, (3, 8, 8)), np.arange(N) % 3)
    transform = "transform_param { scale: 0.00390625 }" if clean else ""
    data = data_layer("data", "train_lmdb", 8, transform)
    write(folder, "net.prototxt", conv_classifier(data, 3))
    return solver(folder, seed, base_lr=1e-6 if not clean else 0.01, max_iter=30)


def key(seed):
    return Key(HEALTHY)
