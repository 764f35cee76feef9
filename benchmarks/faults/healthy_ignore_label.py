"""Healthy: segmentation label maps with 255 'void' pixels, which SoftmaxWithLoss ignores."""

import numpy as np

from faults import HEALTHY, Key
from faults._make import hdf5, hdf5_layer, softmax_loss, solver, write

SOURCE = "https://github.com/NVIDIA/DIGITS/issues/1251"
SUMMARY = (
    "segmentation labels mark void pixels 255; with loss_param { ignore_label } on SoftmaxWithLoss (and "
    "Accuracy) Caffe leaves them out, so a label past num_output is not a fault there"
)
FAILS = "finite"
N = 40


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 2, 4, 4).astype(np.float32)
    labels = rng.randint(0, 3, size=(N, 1, 4, 4)).astype(np.float32)
    if not clean:
        labels[rng.rand(N, 1, 4, 4) < 0.2] = 255
    source = hdf5(folder, "seg.h5", data=x, label=labels)
    net = hdf5_layer("data", source, 4) + (
        'layer { name: "score" type: "Convolution" bottom: "data" top: "score" '
        'convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }\n'
    )
    write(
        folder,
        "net.prototxt",
        net + softmax_loss("score", extra="loss_param { ignore_label: 255 }"),
    )
    return solver(folder, seed, max_iter=20)


def key(seed):
    return Key(HEALTHY)
