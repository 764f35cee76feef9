"""MAX pooling with a stride larger than its kernel, so a window lies past the input."""

import numpy as np

from faults import Key, layer_param
from faults._make import fc, softmax_loss, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes: a Pooling layer whose stride is larger than its kernel; the windows past the input "
    "are empty and MAX pooling gives -FLT_MAX there"
)
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    size = int(rng.choice([9, 14]))  # a last window past the input
    kernel, stride = (3, 2) if clean else (3, 5)
    data = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ dim: 4 dim: 2 dim: {size} dim: {size} }} shape {{ dim: 4 }} "
        'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }\n'
    )
    pool = (
        'layer { name: "pool_wide" type: "Pooling" bottom: "data" top: "pooled" '
        f"pooling_param {{ pool: MAX kernel_size: {kernel} stride: {stride} }} }}\n"
    )
    write(folder, "net.prototxt", data + pool + fc("scores", "pooled", 3) + softmax_loss("scores"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    ok = layer_param(
        "pool_wide",
        "pooling_param.stride",
        lambda v: bool(v) and v[0] <= 3,
        "stride <= kernel_size",
    )
    return Key(("config",), ("pool_wide",), fixes=(ok,))
