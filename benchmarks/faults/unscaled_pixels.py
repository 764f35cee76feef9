"""Raw 0..255 pixels into a LeNet-like net whose rate is tuned for inputs in [0, 1]."""

import numpy as np

from faults import Key, base_lr_at_most, has_clip_gradients, layer_param
from faults._make import conv_classifier, data_layer, datums, images, solver, write

SOURCE = ("https://github.com/BVLC/caffe/pull/2810", "https://github.com/BVLC/caffe/issues/5589")
SUMMARY = (
    "the MNIST example's data layer needs transform_param { scale: 0.00390625 }: Caffe's LMDBs hold "
    "unscaled 0..255 pixels, and without the scale the example's rate diverges"
)
FAILS = "nonfinite"
SCALE = "transform_param { scale: 0.00390625 }"


def _rate(seed):
    return float(np.random.RandomState(seed).choice([0.05, 0.08, 0.1]))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", images(rng, 160, (1, 12, 12)), np.arange(160) % 4)
    write(
        folder,
        "net.prototxt",
        conv_classifier(data_layer("mnist", "train_lmdb", 16, SCALE if clean else ""), 4),
    )
    return solver(folder, seed, base_lr=_rate(seed), max_iter=40)


def key(seed):
    scaled = layer_param(
        "mnist",
        "transform_param.scale",
        lambda v: bool(v) and v[0] <= 1 / 255 + 1e-9,
        "scale <= 1/255",
    )
    return Key(
        ("exploding_gradients", "bad_input"),
        fixes=(scaled, base_lr_at_most(_rate(seed) / 10) | has_clip_gradients()),
    )
