"""hunt's verdict: the first failure of the checked training, read with what the net, the
trace (diagnose's rules), the scan and lint say, as one answer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional

from caffe_nantools.cause import Cause
from caffe_nantools.inject import CHECK_PREFIX
from caffe_nantools.prototxt.net import Layer, Net, NetState

if TYPE_CHECKING:
    from caffe_nantools.diagnose import Blame, Diagnosis
    from caffe_nantools.hunt.training import Training
    from caffe_nantools.lint import LintFinding
    from caffe_nantools.scan import ScanReport

#: The causes hunt names.
CAUSES = (
    Cause.BAD_INPUT,
    Cause.EXPLODING_GRADIENTS,
    Cause.LR_POLICY,
    Cause.LAYER_NUMERICS,
    Cause.CONFIG,
    Cause.CAFFE_ABORT,
    Cause.NONE,
)
TRAIN = NetState("TRAIN")


@dataclass
class Verdict:
    """Where and why. ``record`` names the record that reached the net, for ``bad_input``;
    ``fix`` is filled in by the verification (``change``, ``verified``, ``files``)."""

    cause: Cause
    layer: Optional[str] = None
    blob: Optional[str] = None
    pass_: Optional[str] = None
    iteration: Optional[int] = None
    phase: Optional[str] = None
    record: Optional[Dict[str, str]] = None
    origin: Optional["Blame"] = None  # where the trouble began, by the trace (diagnose's origin)
    records: List[Dict[str, str]] = field(default_factory=list)
    evidence: List[str] = field(default_factory=list)
    advice: List[str] = field(default_factory=list)
    fix: Optional[dict] = None

    def to_dict(self) -> dict:
        return {
            "cause": self.cause,
            "layer": self.layer,
            "blob": self.blob,
            "pass": self.pass_,
            "iteration": self.iteration,
            "phase": self.phase,
            "origin": self.origin.to_dict() if self.origin is not None else None,
            "record": self.record,
            "records": self.records,
            "evidence": self.evidence,
            "advice": self.advice,
            "fix": self.fix,
        }


def judge(
    net: Net,
    training: "Training",
    diagnosis: Optional["Diagnosis"],
    scan: Optional["ScanReport"],
    findings: List["LintFinding"],
) -> Verdict:
    """The verdict of one hunt; ``records`` are filled in by the caller (they need the stores)."""
    error = training.error
    if training.aborted and error is None:
        return _aborted(training, diagnosis)
    if error is None:
        bad = [f for f in scan.findings if f.index >= 0] if scan is not None else []
        if bad:
            first = bad[0]
            return Verdict(
                Cause.BAD_INPUT,
                record={"source": first.source, "key": first.key},
                evidence=[f"scan: {first.source} record {first.key}: {first.detail}"],
                advice=[
                    f"the training stayed finite for {training.iterations} iterations, but "
                    f"{len(bad)} bad records wait in the data: `caffe-nantools scan {first.source} "
                    "--write-clean CLEAN` copies it without them"
                ],
            )
        return Verdict(Cause.NONE, evidence=[f"{training.iterations} iterations stayed finite"])
    v = Verdict(
        Cause.LAYER_NUMERICS,
        blob=error.blob,
        pass_=error.pass_,
        iteration=training.iteration,
        phase=error.phase,
        evidence=[str(error)],
    )
    exploded = diagnosis is not None and diagnosis.cause == Cause.EXPLODING_GRADIENTS
    if error.by == "guard":
        v.layer = error.layer
        lr = error.lr
        if lr is not None and not math.isfinite(lr):
            v.cause = Cause.LR_POLICY
            v.advice.append(
                f"the learning rate is {lr} at iteration {v.iteration}: {_lr_findings(findings)}"
            )
        elif exploded or error.pass_ in ("update", "backward"):
            v.cause = Cause.EXPLODING_GRADIENTS
        return _with_diagnosis(v, diagnosis)
    checked_blob, after = _check_place(error.layer)
    if error.pass_ == "forward":
        v.layer = after
        producer = _layer(net, after)
        if producer is not None and producer.is_data:
            v.cause = Cause.BAD_INPUT
            v.advice.append(
                f"the batch of iteration {v.iteration} held non-finite values in samples "
                f"{list(error.bad_samples)}: drop those records (`caffe-nantools scan --write-clean`)"
            )
            return v
    else:
        v.layer = _backward_writer(net, checked_blob, after)
    if exploded:
        v.cause = Cause.EXPLODING_GRADIENTS
    elif error.pass_ == "forward" and any(
        f.severity == "error" and v.layer in f.layers for f in findings
    ):
        v.cause = Cause.CONFIG
        v.advice += [
            f"{f.file}:{f.line}: {f.message}; {f.fix}"
            for f in findings
            if f.severity == "error" and v.layer in f.layers
        ]
    return _with_diagnosis(v, diagnosis)


def _aborted(training: "Training", diagnosis: Optional["Diagnosis"]) -> Verdict:
    v = Verdict(
        Cause.CAFFE_ABORT,
        evidence=[
            f"Caffe ended the training process (exit code {training.exit_code}) "
            f"after {training.iterations} iterations"
        ],
    )
    abort = diagnosis.abort if diagnosis is not None else None
    if abort is not None:
        v.evidence.append(f"{training.log}:{abort['line']}: {abort['text']}")
        v.advice += diagnosis.advice
    return v


def _with_diagnosis(v: Verdict, diagnosis: Optional["Diagnosis"]) -> Verdict:
    """The trace's summary and advice where they speak of the same failure."""
    if diagnosis is None or diagnosis.cause in (Cause.NONE, Cause.CAFFE_ABORT):
        return v
    v.origin = diagnosis.began
    v.evidence += diagnosis.summary[:4]
    v.advice += [
        a for a in diagnosis.advice if "caffe-nantools inject" not in a and a not in v.advice
    ]
    return v


def _check_place(label: str):
    """(blob, layer after which the check sits) from a check's label ``nancheck/blob@layer``."""
    name = label[len(CHECK_PREFIX) :] if label.startswith(CHECK_PREFIX) else label
    blob, _, after = name.rpartition("@")
    return (blob, after) if blob else (name, None)


def _layer(net: Net, name: Optional[str]) -> Optional[Layer]:
    return next((l for l in net.active_layers(TRAIN) if l.name == name), None)


def _backward_writer(net: Net, blob: str, after: Optional[str]) -> Optional[str]:
    """The layer whose backward wrote the diff a check after ``after`` saw: the next in-place
    modifier of ``blob``, else the first layer that reads it."""
    layers = net.active_layers(TRAIN)
    chain = net.chain(blob, TRAIN)
    names = [l.name for l in chain]
    if after in names and names.index(after) + 1 < len(names):
        return names[names.index(after) + 1]
    start = next((i for i, l in enumerate(layers) if l.name == after), -1)
    reader = next(
        (l for l in layers[start + 1 :] if blob in l.bottoms and not l.in_place(blob)), None
    )
    return reader.name if reader is not None else after


def _lr_findings(findings: List["LintFinding"]) -> str:
    found = [
        f"{f.message} ({f.file}:{f.line})"
        for f in findings
        if f.rule == "lr-policy" and f.severity == "error"
    ]
    return "; ".join(found) or "the solver's lr_policy computes it"
