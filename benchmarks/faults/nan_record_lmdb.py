"""One record of a float LMDB holds a NaN."""

import numpy as np

from faults import Key, source_without
from faults._make import classifier, data_layer, datums, key as record_key, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = "common causes, faulty input: a NaN in the input makes the loss NaN whenever the training reaches it"
FAILS = "nonfinite"
N = 80


def _bad(seed):
    return int(np.random.RandomState(seed).randint(0, N))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 2, 4, 4).astype(np.float32)
    if not clean:
        x[_bad(seed)].flat[rng.randint(32)] = np.nan
    name = ("data", "mnist", "input_lmdb")[seed % 3]
    datums(f"{folder}/train_lmdb", x, np.arange(N) % 4)
    write(folder, "net.prototxt", classifier(data_layer(name, "train_lmdb", 8), 4))
    return solver(folder, seed, max_iter=10)


def key(seed):
    k = record_key(_bad(seed))
    name = ("data", "mnist", "input_lmdb")[seed % 3]
    return Key(("bad_input",), (name,), frozenset([k]), (source_without(name, [k]),))
