"""BatchNorm layers with use_global_stats: true in a net trained from scratch."""

import numpy as np

from faults import Key, layer_param
from faults._make import conv, data_layer, datums, fc, softmax_loss, solver, write

SOURCE = (
    "https://github.com/shicai/MobileNet-Caffe/issues/64",
    "https://github.com/SnailTyan/caffe-model-zoo/issues/3",
)
SUMMARY = (
    "a MobileNet train prototxt with use_global_stats: true in its BatchNorm layers gives 'Loss = -nan'; "
    "use_global_stats belongs in deploy (true), not in train_val (false)"
)
FAILS = "nonfinite"
N = 64


def _names(seed):
    return ("conv1/bn", "conv2/bn") if seed % 2 else ("bn1", "bn2")


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(N, 3, 6, 6).astype(np.float32), np.arange(N) % 4)
    stats = "" if clean else "batch_norm_param { use_global_stats: true }"
    net = data_layer("data", "train_lmdb", 8)
    bottom = "data"
    for i, name in enumerate(_names(seed), 1):
        net += conv(f"conv{i}", bottom, 8, 3, pad=1)
        net += (
            f'layer {{ name: "{name}" type: "BatchNorm" bottom: "conv{i}" top: "conv{i}" {stats} }}\n'
            f'layer {{ name: "scale{i}" type: "Scale" bottom: "conv{i}" top: "conv{i}" '
            "scale_param { bias_term: true } }\n"
            f'layer {{ name: "relu{i}" type: "ReLU" bottom: "conv{i}" top: "conv{i}" }}\n'
        )
        bottom = f"conv{i}"
    write(folder, "net.prototxt", net + fc("scores", bottom, 4) + softmax_loss("scores"))
    return solver(folder, seed, base_lr=0.05, max_iter=30)


def key(seed):
    first, second = (
        layer_param(n, "batch_norm_param.use_global_stats", lambda v: v in ([], [False]), "false")
        for n in _names(seed)
    )
    return Key(
        ("config", "layer_numerics", "exploding_gradients"), _names(seed), fixes=(first & second,)
    )
