"""A square root (Power 0.5) of a ReLU's output: its gradient at 0 is infinite."""

from faults import Key, layer_param
from faults._make import dummy_classifier, solver, write

SOURCE = "seed 001: a post on NaN loss from the sqrt of a zero distance, fixed by an epsilon inside the sqrt"
SUMMARY = (
    "sqrt(x) at x = 0 has an infinite derivative; the epsilon goes inside the sqrt, not on the loss"
)
FAILS = "nonfinite"
NAMES = ("root", "sqrt_dist", "l2_root")


def build(folder, seed, clean=False):
    name = NAMES[seed % len(NAMES)]
    shift = " shift: 1e-6" if clean else ""
    extra = f'layer {{ name: "{name}" type: "Power" bottom: "hidden" top: "rooted" power_param {{ power: 0.5{shift} }} }}\n'
    write(folder, "net.prototxt", dummy_classifier(seed, extra, "rooted"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    name = NAMES[seed % len(NAMES)]
    shifted = layer_param(
        name, "power_param.shift", lambda v: bool(v) and v[0] > 0, "power_param shift > 0"
    )
    return Key(("layer_numerics",), (name,), fixes=(shifted,))
