"""A BatchNorm layer given a learning rate for its statistics (Caffe 1.0 stops in setup)."""

import numpy as np

from faults import Key, layer_param
from faults._make import data_layer, datums, fc, softmax_loss, solver, write

SOURCE = (
    "https://github.com/nshaud/DeepNetsForEO/issues/6",
    "https://github.com/NVIDIA/DIGITS/issues/629",
    "https://github.com/BVLC/caffe/pull/5184",
)
SUMMARY = (
    "'Check failed: ...lr_mult() == 0.f (0.5 vs. 0) Cannot configure batch normalization statistics as "
    "layer parameters': since Caffe's BatchNorm update, its three param blocks must have lr_mult 0"
)
FAILS = "abort: Cannot configure batch normalization statistics"
NAMES = ("conv1_bn", "bn1", "fc_norm")


def _name(seed):
    return NAMES[seed % len(NAMES)]


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(64, 4, 2, 2).astype(np.float32), np.arange(64) % 3)
    # Caffe's upgrade zeroes the rates of a BatchNorm with exactly three param blocks; with
    # two (as DIGITS users wrote them) it checks them in setup.
    mult, blocks = (0, 3) if clean else (rng.choice([0.5, 1]), 2)
    params = "".join(f"param {{ lr_mult: {mult:g} decay_mult: 0 }} " for _ in range(blocks))
    bn = f'layer {{ name: "{_name(seed)}" type: "BatchNorm" bottom: "hidden" top: "hidden" {params}}}\n'
    net = (
        data_layer("data", "train_lmdb", 8)
        + fc("hidden", "data", 12)
        + bn
        + fc("scores", "hidden", 3)
    )
    write(folder, "net.prototxt", net + softmax_loss("scores"))
    return solver(folder, seed, max_iter=20)


def key(seed):
    zero = layer_param(
        _name(seed), "param.lr_mult", lambda v: all(m == 0 for m in v), "lr_mult 0 (or no param)"
    )
    return Key(("caffe_abort", "config"), (_name(seed),), fixes=(zero,))
