"""lr_policy "poly" in a solver that sets no max_iter."""

import numpy as np

from faults import Key, solver_has
from faults._make import classifier, data_layer, datums, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, bad learning rate policy: 'poly' without max_iter makes Caffe print 'lr = -nan'"
)
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(48, 6, 1, 1).astype(np.float32), np.arange(48) % 3)
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 8), 3))
    power = float(rng.choice([0.9, 1.0, 2.0]))
    return solver(
        folder, seed, policy="poly", max_iter=30 if clean else 0, extra=f"power: {power:g}"
    )


def key(seed):
    return Key(("lr_policy",), fixes=(solver_has("max_iter"),))
