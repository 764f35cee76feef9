"""A Power layer with a fractional power on a signed input: a negative base gives NaN."""

from faults import Key, layer_param
from faults._make import dummy_classifier, fc, solver, write

SOURCE = (
    "https://stackoverflow.com/questions/33962226/common-causes-of-nans-during-training",
    "seed 001: a post on NaN loss from a root taken of a value that can leave its domain",
)
SUMMARY = (
    "common causes, faulty loss: a computation in the net makes the NaN; x ^ p with a fractional p is "
    "NaN for x < 0 (here a Power on an un-rectified fully connected output)"
)
FAILS = "nonfinite"
POWERS = (0.5, 1.5, 0.25)


def build(folder, seed, clean=False):
    power = POWERS[seed % len(POWERS)]
    # the twin squares it instead: an integer power is defined for every base
    shift = "power_param { power: 2 }" if clean else f"power_param {{ power: {power:g} }}"
    extra = fc("proj", "hidden", 6) + (
        f'layer {{ name: "pow_feat" type: "Power" bottom: "proj" top: "powered" {shift} }}\n'
    )
    write(folder, "net.prototxt", dummy_classifier(seed, extra, "powered"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    whole = layer_param(
        "pow_feat",
        "power_param.power",
        lambda v: not v or float(v[0]).is_integer(),
        "an integer power",
    )
    return Key(("layer_numerics",), ("pow_feat",), fixes=(whole,))
