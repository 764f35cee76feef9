"""One row of an HDF5 training file holds +inf or -inf."""

import numpy as np

from faults import Key, source_without
from faults._make import classifier, hdf5, hdf5_layer, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, faulty input: a non-finite value in the data; check it with a net that only reads "
    "the input (an HDF5Data layer here)"
)
FAILS = "nonfinite"
N = 64


def _bad(seed):
    return int(np.random.RandomState(seed).randint(0, N))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 10).astype(np.float32)
    if not clean:
        x[_bad(seed), rng.randint(10)] = rng.choice([np.inf, -np.inf])
    source = hdf5(folder, "train.h5", data=x, label=np.arange(N) % 3)
    write(folder, "net.prototxt", classifier(hdf5_layer("rows", source, 8), 3))
    return solver(folder, seed, max_iter=10)


def key(seed):
    k = f"train.h5:{_bad(seed)}"
    return Key(("bad_input",), ("rows",), frozenset([k]), (source_without("rows", [k]),))
