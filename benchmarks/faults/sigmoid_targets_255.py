"""Multi-label targets stored as 0/255 for SigmoidCrossEntropyLoss, which wants 0/1."""

import numpy as np

from faults import Key
from faults._make import fc, hdf5, hdf5_layer, solver, write

SOURCE = (
    "https://github.com/sukritshankar/Caffe-LMDBCreation-MultiLabel/issues/1",
    "https://github.com/s9xie/hed/issues/61",
)
SUMMARY = (
    "label vectors multiplied by 255 into SigmoidCrossEntropyLoss: the loss stays stuck and the net "
    "does not learn; the targets of the sigmoid cross-entropy must be converted to [0, 1]"
)
FAILS = "finite"  # a silent fault: the loss goes negative without bound, but not past float
N = 64


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    tags = int(rng.choice([4, 6]))
    x = rng.randn(N, 8).astype(np.float32)
    y = (rng.rand(N, tags) < 0.3).astype(np.float32) * (1 if clean else 255)
    source = hdf5(folder, "tags.h5", data=x, label=y)
    net = hdf5_layer("data", source, 8) + fc("hidden", "data", 16, relu=True)
    net += fc("tags", "hidden", tags)
    net += (
        'layer { name: "loss_tags" type: "SigmoidCrossEntropyLoss" bottom: "tags" bottom: "label" '
        'top: "loss_tags" }\n'
    )
    write(folder, "net.prototxt", net)
    return solver(folder, seed, max_iter=30)


def key(seed):
    return Key(("bad_input",), ("data", "loss_tags"))
