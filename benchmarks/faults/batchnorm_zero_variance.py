"""BatchNorm with eps 0 over a feature that is constant in the batch: 0 / sqrt(0)."""

from faults import Key, layer_param
from faults._make import fc, softmax_loss, solver, write

SOURCE = (
    "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training",
    "seed 000: an article on NaN loss, normalization layers dividing by a zero norm",
)
SUMMARY = "common causes: BatchNorm instabilities; a normalization that divides by a variance of 0 without an epsilon"
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    width = 2 + seed % 3
    data = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ dim: 4 dim: {width} dim: 3 }} shape {{ dim: 4 }} "
        'data_filler { type: "constant" value: 0 } data_filler { type: "constant" value: 1 } } }\n'
    )
    eps = "" if clean else "batch_norm_param { eps: 0 }"
    net = data + (
        'layer { name: "flat" type: "Reshape" bottom: "data" top: "flat" reshape_param { shape { dim: 0 dim: -1 } } }\n'
        f'layer {{ name: "norm" type: "BatchNorm" bottom: "flat" top: "normed" {eps} }}\n'
    )
    write(folder, "net.prototxt", net + fc("scores", "normed", 3) + softmax_loss("scores"))
    return solver(folder, seed, max_iter=6)


def key(seed):
    eps = layer_param(
        "norm", "batch_norm_param.eps", lambda v: not v or v[0] > 0, "eps > 0 (default 1e-5)"
    )
    return Key(("layer_numerics", "config"), ("norm",), fixes=(eps,))
