"""Segmentation label maps with 255 'void' pixels, and no ignore_label on SoftmaxWithLoss."""

import numpy as np

from faults import Key, layer_param
from faults._make import conv, hdf5, hdf5_layer, softmax_loss, solver, write

SOURCE = (
    "https://github.com/alexgkendall/SegNet-Tutorial/issues/53",
    "https://github.com/NVIDIA/DIGITS/issues/1251",
)
SUMMARY = (
    "unlabelled pixels carry a label index of their own (11 in SegNet's CamVid, 255 in VOC) that the loss "
    "must be told to skip: ignore_label in SoftmaxWithLoss's loss_param (and in Accuracy)"
)
FAILS = "finite"  # Caffe's CPU loss reads (and its gradient writes) past the scores, silently
N = 40


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(N, 2, 6, 6).astype(np.float32)
    labels = rng.randint(0, 3, size=(N, 1, 6, 6)).astype(np.float32)
    labels[rng.rand(N, 1, 6, 6) < 0.15] = 255
    source = hdf5(folder, "seg.h5", data=x, label=labels)
    ignore = "loss_param { ignore_label: 255 }" if clean else ""
    net = hdf5_layer("data", source, 4) + conv("score", "data", 3, 1)
    write(folder, "net.prototxt", net + softmax_loss("score", extra=ignore))
    return solver(folder, seed, max_iter=20)


def key(seed):
    ignored = layer_param(
        "loss", "loss_param.ignore_label", lambda v: v == [255], "loss_param { ignore_label: 255 }"
    )
    return Key(("bad_input", "config"), ("loss", "data"), fixes=(ignored,))
