"""The causes that diagnose, hunt and watch name, one set for all of them, and how the evidence
and advice of a verdict on one read."""

from __future__ import annotations

from enum import Enum
from typing import List, Sequence, Tuple


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


#: Every cause with the commands that name it: diagnose, from a log alone, does not tell a net
#: setting (``config``) from a layer's numerics; hunt checks every blob, so it is never left with
#: ``unknown``.
CAUSES = (
    (Cause.BAD_INPUT, ("diagnose", "hunt")),
    (Cause.EXPLODING_GRADIENTS, ("diagnose", "hunt")),
    (Cause.LR_POLICY, ("diagnose", "hunt")),
    (Cause.LAYER_NUMERICS, ("diagnose", "hunt")),
    (Cause.CONFIG, ("hunt",)),
    (Cause.CAFFE_ABORT, ("diagnose", "hunt")),
    (Cause.UNKNOWN, ("diagnose",)),
    (Cause.NONE, ("diagnose", "hunt")),
)


def named_by(command: str) -> Tuple[Cause, ...]:
    """The causes ``command`` (``diagnose`` or ``hunt``) can name."""
    return tuple(cause for cause, commands in CAUSES if command in commands)


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


def plural(n: int, what: str) -> str:
    """``n`` and ``what``, plural unless it is one."""
    return f"{n} {what}" + "s" * (n != 1)
