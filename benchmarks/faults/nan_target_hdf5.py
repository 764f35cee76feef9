"""One regression target of an HDF5 file is NaN."""

import numpy as np

from faults import Key, source_without
from faults._make import euclidean_loss, fc, hdf5, hdf5_layer, solver, write

SOURCE = (
    "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training",
    "https://blog.csdn.net/huangynn/article/details/52947894",
)
SUMMARY = (
    "common causes, faulty input: a NaN in the data (a target here) makes the loss NaN whenever "
    "training reaches it; scan the inputs with a net that only reads them"
)
FAILS = "nonfinite"
N = 56


def _bad(seed):
    return int(np.random.RandomState(seed).randint(0, N))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 5).astype(np.float32)
    y = x @ rng.randn(5, 2)
    if not clean:
        y[_bad(seed), rng.randint(2)] = np.nan
    source = hdf5(folder, "targets.h5", data=x, label=y)
    net = hdf5_layer("reg_data", source, 8) + fc("hidden", "data", 8, relu=True)
    net += fc("fit", "hidden", 2) + euclidean_loss("l2", "fit", "label")
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=10)


def key(seed):
    k = f"targets.h5:{_bad(seed)}"
    return Key(("bad_input",), ("reg_data",), frozenset([k]), (source_without("reg_data", [k]),))
