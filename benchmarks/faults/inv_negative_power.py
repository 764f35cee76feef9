"""lr_policy "inv" with a negative power: the rate grows as a power of the iteration."""

import numpy as np

from faults import Key, solver_has
from faults._make import classifier, data_layer, datums, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, bad learning rate policy: with inv, lr = base_lr * (1 + gamma * iter) ^ (-power); a "
    "negative power turns the decay into growth and the updates diverge"
)
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(60, 4, 2, 2).astype(np.float32), np.arange(60) % 3)
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 6), 3))
    power = 0.75 if clean else -float(rng.choice([3, 4]))
    return solver(folder, seed, policy="inv", max_iter=60, extra=f"gamma: 1\npower: {power:g}")


def key(seed):
    return Key(
        ("lr_policy", "exploding_gradients"),
        fixes=(solver_has("power", lambda p: p >= 0, "power >= 0"),),
    )
