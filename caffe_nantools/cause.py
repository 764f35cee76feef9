"""The causes that diagnose, hunt and watch name, one set for all of them, and how the evidence
and advice of a verdict on one read."""

from __future__ import annotations

from enum import Enum
from typing import List, Sequence


class Cause(str, Enum):
    """A cause of a non-finite value; each equals its text (``Cause.BAD_INPUT == "bad_input"``),
    which is what JSON shows."""

    BAD_INPUT = "bad_input"  # the data delivered it: a bad record
    EXPLODING_GRADIENTS = (
        "exploding_gradients"  # values grew by orders of magnitude over the updates
    )
    LR_POLICY = "lr_policy"  # the solver's rate itself went non-finite
    LAYER_NUMERICS = (
        "layer_numerics"  # a layer made it from finite inputs (log, sqrt or division at 0)
    )
    CONFIG = "config"  # a net setting that computes it, such as an empty pooling window
    CAFFE_ABORT = (
        "caffe_abort"  # Caffe stopped (a failed CHECK, a crash) before anything went non-finite
    )
    UNKNOWN = "unknown"  # it went non-finite, and the log does not say where
    NONE = "none"  # everything stayed finite

    # The text in messages and f-strings on every Python version (3.12 changed Enum's format).
    __str__ = str.__str__
    __format__ = str.__format__


def evidence_and_advice(evidence: Sequence[str], advice: Sequence[str]) -> List[str]:
    """The ``evidence:`` and ``advice:`` sections a verdict's text ends with (an empty one left
    out)."""
    lines = []
    if evidence:
        lines.append("evidence:")
        lines += [f"  {e}" for e in evidence]
    if advice:
        lines.append("advice:")
        lines += [f"  - {a}" for a in advice]
    return lines
