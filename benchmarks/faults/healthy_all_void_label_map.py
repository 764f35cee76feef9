"""Healthy on BVLC Caffe: a segmentation sample whose label map is all 'ignore', under
SoftmaxWithLoss and Accuracy with ignore_label."""

import numpy as np

from faults import HEALTHY, Key
from faults._make import conv, hdf5, hdf5_layer, softmax_loss, solver, write

SOURCE = "https://github.com/NVIDIA/DIGITS/issues/1285"
SUMMARY = (
    "an example whose label holds the 'ignore' class only made DIGITS' accuracy nan; BVLC Caffe 1.0 "
    "gives that batch a loss and an accuracy of 0 (proved here), so nothing is non-finite to find"
)
FAILS = "finite"
N = 20


def _void(seed):
    return int(np.random.RandomState(seed).randint(0, N))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 2, 5, 5).astype(np.float32)
    labels = rng.randint(0, 3, size=(N, 1, 5, 5)).astype(np.float32)
    labels[rng.rand(N, 1, 5, 5) < 0.1] = 255
    if not clean:
        labels[_void(seed)] = 255
    source = hdf5(folder, "seg.h5", data=x, label=labels)
    ignore = "loss_param { ignore_label: 255 }"
    net = hdf5_layer("data", source, 1) + conv("score", "data", 3, 1)
    net += softmax_loss("score", extra=ignore)
    net += (
        'layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy" '
        "accuracy_param { ignore_label: 255 } }\n"
    )
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=N)


def key(seed):
    return Key(HEALTHY)
