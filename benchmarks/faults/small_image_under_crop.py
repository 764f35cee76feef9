"""A few LMDB records smaller than the crop_size the others are cropped to."""

import numpy as np

from faults import Key, layer_param, source_without
from faults._make import classifier, data_layer, datums, key as record_key, solver, write

SOURCE = "https://github.com/yjxiong/temporal-segment-networks/issues/163"
SUMMARY = (
    "'data_transformer.cpp Check failed: height <= datum_height (227 vs. 226)': all frames were "
    "320x240 except those of 4 videos (400x226), smaller than the crop; Caffe stops on the first"
)
FAILS = "abort: datum_height"
N = 48
CROP = 8


def _small(seed):
    rng = np.random.RandomState(seed)
    return sorted(rng.choice(np.arange(8, N), size=int(rng.choice([1, 2, 3])), replace=False))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    small = set() if clean else set(_small(seed))
    pictures = [
        rng.randint(0, 256, size=(3, 7, 9) if i in small else (3, 10, 12)).astype(np.uint8)
        for i in range(N)
    ]
    datums(f"{folder}/train_lmdb", pictures, np.arange(N) % 3)
    transform = f"transform_param {{ crop_size: {CROP} scale: 0.00390625 }}"
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 8, transform), 3))
    return solver(folder, seed, max_iter=24)


def key(seed):
    keys = [record_key(i) for i in _small(seed)]
    smaller = layer_param(
        "data", "transform_param.crop_size", lambda v: bool(v) and v[0] <= 7, "crop_size <= 7"
    )
    return Key(
        ("bad_input", "caffe_abort"),
        ("data",),
        frozenset(keys),
        (source_without("data", keys), smaller),
    )
