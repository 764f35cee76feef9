"""A classifier trained with a rate one or two orders of magnitude too high."""

import numpy as np

from faults import Key, base_lr_at_most, has_clip_gradients
from faults._make import data_layer, datums, fc, softmax_loss, solver, write

SOURCE = "https://github.com/BVLC/caffe/issues/4449"
SUMMARY = "'loss = -nan' after a few iterations on a user's own LMDB: decrease the learning rate by at least one magnitude"
FAILS = "nonfinite"


def _rate(seed):
    return float(np.random.RandomState(seed).choice([10.0, 20.0, 40.0]))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(120, 3, 4, 4).astype(np.float32)
    datums(f"{folder}/train_lmdb", x, np.arange(120) % 5)
    net = (
        data_layer("data", "train_lmdb", 12)
        + fc("h1", "data", 16, relu=True)
        # A ReLU after every layer of a net this small dies at such a rate instead (every
        # unit at 0, the loss stuck and finite): the report's net went NaN, so this one must.
        + fc("h2", "h1", 16)
    )
    write(folder, "net.prototxt", net + fc("scores", "h2", 5) + softmax_loss("scores"))
    return solver(folder, seed, base_lr=0.01 if clean else _rate(seed), max_iter=40)


def key(seed):
    return Key(
        ("exploding_gradients",), fixes=(base_lr_at_most(_rate(seed) / 10) | has_clip_gradients(),)
    )
