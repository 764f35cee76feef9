"""One entry per Caffe layer type caffe-nantools knows something of: what lint checks in it, what
a loss or metric layer requires of its bottoms (scan checks the data against it), what diagnose
advises when it made non-finite values from finite inputs, and the changes hunt tries on it.

This is the one place for a layer type's knowledge: a new lint rule of a type is its function
(:mod:`~caffe_nantools.layertypes.checks`) and its place in the type's ``lint``; a new type is
one more entry. lint, scan, diagnose and hunt look the type up with :func:`layer_type`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from caffe_nantools.layertypes.checks import (
    BATCHNORM_EPS,
    BATCHNORM_GLOBAL_TRAIN,
    HDF5_SHUFFLE,
    INFOGAIN_UNNORMALIZED,
    LOG_NONPOSITIVE,
    MULTIBOX_VALID,
    NAMED_TO_HIDE_NAN,
    NO_WEIGHT_FILLER,
    POOL_EMPTY_WINDOW,
    POOL_PAD,
    POOL_STRIDE,
    PYTHON_MODULE,
    RAW_INPUT,
    SMOOTHL1_SIGMA,
    SOFTMAX_LOGLOSS,
    THRESHOLD_HIDES_NAN,
)
from caffe_nantools.layertypes.contracts import BINARY, CLASS, LABEL_COUNT, SCALE, UNIT, Contract
from caffe_nantools.layertypes.edits import (
    Edits,
    batch_norm_edits,
    exp_edits,
    log_edits,
    pooling_edits,
    power_edits,
)
from caffe_nantools.layertypes.rules import Rule


@dataclass(frozen=True)
class LayerType:
    """What is known of one layer type.

    Attributes:
        name: the type, as a net's ``type:`` says it.
        lint: the rules lint checks a layer of the type by, in the order of their findings
            (after them, :data:`EVERY_LAYER`'s).
        contract: a loss or metric layer's contract on each bottom it constrains.
        advice: what to change when a layer of the type turned finite inputs into non-finite
            values (``{name}``: the layer's name).
        edits: the changes hunt trains on such a layer, best first; None where it has none.
    """

    name: str
    lint: Tuple[Rule, ...] = ()
    contract: Tuple[Contract, ...] = ()
    advice: str = ""
    edits: Optional[Edits] = None


#: The rules every layer is checked by, whatever its type, after its type's rules.
EVERY_LAYER = (NAMED_TO_HIDE_NAN,)

_LEARNED = (NO_WEIGHT_FILLER,)
_RAW_INPUT = (RAW_INPUT,)

TYPES: Dict[str, LayerType] = {
    t.name: t
    for t in (
        LayerType(
            "BatchNorm",
            lint=(BATCHNORM_EPS, BATCHNORM_GLOBAL_TRAIN),
            advice="BatchNorm {name!r}: a channel with zero variance divides by sqrt(eps); keep "
            "eps > 0 (default 1e-5), and use_global_stats: false in TRAIN",
            edits=batch_norm_edits,
        ),
        LayerType(
            "Log",
            lint=(LOG_NONPOSITIVE,),
            advice="Log layer {name!r} sees values <= 0: give it a shift (log_param {{ shift: "
            "1e-6 }}) or feed it values that stay positive",
            edits=log_edits,
        ),
        LayerType(
            "Power",
            lint=(LOG_NONPOSITIVE,),
            advice="Power layer {name!r}: a fractional or negative power of values <= 0 is NaN "
            "or inf, and the gradient of x^0.5 at 0 is inf: add a shift (power_param {{ shift: "
            "1e-6 }})",
            edits=power_edits,
        ),
        LayerType("Exp", edits=exp_edits),
        LayerType(
            "Pooling",
            lint=(POOL_PAD, POOL_STRIDE, POOL_EMPTY_WINDOW),
            advice="Pooling {name!r}: windows past the input give -FLT_MAX (MAX) and the next "
            "layer overflows; keep stride <= kernel and pad < kernel",
            edits=pooling_edits,
        ),
        LayerType("Threshold", lint=(THRESHOLD_HIDES_NAN,)),
        LayerType(
            "Python",
            lint=(PYTHON_MODULE,),
            advice="Python layer {name!r}: look for log, sqrt or division at 0 in its "
            "forward/backward",
        ),
        LayerType(
            "Normalize",
            advice="Normalize {name!r} divides by the norm of a vector that can be 0: give it an eps",
        ),
        LayerType("SoftmaxWithLoss", contract=(Contract(1, CLASS, "loss_param", LABEL_COUNT),)),
        LayerType("Accuracy", contract=(Contract(1, CLASS, "accuracy_param", LABEL_COUNT),)),
        LayerType(
            "MultinomialLogisticLoss",
            lint=(SOFTMAX_LOGLOSS,),
            contract=(Contract(0, UNIT), Contract(1, CLASS)),
            advice="MultinomialLogisticLoss {name!r} takes log of a probability that can be 0: "
            "use SoftmaxWithLoss on the raw scores instead",
        ),
        LayerType(
            "InfogainLoss",
            lint=(INFOGAIN_UNNORMALIZED,),
            contract=(Contract(0, UNIT), Contract(1, CLASS)),
            advice="InfogainLoss {name!r} takes log of its input: feed it Softmax probabilities",
        ),
        LayerType("HingeLoss", contract=(Contract(1, CLASS),)),
        LayerType("SigmoidCrossEntropyLoss", contract=(Contract(1, UNIT, "loss_param"),)),
        LayerType("ContrastiveLoss", contract=(Contract(2, BINARY),)),
        LayerType("EuclideanLoss", contract=(Contract(0, SCALE), Contract(1, SCALE))),
        LayerType("SmoothL1Loss", lint=(SMOOTHL1_SIGMA,)),
        LayerType("MultiBoxLoss", lint=(MULTIBOX_VALID,)),
        LayerType("Convolution", lint=_LEARNED),
        LayerType("Deconvolution", lint=_LEARNED),
        LayerType("InnerProduct", lint=_LEARNED),
        LayerType("Embed", lint=_LEARNED),
        LayerType("Data", lint=_RAW_INPUT),
        LayerType("ImageData", lint=_RAW_INPUT),
        LayerType("WindowData", lint=_RAW_INPUT),
        LayerType("HDF5Data", lint=(HDF5_SHUFFLE,)),
    )
}


def layer_type(name: str) -> LayerType:
    """The entry of the type ``name``; an empty one (nothing known) for a type not listed."""
    return TYPES.get(name) or LayerType(name)
