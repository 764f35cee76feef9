"""HDF5 labels stored one-hot (N x classes) for SoftmaxWithLoss, which wants one index each."""

import numpy as np

from faults import Key
from faults._make import classifier, hdf5, hdf5_layer, solver, write

SOURCE = (
    "https://github.com/BVLC/caffe/issues/6014",
    "https://github.com/foreverYoungGitHub/MTCNN/issues/22",
)
SUMMARY = (
    "'softmax_loss_layer.cpp:47] Check failed: outer_num_ * inner_num_ == bottom[1]->count() (4900 vs. 100) "
    "Number of labels must match number of predictions': SoftmaxWithLoss takes N*H*W integer labels"
)
FAILS = "abort: Number of labels must match number of predictions"
N = 48


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    classes = int(rng.choice([3, 4, 5]))
    x = rng.randn(N, 6).astype(np.float32)
    labels = np.arange(N) % classes
    label = labels if clean else np.eye(classes)[labels]
    source = hdf5(folder, "train.h5", data=x, label=label)
    write(folder, "net.prototxt", classifier(hdf5_layer("data", source, 8), classes))
    return solver(folder, seed, max_iter=12)


def key(seed):
    # The fix is in the data (argmax of the one-hot rows): no fix of the files is scored.
    return Key(("caffe_abort", "bad_input"), ("loss", "data"))
