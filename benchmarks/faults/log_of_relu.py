"""A Log layer on a ReLU's output: log(0) = -inf."""

from faults import Key, layer_param
from faults._make import dummy_classifier, solver, write

SOURCE = (
    "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training",
    "seed 001: a post on NaN loss, add an epsilon where a log of zero is taken",
)
SUMMARY = "common causes, faulty loss: a computation in the net (here log of a ReLU's zeros) makes the loss NaN"
FAILS = "nonfinite"
NAMES = ("log_feat", "take_log", "logit_in")


def build(folder, seed, clean=False):
    name = NAMES[seed % len(NAMES)]
    shift = "log_param { shift: 1 }" if clean else ""
    extra = f'layer {{ name: "{name}" type: "Log" bottom: "hidden" top: "logged" {shift} }}\n'
    write(folder, "net.prototxt", dummy_classifier(seed, extra, "logged"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    name = NAMES[seed % len(NAMES)]
    shifted = layer_param(
        name, "log_param.shift", lambda v: bool(v) and v[0] > 0, "log_param shift > 0"
    )
    return Key(("layer_numerics",), (name,), fixes=(shifted,))
