"""hunt's part of the verdict: the first failure of the checked training, read with what its
log (the log's own verdict), the net, the scan and lint say, as one answer.

hunt gathers all of it first (:class:`CheckedGrounds`): the records the failing batch read come
from the stores, the rule for an abort's fatal line from the net and the scan, the weights'
growth from the log. Judging only weighs that evidence, so the verdict is complete when it is
made: the records it blames, the breach of a layer's contract, the replay bundle it cites.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence, Tuple

from caffe_nantools.cause import Cause, plural
from caffe_nantools.diagnose.reading import Abort
from caffe_nantools.diagnose.verdict import MAX_SCANNED, RecordRef, Verdict
from caffe_nantools.diagnose.weights import Trained, policy_advice
from caffe_nantools.inject import error_place
from caffe_nantools.prototxt import Layer, Net, NetState

if TYPE_CHECKING:
    from caffe_nantools.diagnose.reading import Run, Valued
    from caffe_nantools.hunt.abort_rules import Reading
    from caffe_nantools.hunt.ending import Ending
    from caffe_nantools.hunt.training import Training
    from caffe_nantools.lint import LintFinding
    from caffe_nantools.scan import ScanReport
    from caffe_nantools.scan.contracts import Breach
    from caffe_nantools.scan.report import Finding

TRAIN = NetState("TRAIN")
#: Caffe's fatal line for an lr_policy it does not know (an empty one: there is no default).
UNKNOWN_POLICY = "Unknown learning rate policy"
#: Lint rules about a net's set-up, which a net that was built and ran has passed.
SET_UP_RULES = ("python-module",)
#: The scan's bad records quoted as evidence (all are in the verdict's records).
EVIDENCE_RECORDS = 3


@dataclass(frozen=True)
class CheckedGrounds:
    """What hunt knows when it judges: the checked training and its log's verdict (``told``, of
    ``run``; None where the log could not be read), the net and the solver's own test nets
    (else the net's TEST phase is tested), the scan and lint, and what was read for them:

    - ``ending``: how Caffe ended the process, when it did; ``crash``: where a process that
      ended without a word was; ``stopped_in``: the layer Caffe was setting up or running when
      it stopped, and ``fatal_reading`` what the rule for its fatal line makes of it;
    - ``rate_fails_at``: the iteration at which the solver's rate goes non-finite, where lint
      computes one; ``rate_grows``: lint's reading of a policy that grows the rate;
      ``trained``: the weights' norms and the rates in the log;
    - ``reached``: the records the failing batch's bad samples were read from;
      ``held``/``held_by``: the scan's bad records that the failing batch read, and the data
      layer that read them (``unheld``: why that batch's records cannot be named);
      ``readers``: the (phase, data layer) that reads each source the scan names;
    - ``replay``: the replay bundle of the failing iteration, written.
    """

    net: Net
    training: Training
    told: Optional[Verdict] = None
    run: Optional[Run] = None
    scan: Optional[ScanReport] = None
    findings: Sequence[LintFinding] = ()
    test_nets: Sequence[Net] = ()
    ending: Optional[Ending] = None
    crash: Optional[str] = None
    stopped_in: Optional[str] = None
    fatal_reading: Optional[Reading] = None
    rate_fails_at: Optional[int] = None
    rate_grows: Optional[Tuple[str, str, str]] = None
    trained: Trained = field(default_factory=lambda: Trained([], []))
    reached: Sequence[RecordRef] = ()
    held: Sequence[RecordRef] = ()
    held_by: Optional[str] = None
    unheld: Optional[str] = None
    readers: Mapping[str, Tuple[str, Optional[str]]] = field(default_factory=dict)
    replay: Optional[str] = None

    @property
    def nets(self) -> List[Net]:
        """The train net, then the nets that are tested."""
        return [self.net, *self.test_nets]

    @property
    def bad(self) -> List[Finding]:
        return bad_records(self.scan)

    @property
    def fatal(self) -> Optional[Abort]:
        return fatal_line(self.run, self.ending)

    def reader(self, source: str) -> Tuple[str, Optional[str]]:
        return self.readers.get(source, ("TRAIN", None))


def judge_checked(g: CheckedGrounds) -> Verdict:
    """The verdict of one hunt."""
    training = g.training
    if training.aborted and training.error is None:
        v = _judge_training_abort(g)
    elif training.error is None:
        v = _judge_finite(g)
    else:
        v = _judge_failure(g)
    _blame_breach(v, g)
    if v.cause == Cause.NONE and g.scan is not None and g.scan.findings:
        _unreadable(v, g.scan.findings, training)
    if g.replay is not None:
        v.evidence.append(f"replay bundle: {g.replay} (caffe-nantools replay {g.replay})")
    return v


def _judge_finite(g: CheckedGrounds) -> Verdict:
    """A training that stayed finite: a failing test pass, a rate that fails later, bad
    records that wait in the data, or nothing."""
    training, bad = g.training, g.bad
    test = g.run.first_bad_test if g.run is not None else None
    if test is not None:
        return _bad_test_output(test, training, g.test_nets or [g.net])
    if g.rate_fails_at is not None and g.rate_fails_at >= training.start + training.iterations:
        return _rate_fails_later(g.rate_fails_at, training, g.findings)
    if not bad:
        return Verdict(Cause.NONE, evidence=[f"{training.iterations} iterations stayed finite"])
    first = bad[0]
    v = Verdict(
        Cause.BAD_INPUT,
        record=RecordRef(first.source, first.key),
        evidence=_scan_evidence(bad),
        advice=[
            f"the training stayed finite for {training.iterations} iterations, but "
            f"{plural(len(bad), 'bad record')} wait in the data: the fix below drops those of "
            f"{first.source} (`caffe-nantools scan {first.source} --write-clean CLEAN`)"
        ],
    )
    _records_of_source(v, g)
    return v


def _judge_failure(g: CheckedGrounds) -> Verdict:
    """A value that went non-finite: where the check or the guard saw it, and why."""
    training, error, told = g.training, g.training.error, g.told
    v = Verdict(
        Cause.LAYER_NUMERICS,
        blob=error.blob,
        pass_=error.pass_,
        iteration=training.iteration,
        phase=error.phase,
        evidence=[str(error)],
    )
    v.evidence += _scan_evidence(g.bad)
    exploded = told is not None and told.cause == Cause.EXPLODING_GRADIENTS
    trained = g.trained
    if error.by == "guard":
        _guard_failure(v, g, exploded)
        return v
    checked_blob, after = error_place(error)
    if error.pass_ == "forward":
        v.layer = after
        tested = error.phase == "TEST"
        producer = (
            _layer(g.test_nets or [g.net], after, NetState("TEST"))
            if tested
            else _layer([g.net], after)
        )
        if producer is not None and producer.is_data:
            _bad_batch(v, error, tested, g.reached)
            return v
    else:
        v.layer = _backward_writer(g.net, checked_blob, after)
    # The net was built and ran: a finding about its set-up (a module lint could not find from
    # here) is not why a value went non-finite.
    found = [
        f
        for f in g.findings
        if f.severity == "error" and v.layer in f.layers and f.rule not in SET_UP_RULES
    ]
    began = told.origin if told is not None else None
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
    _policy_grew(v, trained, g.rate_grows)
    _with_log(v, told)
    ran = [f"{f.file}:{f.line}: {f.message}" for f in g.findings if f.rule in SET_UP_RULES]
    v.advice = [a for a in v.advice if not a.startswith(tuple(ran))] if ran else v.advice
    _blame_held(v, g)
    return v


def _guard_failure(v: Verdict, g: CheckedGrounds, exploded: bool) -> None:
    """The guard saw it: a non-finite rate is the policy's, a gradient or an update an
    explosion."""
    error = g.training.error
    v.layer = error.layer
    lr = error.lr
    if lr is not None and not math.isfinite(lr):
        v.cause = Cause.LR_POLICY
        v.advice.append(
            f"the learning rate is {lr} at iteration {v.iteration}: {_lr_findings(g.findings)}"
        )
    elif exploded or g.trained.exploded or error.pass_ in ("update", "backward"):
        v.cause = Cause.EXPLODING_GRADIENTS
    _policy_grew(v, g.trained, g.rate_grows)
    _with_log(v, g.told)
    _blame_held(v, g)


def _bad_batch(v: Verdict, error, tested: bool, reached: Sequence[RecordRef]) -> None:
    """A data layer's batch held the non-finite values: the records they were read from."""
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
    if reached:
        v.records = list(reached)
        v.record = RecordRef(reached[0].source, reached[0].key)


def _blame_held(v: Verdict, g: CheckedGrounds) -> bool:
    """A failure in a batch that holds records the scan found bad (a label past the classes,
    say): those records are the cause; the verdict keeps where it failed."""
    if not g.held:
        return False
    found = {(f.source, f.key): f for f in g.bad}
    first = found[g.held[0].source, g.held[0].key]
    v.cause = Cause.BAD_INPUT
    v.record = RecordRef(first.source, first.key)
    v.records = list(g.held)
    v.layer = v.layer or g.held_by
    v.advice.insert(
        0,
        f"the batch of iteration {v.iteration} held record {first.key} of "
        f"{first.source}, which the scan found bad: {first.detail}",
    )
    return True


def _records_of_source(v: Verdict, g: CheckedGrounds) -> None:
    """A verdict's record, where it was found: the scan's bad records of its source, and for
    ``bad_input`` the data layer that reads it."""
    v.records = scanned_records(g.bad, v.record)
    if v.cause == Cause.BAD_INPUT:
        phase, v.layer = g.reader(v.record.source)
        v.phase = v.phase or phase


def _policy_grew(v: Verdict, trained: Trained, grows: Optional[Tuple[str, str, str]]) -> None:
    """An explosion after the solver's policy grew the rate is the policy's."""
    if v.cause == Cause.EXPLODING_GRADIENTS and grows is not None and trained.rate_rose:
        v.cause = Cause.LR_POLICY
        v.advice.insert(0, policy_advice(grows, trained))


def _judge_training_abort(g: CheckedGrounds) -> Verdict:
    """Caffe's abort: what its fatal line, or the signal, names first; ``bad_input`` where the
    fatal line names a record the scan found bad (an image that does not decode, say), or where
    the batch Caffe stopped in read records the scan found bad (unless the fatal line or the
    signal names another reason)."""
    training, ending, bad = g.training, g.ending, g.bad
    iterations = ending.iterations if ending is not None else training.iterations
    how = ending.how if ending is not None else f"exit code {training.exit_code}"
    v = Verdict(
        Cause.CAFFE_ABORT,
        iteration=iterations,
        evidence=[f"the training process ended after {plural(iterations, 'iteration')}: {how}"],
    )
    abort = g.fatal
    if abort is not None:
        v.evidence.append(f"{training.log}:{abort.line}: {abort.text}")
    elif g.crash is not None:
        v.evidence.append(g.crash)
    if ending is not None and ending.cause:
        v.advice.append(ending.cause)  # the fatal line's reason, not its usual meaning
    elif abort is not None and g.told is not None:
        v.advice += g.told.advice
    if abort is not None and UNKNOWN_POLICY in abort.text:
        v.cause = Cause.LR_POLICY
        v.advice.insert(0, "Caffe has no default lr_policy: the solver must name one")
    for source in empty_sources(g.scan):
        v.advice.insert(
            0,
            f"{source} holds no records (the scan found it empty): Caffe stops on an empty source",
        )
    _read_abort(v, g)
    named = next((f for f in bad if abort is not None and _names(abort.text, f.key)), None)
    if named is not None:
        v.cause = Cause.BAD_INPUT
        v.record = RecordRef(named.source, named.key)
        v.advice.insert(0, f"Caffe stopped on record {named.key} of {named.source}: {named.detail}")
    v.evidence += _scan_evidence(bad)
    if v.record is not None:
        _records_of_source(v, g)
    elif ending is not None and bad and v.cause == Cause.CAFFE_ABORT:
        _blame_abort_batch(v, g)
    return v


def _blame_abort_batch(v: Verdict, g: CheckedGrounds) -> None:
    """Only a record that the batch Caffe stopped in read can be why it stopped, and none is
    when the fatal line or the signal names another reason."""
    bad, cause = g.bad, g.ending.cause
    if not cause and _blame_held(v, g):
        v.records = scanned_records(bad, v.record)  # the fix drops them all: the blamed one first
        return
    which = "which is" if len(bad) == 1 else "which are"
    why = (
        f"{which} not why Caffe stopped"
        if cause
        else f"none in the batch of iteration {v.iteration}, where Caffe stopped"
        if g.unheld is None
        else f"whether the batch Caffe stopped in held one is not known ({g.unheld})"
    )
    v.advice.append(
        f"the scan found {plural(len(bad), 'bad record')} in the data, {why}; drop "
        f"{'it' if len(bad) == 1 else 'them'} all the same (`caffe-nantools scan {bad[0].source} --write-clean CLEAN`)"
    )


def _read_abort(v: Verdict, g: CheckedGrounds) -> None:
    """The layer Caffe stopped in, and what the rule for its fatal line makes of it: a net
    setting (``config``), records (``bad_input``), or nothing known (``caffe_abort``)."""
    if g.stopped_in is None:
        return
    v.layer = g.stopped_in
    reading = g.fatal_reading if v.cause == Cause.CAFFE_ABORT else None
    if reading is None:
        return
    v.cause = reading.cause
    v.advice[:0] = reading.advice
    if reading.blame:
        v.record = RecordRef(reading.blame[0].source, reading.blame[0].key)
    v.records = [
        RecordRef(f.source, f.key, f.index) for f in (reading.blame or reading.listed)[:MAX_SCANNED]
    ]


def fatal_line(run: Optional[Run], ending: Optional[Ending]) -> Optional[Abort]:
    """The log's abort line; Python's own error where it is Boost.Python's SystemError, which
    only says that Python raised."""
    abort = run.abort if run is not None else None
    said = ending.python_error if ending is not None else None
    if abort is not None and said is not None and "Boost.Python" in abort.text:
        return Abort(said[0], said[1], kind="python")
    return abort


def _blame_breach(v: Verdict, g: CheckedGrounds) -> None:
    """Make the verdict the source's breach of a loss or metric layer's contract where the
    breach explains the run: it stayed finite (Caffe reads past the scores without a word), it
    failed in the breached layer, or Caffe stopped on the breach's own CHECK. Its fix
    transforms (a net setting, a relabelled or rescaled copy) rather than dropping what may be
    most of the records."""
    breaches: List[Breach] = g.scan.breaches if g.scan is not None else []
    abort = g.run.abort if g.run is not None else None
    abort_text = abort.text if abort is not None else ""
    breach = next((b for b in breaches if _explains(b, v, g.training, abort_text)), None)
    if breach is None:
        return
    phase, layer = g.reader(breach.source)
    v.cause = Cause.BAD_INPUT
    v.layer = layer or v.layer
    v.phase = v.phase or phase
    v.breach = breach
    bad = [f for f in g.bad if f.source == breach.source]
    if bad:
        held = v.record if v.record and v.record.source == breach.source else None
        v.record = held or RecordRef(bad[0].source, bad[0].key)
        v.records = scanned_records(bad, v.record)
    what = f"{breach.source}: {breach.what}"
    v.evidence.insert(0, f"scan: {what}")
    if g.training.error is None and not g.training.aborted:
        v.advice = [
            f"the training stayed finite for {plural(g.training.iterations, 'iteration')}, but "
            f"the data breaks what {breach.bound.name} requires"
        ]
    v.advice.insert(
        0,
        f"{what} ({plural(breach.records, 'record')}): one fault of the source, not of those "
        f"records; fix: {breach.fix}",
    )


def _explains(breach: Breach, v: Verdict, training: Training, abort_text: str) -> bool:
    blamed = v.record.source if v.record is not None else None
    if v.cause == Cause.BAD_INPUT and blamed == breach.source:
        return True  # the failing batch held records of the breaching source
    if training.aborted and training.error is None:
        return bool(breach.bound.aborts) and breach.bound.aborts in abort_text
    if training.error is None:
        return v.cause == Cause.NONE
    return v.layer == breach.bound.layer  # non-finite in the breached layer


def _unreadable(v: Verdict, findings: list, training: Training) -> None:
    """The scan found damage that is no single record (a LevelDB .log whose records its
    recovery drops): the training stayed finite on what could be read, the rest is bad input."""
    first = findings[0]
    v.cause = Cause.BAD_INPUT
    v.record = RecordRef(first.source, first.key)
    v.records = [RecordRef(f.source, f.key, f.index) for f in findings[:MAX_SCANNED]]
    v.evidence += [f"scan: {f.source} {f.key}: {f.detail}" for f in findings[:3]]
    v.advice.append(
        f"the training stayed finite for {training.iterations} iterations on the records that "
        f"could be read, but the scan found {first.source} damaged: what {first.key} held never "
        "reaches the net; restore it from where it was written, or rebuild the store"
    )


def scanned_records(bad: List[Finding], first: RecordRef) -> List[RecordRef]:
    """The bad records the scan found in ``first``'s source, ``first`` first."""
    same = [f for f in bad if f.source == first.source]
    same.sort(key=lambda f: f.key != first.key)
    return [RecordRef(f.source, f.key, f.index) for f in same[:MAX_SCANNED]]


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


def _scan_evidence(bad: List[Finding]) -> List[str]:
    lines = [f"scan: {f.source} record {f.key}: {f.detail}" for f in bad[:EVIDENCE_RECORDS]]
    if len(bad) > EVIDENCE_RECORDS:
        lines.append(f"scan: {len(bad) - EVIDENCE_RECORDS} more bad records")
    return lines


def _with_log(v: Verdict, told: Optional[Verdict]) -> None:
    """The log's summary and advice where they speak of the same failure."""
    if told is None or told.cause in (Cause.NONE, Cause.CAFFE_ABORT):
        return
    v.origin = told.origin
    v.evidence += told.summary[:4]
    v.advice += [a for a in told.advice if "caffe-nantools inject" not in a and a not in v.advice]


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
