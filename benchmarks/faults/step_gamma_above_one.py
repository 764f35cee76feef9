"""lr_policy "step" with gamma > 1: the rate is multiplied up at every step."""

import numpy as np

from faults import Key, solver_has
from faults._make import classifier, data_layer, datums, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, bad learning rate policy: fix the parameters that affect the rate; a step policy "
    "whose gamma is above 1 raises the rate at every stepsize until the updates diverge"
)
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(60, 4, 2, 2).astype(np.float32), np.arange(60) % 3)
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 6), 3))
    gamma = 0.1 if clean else float(rng.choice([10, 20]))
    stepsize = int(rng.choice([4, 5]))
    return solver(
        folder, seed, policy="step", max_iter=60, extra=f"gamma: {gamma:g}\nstepsize: {stepsize}"
    )


def key(seed):
    return Key(
        ("lr_policy", "exploding_gradients"),
        fixes=(solver_has("gamma", lambda g: g <= 1, "gamma <= 1"),),
    )
