"""lr_policy "exp" with gamma > 1: the rate grows every iteration."""

import numpy as np

from faults import Key, solver_has
from faults._make import classifier, data_layer, datums, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, bad learning rate policy: a policy whose parameters make the rate invalid multiplies "
    "every update (exp with gamma > 1 grows it without bound)"
)
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(60, 4, 2, 2).astype(np.float32), np.arange(60) % 3)
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 6), 3))
    gamma = 0.99 if clean else float(rng.choice([1.5, 2.0, 3.0]))
    return solver(folder, seed, policy="exp", max_iter=100, extra=f"gamma: {gamma:g}")


def key(seed):
    return Key(
        ("lr_policy", "exploding_gradients"),
        fixes=(solver_has("gamma", lambda g: g <= 1, "gamma <= 1"),),
    )
