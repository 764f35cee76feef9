"""Healthy: a net whose layer and blob names contain "nan" and "inf"."""

import numpy as np

from faults import HEALTHY, Key
from faults._make import data_layer, datums, fc, softmax_loss, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes: set debug_info and look at the magnitudes of each layer's data and diffs to find "
    "where NaN appears; a value tells it, not a name (a layer called nan_guard is fine)"
)
FAILS = "finite"
N = 48


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(N, 6, 1, 1).astype(np.float32), np.arange(N) % 3)
    names = ("hidden", "scores", "loss") if clean else ("nan_guard", "inf_scores", "loss_nan")
    net = data_layer("data", "train_lmdb", 8) + fc(names[0], "data", 12, relu=True)
    net += fc(names[1], names[0], 3) + softmax_loss(names[1], names[2])
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=20)


def key(seed):
    return Key(HEALTHY)
