"""hunt's verdict: the first failure of the checked training, read with what the net, the
trace (diagnose's rules), the scan and lint say, as one answer."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from caffe_nantools.cause import Cause
from caffe_nantools.hunt.abort_rules import abort_layer, read_abort
from caffe_nantools.hunt.ending import crash_place
from caffe_nantools.hunt.batches import MAX_SCANNED
from caffe_nantools.hunt.numerics import Trained, policy_advice, read_trained
from caffe_nantools.inject import check_place
from caffe_nantools.jsontext import fields_dict
from caffe_nantools.prototxt import Layer, Net, NetState

if TYPE_CHECKING:
    from caffe_nantools.diagnose import Blame, Diagnosis, Valued
    from caffe_nantools.errors import NonFiniteError
    from caffe_nantools.hunt.ending import Ending
    from caffe_nantools.hunt.training import Training
    from caffe_nantools.lint import LintFinding
    from caffe_nantools.scan import ScanReport
    from caffe_nantools.scan.contracts import Breach
    from caffe_nantools.scan.report import Finding

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
#: Caffe's fatal line for an lr_policy it does not know (an empty one: there is no default).
UNKNOWN_POLICY = "Unknown learning rate policy"
#: Lint rules about a net's set-up, which a net that was built and ran has passed.
SET_UP_RULES = ("python-module",)
#: The scan's bad records quoted as evidence (all are in the verdict's records).
EVIDENCE_RECORDS = 3


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
    origin: Optional[Blame] = None  # where the trouble began, by the trace (diagnose's origin)
    record: Optional[Dict[str, str]] = None
    records: List[Dict[str, str]] = field(default_factory=list)
    evidence: List[str] = field(default_factory=list)
    advice: List[str] = field(default_factory=list)
    fix: Optional[dict] = None
    #: A source's systematic breach of a loss or metric layer's contract, for ``bad_input``.
    breach: Optional[Breach] = None

    def where(self) -> str:
        """Where it went wrong, in words: ``layer loss, pass forward, iteration 3``."""
        places = (
            ("layer", self.layer),
            ("blob", self.blob),
            ("pass", self.pass_),
            ("iteration", self.iteration),
            ("phase", self.phase),
        )
        return ", ".join(f"{name} {value}" for name, value in places if value is not None)

    def to_dict(self) -> dict:
        return fields_dict(self, keys={"pass_": "pass"})


def judge(
    net: Net,
    training: Training,
    diagnosis: Optional[Diagnosis],
    scan: Optional[ScanReport],
    findings: List[LintFinding],
    *,
    ending: Optional[Ending] = None,
    test_nets: Sequence[Net] = (),
    rate_fails_at: Optional[int] = None,
    rate_grows: Optional[Tuple[str, str, str]] = None,
) -> Verdict:
    """The verdict of one hunt; ``records`` are filled in by the caller (they need the stores),
    ``ending`` tells how Caffe ended the process when it did, ``test_nets`` are the solver's own
    test nets (else the net's TEST phase is tested), ``rate_fails_at`` the iteration at which
    the solver's rate goes non-finite, where lint computes one, ``rate_grows`` lint's reading
    of a policy that grows the rate (:func:`~caffe_nantools.lint.solver_rules.rate_grows`)."""
    error = training.error
    bad = bad_records(scan)
    if training.aborted and error is None:
        return _judge_training_abort(training, diagnosis, scan, ending, [net, *test_nets])
    if error is None:
        test = diagnosis.trace.first_bad_test if diagnosis and diagnosis.trace else None
        if test is not None:
            return _bad_test_output(test, training, test_nets or [net])
        if rate_fails_at is not None and rate_fails_at >= training.start + training.iterations:
            return _rate_fails_later(rate_fails_at, training, findings)
        if bad:
            first = bad[0]
            return Verdict(
                Cause.BAD_INPUT,
                record={"source": first.source, "key": first.key},
                evidence=_scan_evidence(bad),
                advice=[
                    f"the training stayed finite for {training.iterations} iterations, but "
                    f"{plural(len(bad), 'bad record')} wait in the data: the fix below drops those of "
                    f"{first.source} (`caffe-nantools scan {first.source} --write-clean CLEAN`)"
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
    v.evidence += _scan_evidence(bad)
    exploded = diagnosis is not None and diagnosis.cause == Cause.EXPLODING_GRADIENTS
    trained = read_trained(training.log)
    if error.by == "guard":
        v.layer = error.layer
        lr = error.lr
        if lr is not None and not math.isfinite(lr):
            v.cause = Cause.LR_POLICY
            v.advice.append(
                f"the learning rate is {lr} at iteration {v.iteration}: {_lr_findings(findings)}"
            )
        elif exploded or trained.exploded or error.pass_ in ("update", "backward"):
            v.cause = Cause.EXPLODING_GRADIENTS
        _policy_grew(v, trained, rate_grows)
        return _with_diagnosis(v, diagnosis)
    checked_blob, after = _check_place(error)
    if error.pass_ == "forward":
        v.layer = after
        tested = error.phase == "TEST"
        producer = (
            _layer(test_nets or [net], after, NetState("TEST")) if tested else _layer([net], after)
        )
        if producer is not None and producer.is_data:
            v.cause = Cause.BAD_INPUT
            batch = (
                f"the test pass at iteration {v.iteration} read a batch (the layer's batch "
                f"{error.iteration} in the TEST phase) that held"
                if tested
                else f"the batch of iteration {v.iteration} held"
            )
            v.advice.append(
                f"{batch} non-finite values in samples {list(error.bad_samples)}: drop those "
                "records (`caffe-nantools scan --write-clean`)"
            )
            return v
    else:
        v.layer = _backward_writer(net, checked_blob, after)
    # The net was built and ran: a finding about its set-up (a module lint could not find from
    # here) is not why a value went non-finite.
    found = [
        f
        for f in findings
        if f.severity == "error" and v.layer in f.layers and f.rule not in SET_UP_RULES
    ]
    began = diagnosis.began if diagnosis is not None else None
    if began is not None and began.no_statistics and began.layer:
        # BatchNorm without statistics scales its input up ~300x: the overflow after it, and
        # the weights that grow from its gradients, are its doing.
        v.cause, v.layer = Cause.CONFIG, began.layer
    elif exploded or trained.exploded:
        v.cause = Cause.EXPLODING_GRADIENTS
        if trained.exploded:
            v.evidence.append(trained.weights_text())
    elif error.pass_ == "forward" and found:
        v.cause = Cause.CONFIG
        v.advice += [f"{f.file}:{f.line}: {f.message}; {f.fix}" for f in found]
    _policy_grew(v, trained, rate_grows)
    v = _with_diagnosis(v, diagnosis)
    ran = [f"{f.file}:{f.line}: {f.message}" for f in findings if f.rule in SET_UP_RULES]
    v.advice = [a for a in v.advice if not a.startswith(tuple(ran))] if ran else v.advice
    return v


def _policy_grew(v: Verdict, trained: Trained, grows: Optional[Tuple[str, str, str]]) -> None:
    """An explosion after the solver's policy grew the rate is the policy's."""
    if v.cause == Cause.EXPLODING_GRADIENTS and grows is not None and trained.rate_rose:
        v.cause = Cause.LR_POLICY
        v.advice.insert(0, policy_advice(grows, trained))


def _judge_training_abort(
    training: Training,
    diagnosis: Optional[Diagnosis],
    scan: Optional[ScanReport],
    ending: Optional[Ending],
    nets: Sequence[Net],
) -> Verdict:
    """Caffe's abort: what its fatal line, or the signal, names first; ``bad_input`` where the
    fatal line names a record the scan found bad (an image that does not decode, say). Other bad
    records are blamed by the caller, and only those the failing batch read. ``nets``: the train
    net, then the test nets."""
    net = nets[0]
    bad = bad_records(scan)
    iterations = ending.iterations if ending is not None else training.iterations
    how = ending.how if ending is not None else f"exit code {training.exit_code}"
    v = Verdict(
        Cause.CAFFE_ABORT,
        iteration=iterations,
        evidence=[f"the training process ended after {plural(iterations, 'iteration')}: {how}"],
    )
    abort = diagnosis.abort if diagnosis is not None else None
    said = ending.python_error if ending is not None else None
    if abort is not None and said is not None and "Boost.Python" in abort["text"]:
        # Boost.Python's SystemError only says that Python raised; the exception says what.
        abort = {"line": said[0], "text": said[1]}
    place = crash_place(ending, net) if ending is not None and abort is None else None
    if abort is not None:
        v.evidence.append(f"{training.log}:{abort['line']}: {abort['text']}")
    elif place is not None:
        v.evidence.append(place)
    if ending is not None and ending.cause:
        v.advice.append(ending.cause)  # the fatal line's reason, not its usual meaning
    elif abort is not None:
        v.advice += diagnosis.advice
    if abort is not None and UNKNOWN_POLICY in abort["text"]:
        v.cause = Cause.LR_POLICY
        v.advice.insert(0, "Caffe has no default lr_policy: the solver must name one")
    for source in empty_sources(scan):
        v.advice.insert(
            0,
            f"{source} holds no records (the scan found it empty): Caffe stops on an empty source",
        )
    _read_abort(v, abort, ending, nets, scan, training.log)
    named = next((f for f in bad if abort is not None and _names(abort["text"], f.key)), None)
    if named is not None:
        v.cause = Cause.BAD_INPUT
        v.record = {"source": named.source, "key": named.key}
        v.advice.insert(0, f"Caffe stopped on record {named.key} of {named.source}: {named.detail}")
    v.evidence += _scan_evidence(bad)
    return v


def _read_abort(
    v: Verdict,
    abort: Optional[dict],
    ending: Optional[Ending],
    nets: Sequence[Net],
    scan: Optional[ScanReport],
    log: Optional[str],
) -> None:
    """The layer Caffe stopped in, and what the rule for its fatal line makes of it: a net
    setting (``config``), records (``bad_input``), or nothing known (``caffe_abort``)."""
    fatal = abort["text"] if abort is not None else None
    last = ending.last_layer if ending is not None else None
    states = [(nets[0], TRAIN)] + [(n, NetState("TEST")) for n in nets[1:] or nets[:1]]
    layer = abort_layer(states, fatal, last)
    if layer is None:
        return
    v.layer = layer.name
    found = (
        read_abort(fatal, layer, nets[0], scan, log)
        if fatal and v.cause == Cause.CAFFE_ABORT
        else None
    )
    if found is None:
        return
    reading = found[1]
    v.cause = reading.cause
    v.advice[:0] = reading.advice
    if reading.blame:
        v.record = {"source": reading.blame[0].source, "key": reading.blame[0].key}
    v.records = [
        {"source": f.source, "key": f.key, "index": str(f.index)}
        for f in (reading.blame or reading.listed)[:MAX_SCANNED]
    ]


def empty_sources(scan: Optional[ScanReport]) -> List[str]:
    """The sources the scan found without a record."""
    found = scan.findings if scan is not None else ()
    return list(dict.fromkeys(f.source for f in found if f.index < 0 and f.problem == "empty"))


def bad_records(scan: Optional[ScanReport]) -> List[Finding]:
    """The scan's findings about single records (not about a whole source), one per record."""
    seen, bad = set(), []
    for f in scan.findings if scan is not None else ():
        if f.index >= 0 and (f.source, f.index) not in seen:
            seen.add((f.source, f.index))
            bad.append(f)
    return bad


def _names(text: str, key: str) -> bool:
    """Whether a fatal line names ``key`` (as a word or a path's last part, not inside another
    name)."""
    return re.search(rf"(?<![\w.-]){re.escape(key)}(?![\w.-])", text) is not None


def plural(n: int, what: str) -> str:
    """``n`` and ``what``, plural unless it is one."""
    return f"{n} {what}" + "s" * (n != 1)


def _scan_evidence(bad: List[Finding]) -> List[str]:
    lines = [f"scan: {f.source} record {f.key}: {f.detail}" for f in bad[:EVIDENCE_RECORDS]]
    if len(bad) > EVIDENCE_RECORDS:
        lines.append(f"scan: {len(bad) - EVIDENCE_RECORDS} more bad records")
    return lines


def _with_diagnosis(v: Verdict, diagnosis: Optional[Diagnosis]) -> Verdict:
    """The trace's summary and advice where they speak of the same failure."""
    if diagnosis is None or diagnosis.cause in (Cause.NONE, Cause.CAFFE_ABORT):
        return v
    v.origin = diagnosis.began
    v.evidence += diagnosis.summary[:4]
    v.advice += [
        a for a in diagnosis.advice if "caffe-nantools inject" not in a and a not in v.advice
    ]
    return v


def _check_place(error: NonFiniteError) -> Tuple[str, Optional[str]]:
    """(blob, layer after which the check sits) of a check's error."""
    if error.writer is not None:
        return error.blob, error.writer
    # A check at a net input, or one injected by an older version (no writer in its
    # param_str, none in its record): only its name says where it sits.
    return check_place(error.layer)


def _layer(nets: Sequence[Net], name: Optional[str], state: NetState = TRAIN) -> Optional[Layer]:
    return next((l for n in nets for l in n.active_layers(state) if l.name == name), None)


def _bad_test_output(test: Valued, training: Training, nets: Sequence[Net]) -> Verdict:
    """A test pass's output went non-finite though every checked blob stayed finite: the layer
    that made it (a loss top is not checked) made it from finite inputs."""
    name = test.name.split(" = ")[0].strip()
    maker = next(
        (l for n in nets for l in n.active_layers(NetState("TEST")) if name in l.tops), None
    )
    return Verdict(
        Cause.LAYER_NUMERICS,
        layer=maker.name if maker is not None else None,
        blob=name or None,
        pass_="forward",
        iteration=test.iteration,
        phase="TEST",
        evidence=[f"{training.log}:{test.line}: {test.text.strip()}"],
        advice=[
            f"the test net's output {name} went non-finite from inputs the checks found finite: "
            f"look at {maker.name if maker is not None else 'the layer that computes it'}"
        ],
    )


def _rate_fails_later(at: int, training: Training, findings: List[LintFinding]) -> Verdict:
    """The rate goes non-finite past the iterations trained, as lint computes."""
    return Verdict(
        Cause.LR_POLICY,
        iteration=at,
        evidence=[
            f"{training.iterations} iterations stayed finite, but the rate goes non-finite at "
            f"iteration {at}: {_lr_findings(findings)}"
        ],
        advice=[
            f"the training fails at iteration {at} at the latest (the weights may go "
            f"non-finite sooner as the rate grows), past the {training.iterations} iterations "
            f"hunt trained: confirm with `--iters {at + 1 - training.start}`; fix the lr_policy's settings"
        ],
    )


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


def _lr_findings(findings: List[LintFinding]) -> str:
    found = [
        f"{f.message} ({f.file}:{f.line})"
        for f in findings
        if f.rule == "lr-policy" and f.severity == "error"
    ]
    return "; ".join(found) or "the solver's lr_policy computes it"
