"""Class labels written 1..K for a classifier with K outputs (Caffe wants 0..K-1)."""

import numpy as np

from faults import Key, labels_within
from faults._make import classifier, data_layer, datums, key as record_key, solver, write

SOURCE = (
    "https://github.com/facebookarchive/C3D/issues/107",
    "https://github.com/BVLC/caffe/issues/4633",
)
SUMMARY = (
    "labels 1..n instead of 0..n-1 give a negative loss on fine-tuning (C3D's SoftmaxWithLoss); "
    "for SoftmaxWithLoss the labels need to be in {0, ..., K-1}"
)
FAILS = "finite"  # Caffe's CPU loss reads past the scores without a word
N = 60


def _classes(seed):
    return int(np.random.RandomState(seed).choice([3, 4, 5]))


def _labels(seed, clean=False):
    k = _classes(seed)
    return np.arange(N) % k + (0 if clean else 1)


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(N, 2, 3, 3).astype(np.float32), _labels(seed, clean))
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 6), _classes(seed)))
    return solver(folder, seed, max_iter=20)


def key(seed):
    k = _classes(seed)
    past = frozenset(record_key(i) for i, l in enumerate(_labels(seed)) if l >= k)
    return Key(("bad_input",), ("data",), past, (labels_within("data", 0, k - 1),))
