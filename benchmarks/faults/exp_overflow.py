"""An Exp layer with a large input scale: exp overflows float to inf."""

import numpy as np

from faults import Key, layer_param
from faults._make import dummy_classifier, solver, write

SOURCE = (
    "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training",
    "seed 001: a post on NaN loss listing overflow in exp among the causes to check",
)
SUMMARY = (
    "common causes, faulty loss: a computation in the net makes the non-finite value; exp of a value "
    "above about 88 is inf in float"
)
FAILS = "nonfinite"


def _scale(seed):
    return float(np.random.RandomState(seed).choice([200, 400, 800]))


def build(folder, seed, clean=False):
    scale = 0.1 if clean else _scale(seed)
    extra = (
        f'layer {{ name: "gate_exp" type: "Exp" bottom: "hidden" top: "gated" '
        f"exp_param {{ scale: {scale:g} }} }}\n"
    )
    write(folder, "net.prototxt", dummy_classifier(seed, extra, "gated"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    small = layer_param(
        "gate_exp", "exp_param.scale", lambda v: bool(v) and v[0] <= 1, "exp_param scale <= 1"
    )
    return Key(("layer_numerics",), ("gate_exp",), fixes=(small,))
