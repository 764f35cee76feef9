"""A pose regression (PoseNet) slicing its 7-value label, fed an LMDB whose labels are scalars."""

import numpy as np

from faults import Key
from faults._make import data_layer, datums, euclidean_loss, fc, hdf5, hdf5_layer, solver, write

SOURCE = (
    "https://github.com/BVLC/caffe/issues/3721",
    "https://github.com/alexgkendall/caffe-posenet/issues/26",
)
SUMMARY = (
    "'slice_layer.cpp:33] Check failed: slice_axis_ < num_axes (1 vs. 1) slice_dim out of range': the "
    "Data layer's label top is one number per image, so there is no axis 1 to slice into xyz and wpqr"
)
FAILS = "abort: slice_dim out of range"
N = 40


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 3, 4, 4).astype(np.float32)
    if clean:
        pose = rng.randn(N, 7).astype(np.float32)
        data = hdf5_layer("data", hdf5(folder, "train.h5", data=x, label=pose), 8)
    else:
        datums(f"{folder}/train_lmdb", x, np.arange(N) % 5)
        data = data_layer("data", "train_lmdb", 8)
    net = data + (
        'layer { name: "slice_label" type: "Slice" bottom: "label" top: "label_xyz" '
        'top: "label_wpqr" slice_param { slice_dim: 1 slice_point: 3 } }\n'
    )
    net += fc("feat", "data", 16, relu=True) + fc("xyz", "feat", 3) + fc("wpqr", "feat", 4)
    net += euclidean_loss("loss_xyz", "xyz", "label_xyz")
    net += euclidean_loss("loss_wpqr", "wpqr", "label_wpqr")
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=12)


def key(seed):
    # The fix is in the data (an HDF5 source with 7 values per image): not scored.
    return Key(("caffe_abort", "config", "bad_input"), ("slice_label", "data"))
