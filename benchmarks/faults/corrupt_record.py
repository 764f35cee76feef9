"""One LMDB record that is not a Datum (an empty value)."""

import numpy as np

from faults import Key, source_without
from faults._make import classifier, data_layer, datums, key as record_key, solver, write

SOURCE = "https://github.com/chuanqi305/MobileNet-SSD/issues/147"
SUMMARY = (
    "'data_transformer.cpp Check failed: datum_channels > 0 (0 vs. 0)': the training LMDB holds a record "
    "without an image, and Caffe's data layer stops on it"
)
FAILS = "abort: Check failed"
N = 64


def _bad(seed):
    return int(np.random.RandomState(seed).randint(10, N))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    bad = {} if clean else {_bad(seed): b""}
    datums(f"{folder}/train_lmdb", rng.randn(N, 3, 3, 3).astype(np.float32), np.arange(N) % 4, bad)
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 8), 4))
    return solver(folder, seed, max_iter=10)


def key(seed):
    k = record_key(_bad(seed))
    return Key(
        ("bad_input", "caffe_abort"), ("data",), frozenset([k]), (source_without("data", [k]),)
    )
