"""A 3-output regression head on a 1-value target (EuclideanLoss stops in setup)."""

import numpy as np

from faults import Key, layer_param
from faults._make import fc, hdf5, hdf5_layer, solver, write

SOURCE = "https://github.com/BVLC/caffe/issues/6132"
SUMMARY = (
    "EuclideanLoss on an fc with num_output 3 and a 1-value label: 'Check failed: bottom[0]->count(1) == "
    "bottom[1]->count(1) Inputs must have the same dimension'"
)
FAILS = "abort: Inputs must have the same dimension"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(40, 6).astype(np.float32)
    source = hdf5(folder, "train.h5", data=x, label=x.sum(1, keepdims=True))
    outputs = 1 if clean else int(rng.choice([2, 3, 4]))
    net = (
        hdf5_layer("data", source, 8)
        + fc("hidden", "data", 8, relu=True)
        + fc("fc9", "hidden", outputs)
    )
    net += 'layer { name: "loss_reg" type: "EuclideanLoss" bottom: "fc9" bottom: "label" top: "loss_reg" }\n'
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=20)


def key(seed):
    one = layer_param("fc9", "inner_product_param.num_output", lambda v: v == [1], "num_output 1")
    return Key(("caffe_abort", "config"), ("loss_reg", "fc9"), fixes=(one,))
