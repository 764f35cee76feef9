"""A solver without lr_policy (Caffe has no default and stops on the first step)."""

import numpy as np

from faults import Key, solver_string
from faults._make import classifier, data_layer, datums, solver, write

SOURCE = "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training"
SUMMARY = (
    "common causes, bad learning rate policy: fix all parameters affecting the learning rate in the solver; "
    "a missing lr_policy is 'Unknown learning rate policy'"
)
FAILS = "abort: Unknown learning rate policy"
POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    datums(f"{folder}/train_lmdb", rng.randn(48, 6, 1, 1).astype(np.float32), np.arange(48) % 3)
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 8), 3))
    return solver(folder, seed, policy="fixed" if clean else None, max_iter=20)


def key(seed):
    return Key(("lr_policy",), fixes=(solver_string("lr_policy", POLICIES),))
