"""From what a run left in its log (and the net and solver, when given) to the most likely cause
and what to change."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from caffe_nantools.cause import Cause
from caffe_nantools.diagnose.aborts import explain
from caffe_nantools.diagnose.blame import Blame
from caffe_nantools.diagnose.origin import Blowup, Origin
from caffe_nantools.diagnose.reading import Evidence, Run, Valued, is_saturated
from caffe_nantools.diagnose.trace import is_bad
from caffe_nantools.diagnose.updates import Ratio, Updates, healthy_gradient_norm, safe_base_lr
from caffe_nantools.diagnose.verdict import FirstNonfinite, Verdict
from caffe_nantools.files import read_text
from caffe_nantools.layertypes import layer_type
from caffe_nantools.lint import LintFinding, lint_models
from caffe_nantools.solver_settings import (
    has_inline_net,
    number_of,
    refuse_a_net,
    setting,
    train_net_named,
)
from caffe_nantools.prototxt import Document, Net, NetState, parse


@dataclass
class NetFacts:
    """What the net says: layer types, the data layers, the producer of each blob."""

    path: str
    types: Dict[str, str]
    inputs: List[str]
    producers: Dict[str, str]
    sources: Dict[str, str]  # data layer -> its source path, as written
    findings: List[LintFinding]

    @classmethod
    def read(cls, path: str) -> NetFacts:
        return cls.of(Net.parse(read_text(path), path))

    @classmethod
    def of(cls, net: Net) -> NetFacts:
        layers = net.active_layers(NetState("TRAIN"))
        producers: Dict[str, str] = {}
        for layer in layers:
            for top in layer.tops:
                producers.setdefault(top, layer.name)
        sources = {
            l.name: str(l.source_params.get("source"))
            for l in layers
            if l.source_params is not None and l.source_params.get("source") is not None
        }
        return cls(
            net.path,
            {l.name: l.type for l in layers},
            [l.name for l in layers if l.is_data],
            producers,
            sources,
            lint_models(net=net),
        )


@dataclass
class SolverFacts:
    path: str
    base_lr: Optional[float]
    base_lr_line: Optional[int]
    clip_gradients: Optional[float]
    policy: str
    max_iter: Optional[float]
    power: Optional[float]
    findings: List[LintFinding]
    #: The train net file it names, as written (Caffe opens it from the current folder).
    net: Optional[str] = None
    #: Whether it holds its train net itself (net_param).
    inline: bool = False

    @classmethod
    def read(cls, path: str) -> SolverFacts:
        return cls.of(parse(read_text(path), path))

    @classmethod
    def of(cls, doc: Document) -> SolverFacts:
        refuse_a_net(doc)
        base = setting(doc, "base_lr")
        policy = setting(doc, "lr_policy")
        return cls(
            doc.path,
            number_of(base),
            base.line if base is not None else None,
            number_of(setting(doc, "clip_gradients")),
            str(policy.value) if policy is not None else "fixed",
            number_of(setting(doc, "max_iter")),
            number_of(setting(doc, "power")),
            lint_models(solver=doc),
            train_net_named(doc),
            has_inline_net(doc),
        )

    @property
    def policy_errors(self) -> List[LintFinding]:
        """lint's errors of its lr_policy (a rate that grows without bound, or is nan)."""
        return [f for f in self.findings if f.rule == "lr-policy" and f.severity == "error"]


@dataclass(frozen=True)
class LogGrounds:
    """What a log says of the run diagnosed, read and measured: the evidence diagnose judges.
    ``other_runs``: a line for each other run of the log."""

    log: str
    run: Run
    origin: Optional[Origin] = None
    blame: Optional[Blame] = None
    blowup: Optional[Blowup] = None
    updates: Optional[Updates] = None
    net: Optional[NetFacts] = None
    solver: Optional[SolverFacts] = None
    other_runs: Sequence[str] = ()


def judge_log(grounds: LogGrounds) -> Verdict:
    """The cause of the run's first non-finite value, with evidence and advice; an abort before
    any non-finite value is the cause itself."""
    v = _judge_run(grounds)
    v.summary += grounds.other_runs
    return v


def _judge_run(g: LogGrounds) -> Verdict:
    run, net, solver = g.run, g.net, g.solver
    if run.abort is not None and (
        run.first_bad_line is None or run.first_bad_line > run.abort.line
    ):
        return _judge_log_abort(run, net, solver)
    v = Verdict(Cause.NONE)
    _warn_pinned(v, run)
    if not run.went_bad:
        v.summary.append("no non-finite loss, rate or debug_info value in the log")
        return v
    _judge_nonfinite(v, run, g.origin, g.blame, g.blowup, g.updates, net, solver, g.log)
    _policy_drives(v, run, solver)
    if not run.has_debug:
        lead = "find" if v.cause == Cause.UNKNOWN else "confirm it and find"
        v.advice.append(
            f"{lead} the layer, the iteration and the records in one go: `caffe-nantools hunt "
            f"{solver.path if solver else 'SOLVER'}` (it trains a checked copy)"
        )
    _say_what_stands_for_files(v, solver)
    if run.abort is not None:
        v.summary.append(f"then the run aborted (line {run.abort.line}): {run.abort.text.strip()}")
        v.lines.append(run.abort)
    v.lines = sorted({e.line: e for e in v.lines if e.line}.values(), key=lambda e: e.line)
    return v


def _warn_pinned(v: Verdict, run: Run) -> None:
    """A loss or output at 87.3365 = -log(FLT_MIN): not NaN, but softmax gave the true class 0."""
    pinned = run.pinned or next(
        (o for o in run.bad_iteration_outputs if is_saturated(o.value)), None
    )
    if pinned is None:
        return
    what = "loss" if pinned is run.pinned else f"output {pinned.name!r}"
    v.warnings.append(
        f"the {what} is {pinned.value:g} at {_at(pinned.iteration)} (line {pinned.line}): that is "
        "-log(FLT_MIN), softmax's probability of the true class underflowed to 0; not NaN yet, but "
        "usually exploding scores, or labels out of range (`caffe-nantools scan NET` checks the labels)"
    )
    v.lines.append(pinned)


def _judge_nonfinite(
    v: Verdict,
    run: Run,
    origin: Optional[Origin],
    blame: Optional[Blame],
    blowup: Optional[Blowup],
    updates: Optional[Updates],
    net: Optional[NetFacts],
    solver: Optional[SolverFacts],
    log: str,
) -> None:
    """The cause of the run's first non-finite value, into ``v``."""
    lr, loss = run.first_bad_lr, run.first_bad_loss
    check = next(
        (c for c in run.checks if c.phase == "TRAIN"), run.checks[0] if run.checks else None
    )
    if loss is not None:
        v.summary.append(
            f"loss = {loss.value:g} first at iteration {loss.iteration} (line {loss.line})"
        )
    structured = lr or origin or check or loss or run.first_bad_test
    if lr is not None and (origin is None or lr.line < origin.line):
        _from_lr(v, lr, solver, log)
    elif origin is not None:
        _from_trace(v, run, origin, blame, blowup, net, solver)
    elif check is not None:
        _from_check(v, check, net)
    elif loss is None and run.first_bad_test is not None:
        _from_test(v, run.first_bad_test, net, solver)
    elif loss is None and run.unread is not None:
        _from_unread(v, run, blowup, net, solver)
    else:
        _from_losses(v, run, blowup, net, solver)
    if run.unread is not None and structured:
        v.summary.insert(0, _unread_sentence(run.unread, "an earlier line, "))
        v.lines.append(run.unread)
    if v.cause == Cause.EXPLODING_GRADIENTS:
        _tell_explosion(v, run, blowup, updates, solver)
    if loss is not None:
        v.lines.append(loss)
    if run.first_bad_output is not None:
        v.lines.append(run.first_bad_output)
    if check is not None and v.cause != Cause.LR_POLICY:
        v.lines.append(check)
    if not run.has_debug:
        _tell_no_trace(v, net, solver)


def _from_lr(v: Verdict, lr: Valued, solver: Optional[SolverFacts], log: str) -> None:
    """A learning rate that is non-finite before any value of the net: the policy's fault."""
    v.cause = Cause.LR_POLICY
    v.first = FirstNonfinite(lr.iteration, "lr", None, None, lr.line)
    v.origin = Blame(None, "lr", lr.iteration, "the solver's lr_policy computed a non-finite rate")
    v.summary.append(
        f"the learning rate itself is {lr.value:g} at iteration {lr.iteration}: the solver's "
        "lr_policy computes it, not the net"
    )
    v.lines.append(lr)
    v.advice += _lr_advice(solver, lr, log)


def _tell_no_trace(v: Verdict, net: Optional[NetFacts], solver: Optional[SolverFacts]) -> None:
    """A log without debug_info's trace: what it leaves unknown, and how to get one."""
    v.summary.append(
        "the log has no debug_info trace, so the layer that went non-finite first is not known"
    )
    if net is None and solver is not None and solver.inline:
        # inject takes a solver that holds its net as the net, debug_info set in it too.
        command = f"{solver.path} -o checked_solver.prototxt --display 1"
    else:
        command = f"{_net_arg(net, solver)} --solver {solver.path if solver else 'SOLVER'}"
    v.advice.append(
        f"turn the trace on: `caffe-nantools inject {command}` (debug_info: true), run again "
        "and diagnose the new log"
    )


def _tell_explosion(
    v: Verdict,
    run: Run,
    blowup: Optional[Blowup],
    updates: Optional[Updates],
    solver: Optional[SolverFacts],
) -> None:
    """What an explosion's verdict says of the updates, the rate to try and the clipping."""
    first = updates.first_exploding() if updates is not None else None
    if first is not None:
        _tell_updates(v, first, updates)
    v.advice += _exploding_advice(
        blowup, solver, updates if first is not None else None, run, v.suggested
    )
    if run.first_clipping is not None:
        v.summary.append(
            f"clip_gradients scaled the gradients down {run.clipped} times (first at line "
            f"{run.first_clipping.line}) and they still blew up"
        )


def _unread_sentence(unread: Valued, lead: str = "") -> str:
    return (
        f"{lead}line {unread.line}, holds {unread.name} in a line whose layout diagnose does not read "
        f"(after {_at(unread.iteration)}): `{unread.text.strip()[:200]}`"
    )


def _from_unread(
    v: Verdict,
    run: Run,
    blowup: Optional[Blowup],
    net: Optional[NetFacts],
    solver: Optional[SolverFacts],
) -> None:
    """Only the second pass saw a non-finite value: where it is, and what the rest supports."""
    u = run.unread
    v.first = FirstNonfinite(u.iteration, "unread", None, None, u.line)
    v.summary.append(_unread_sentence(u, "the first non-finite value, at "))
    v.lines.append(u)
    if blowup is not None:
        v.cause = Cause.EXPLODING_GRADIENTS
        _tell_blowup(v, blowup)
    else:
        v.cause = Cause.UNKNOWN
        # The line is after the last displayed iteration: its update came before it.
        after = u.iteration + 1 if u.iteration is not None else None
        _probable(v, run, after, net, solver)
    v.advice.append(
        "give diagnose the log as Caffe wrote it (one glog record a line, not quoted or rewrapped), "
        "or the lines around that one, to name the layer"
    )


def _at(iteration: Optional[int], about: str = "") -> str:
    """'iteration 4', 'about iteration 4', or what an excerpt without its Iteration line gives."""
    return (
        f"{about}iteration {iteration}"
        if iteration is not None
        else "an iteration the log does not name"
    )


def _from_losses(
    v: Verdict,
    run: Run,
    blowup: Optional[Blowup],
    net: Optional[NetFacts],
    solver: Optional[SolverFacts],
) -> None:
    """Without a trace: what the loss lines and the outputs of its iteration still tell."""
    loss = run.first_bad_loss
    iteration = loss.iteration if loss else None
    bad = [o for o in run.bad_iteration_outputs if is_bad(o.value)]
    good = [o for o in run.bad_iteration_outputs if not is_bad(o.value)]
    blob = bad[0].name if len(bad) == 1 and good else None
    v.first = FirstNonfinite(iteration, "loss", None, blob, loss.line if loss else None)
    if blowup is not None:
        v.cause = Cause.EXPLODING_GRADIENTS
        _tell_blowup(v, blowup)
        return
    v.cause = Cause.UNKNOWN
    names = ", ".join(f"{o.name} = {o.value:g}" for o in good[:3])
    if blob is not None:
        layer = net.producers.get(blob) if net else None
        v.summary.append(
            f"only output {blob!r} went non-finite; {names} stayed finite: the branch of the net that "
            f"computes {blob!r}{f' (layer {layer!r})' if layer else ''} is where to look"
        )
        v.origin = Blame(layer, "forward", iteration, f"the only non-finite output is {blob!r}")
    elif bad and good:
        listed = ", ".join(repr(o.name) for o in bad)
        v.summary.append(
            f"outputs {listed} went non-finite; {names} stayed finite: what computes those "
            "outputs and not the others is where to look"
        )
    if bad and good:
        v.advice.append(
            f"check {'that branch' if blob else 'those branches'}: `caffe-nantools inject {_net_arg(net, solver)} --blobs "
            f"{' '.join(o.name for o in bad)} -o checked.prototxt` names the layer and samples"
        )
    elif run.bad_iteration_outputs and not bad:
        v.summary.append(
            f"the total loss is {loss.value:g} while every listed output is finite: a loss the outputs "
            "do not show, or the weighted sum of the losses overflowed"
        )
    if iteration == 0:
        v.summary.append(
            "it was non-finite at iteration 0, before any update: not the learning rate and not an "
            "explosion, but the input or a layer's numerics"
        )
        v.origin = v.origin or Blame(
            None, "forward", 0, "non-finite before any update: the input or a layer"
        )
        v.advice.append(f"look for bad records: `caffe-nantools scan {_net_arg(net, solver)}`")
    _probable(v, run, iteration, net, solver)


#: A loss that rose this many times over its least displayed value before it went non-finite.
ROSE = 10.0
#: Causes a rate that grows without bound explains better: the values blew up over the
#: updates, or the log does not say where they went bad.
_GROWTH = (Cause.EXPLODING_GRADIENTS, Cause.UNKNOWN)


def _probable(
    v: Verdict,
    run: Run,
    iteration: Optional[int],
    net: Optional[NetFacts],
    solver: Optional[SolverFacts],
) -> None:
    """Without a trace, the likely cause from the solver and the log instead of ``unknown`` (the
    advice gives the hunt that confirms it): a rate lint finds too high, or a loss that rose
    before the NaN, is an explosion; a net setting lint flags is that layer's numerics; else,
    before any update or at a sound rate with a steady loss, a bad record of the data."""
    if solver is None or run.has_debug or v.cause != Cause.UNKNOWN:
        return
    if iteration != 0 and solver.policy_errors:
        return  # the policy is the cause (_policy_drives)
    high = [f for f in solver.findings if f.rule == "base-lr"]
    flagged = [f for f in (net.findings if net else []) if f.layers and f.severity != "info"]
    finite = [loss for loss in run.losses if not is_bad(loss.value)]
    least = min(finite, key=lambda loss: loss.value, default=None)
    rose = least is not None and least.value > 0 and finite[-1].value > ROSE * least.value
    if iteration != 0 and (high or rose):
        v.cause = Cause.EXPLODING_GRADIENTS
        why = (
            f"{high[0].message} ({high[0].file}:{high[0].line})"
            if high
            else f"the loss rose from {least.value:g} ({_at(least.iteration)}) to "
            f"{finite[-1].value:g} ({_at(finite[-1].iteration)}) before it"
        )
    elif flagged:
        v.cause = Cause.LAYER_NUMERICS
        why = f"lint flags the net: {flagged[0].message} ({flagged[0].file}:{flagged[0].line})"
        v.advice += [_finding_text(f) for f in flagged]
    else:
        v.cause = Cause.BAD_INPUT
        linted = "lint finds nothing in the net" if net else "the net was not read"
        why = (
            f"non-finite before any update, and {linted}: a record of the data"
            if iteration == 0
            else f"the rate is sound and the loss did not grow, and {linted}: a sudden NaN is most "
            "often a record of the data"
        )
        scan = f"look for bad records: `caffe-nantools scan {_net_arg(net, solver)}`"
        if scan not in v.advice:
            v.advice.append(scan)
    v.summary.append(f"probable cause (no debug_info trace to confirm it): {why}")


def _policy_drives(v: Verdict, run: Run, solver: Optional[SolverFacts]) -> None:
    """An explosion (or a cause the log cannot tell) after updates, under a policy that grows
    the rate without bound: the policy is the cause, and fixing it the advice (a lower base_lr
    or clipping would only delay that NaN)."""
    policy = solver.policy_errors if solver is not None else []
    first = v.first
    if not policy or v.cause not in _GROWTH or (first is not None and first.iteration == 0):
        return
    f = policy[0]
    v.cause = Cause.LR_POLICY
    v.summary.insert(
        0,
        f"the solver's lr_policy drives it ({f.file}:{f.line}): {f.message}{_rates(run, first)}; a "
        "lower base_lr or clip_gradients would only delay the NaN",
    )
    v.origin = Blame(None, "lr", None, f"{f.message} ({f.file}:{f.line})")
    v.advice = [_finding_text(f) for f in policy]
    v.suggested = {}


def _rates(run: Run, first: Optional[FirstNonfinite]) -> str:
    """How the log's learning rate grew up to the first non-finite value, where it shows."""
    end = first.iteration if first is not None else None
    rates = [(i, r) for i, r in run.lr_series.items if i is not None and (end is None or i <= end)]
    if len(rates) < 2 or rates[-1][1] <= rates[0][1]:
        return ""
    (a, x), (b, y) = rates[0], rates[-1]
    return f"; the log's lr grew from {x:g} (iteration {a}) to {y:g} (iteration {b})"


def _net_arg(net: Optional[NetFacts], solver: Optional[SolverFacts]) -> str:
    """The net as the advice's command lines give it: the user's file (given, or the one the
    solver names), else NET, which :func:`_say_what_stands_for_files` says in words."""
    if net is not None:
        return net.path
    if solver is not None and solver.net:
        return solver.net
    return "NET"


def _say_what_stands_for_files(v: Verdict, solver: Optional[SolverFacts]) -> None:
    """NET or SOLVER in the advice's command lines stands for a file the log does not name:
    said in words, never an invented file name."""
    text = " ".join(v.advice)
    net, solver_named = re.search(r"\bNET\b", text), re.search(r"\bSOLVER\b", text)
    if net and solver is not None and solver.inline:
        v.advice.append(
            f"NET above: the train net is inline in {solver.path} (net_param); those commands "
            "take it from a file of its own"
        )
    elif net or solver_named:
        names = " and ".join(n for n, used in (("NET", net), ("SOLVER", solver_named)) if used)
        what = " and ".join(
            w for w, used in (("your train net", net), ("your solver", solver_named)) if used
        )
        v.advice.append(f"{names} above: {what}, which the log does not name")


def _from_test(
    v: Verdict, test: Valued, net: Optional[NetFacts], solver: Optional[SolverFacts]
) -> None:
    """Only the TEST net went non-finite, training stayed finite: its own data or its own layers."""
    v.cause = Cause.UNKNOWN
    v.first = FirstNonfinite(test.iteration, "test", None, test.name or None, test.line)
    v.summary.append(
        f"the TEST net's output {test.name!r} is {test.value:g} in the test pass at {_at(test.iteration)}, "
        "while every train value stayed finite: the test data, or a layer only in the TEST phase"
    )
    v.origin = Blame(None, "test", test.iteration, "only the TEST net went non-finite")
    v.lines.append(test)
    v.advice.append(
        f"look for bad records in the test data: `caffe-nantools scan {_net_arg(net, solver)} --phase TEST`"
    )
    v.advice.append(
        "compare the layers that only the TEST phase has (include { phase: TEST }), e.g. an Accuracy "
        "with a label it cannot read"
    )


def _tell_updates(v: Verdict, first: Ratio, updates: Updates) -> None:
    """Where the explosion started: the first layer whose updates were as large as its weights."""
    shown = " -> ".join(
        f"{r.value:.2g} ({_at(r.iteration)})" for r in updates.series(first.layer)[-5:]
    )
    v.summary.append(
        f"the update/weight ratio (lr x mean |diff| / mean |weight|) of layer {first.layer!r} passed 1 "
        f"first, at {_at(first.iteration)}: {shown}; healthy training keeps it near 1e-3"
    )
    v.origin = Blame(
        first.layer,
        "update",
        first.iteration,
        "its update/weight ratio passed 1 first: each step was as large as its weights",
    )
    v.lines.append(Evidence(first.line, first.text))


def _judge_log_abort(run: Run, net: Optional[NetFacts], solver: Optional[SolverFacts]) -> Verdict:
    """A run that aborted with every value seen finite: the failing check, what it usually
    means, and what to run next."""
    abort = run.abort
    v = Verdict(Cause.CAFFE_ABORT, lines=[abort])
    v.summary, v.advice = explain(abort, _net_arg(net, solver))
    _say_what_stands_for_files(v, solver)
    if run.abort_after is not None:
        v.summary.append(
            f"every value before it was finite (last displayed iteration {run.abort_after})"
        )
    else:
        v.summary.append("it happened before the first displayed iteration")
    first = run.first_bad
    if first is not None:
        v.first = FirstNonfinite(first.iteration, _pass_of(run, first), None, None, first.line)
        v.summary.append(
            f"after it, line {first.line} holds a non-finite value ({_at(first.iteration)}): "
            f"`{first.text.strip()[:200]}`; the log holds more than the run that aborted "
            "(pieces of several runs?)"
        )
        v.lines.append(Evidence(first.line, first.text))
    return v


def _pass_of(run: Run, first: Valued) -> str:
    """The ``pass`` of FirstNonfinite for ``run.first_bad`` when no trace origin is worked out."""
    kinds = (
        (run.first_bad_loss, "loss"),
        (run.first_bad_lr, "lr"),
        (run.first_bad_test, "test"),
        (run.unread, "unread"),
    )
    for value, kind in kinds:
        if value is first:
            return kind
    record = (
        next((r for r in run.suspect.records if r.line == first.line), None)
        if run.suspect
        else None
    )
    return record.pass_ if record is not None else "trace"


def _from_trace(
    v: Verdict,
    run: Run,
    origin: Origin,
    blame: Optional[Blame],
    blowup: Optional[Blowup],
    net: Optional[NetFacts],
    solver: Optional[SolverFacts],
) -> None:
    iteration = origin.iteration
    about = ""
    if iteration is None and run.iterations:
        iteration, about = run.iterations[-1] + (run.gap or 1), "about "
    v.first = FirstNonfinite(iteration, origin.pass_, origin.layer, origin.blob, origin.line)
    loss = run.first_bad_loss
    if loss is not None and loss.line < origin.line:
        # The display lines and the trace disagree on where an iteration starts (a fork that
        # prints the loss before the trace): the first in the file's order is the first.
        v.first = FirstNonfinite(loss.iteration, "loss", None, None, loss.line)
    v.lines.append(Evidence(origin.line, origin.text))
    v.summary.append(_origin_said(origin, run, net, _at(iteration, about)))
    v.origin = blame
    moved = (
        blame is not None
        and blame.layer != origin.layer
        and origin.pass_ == "forward"
        and not origin.input
    )
    if moved:
        v.summary.append(f"the trouble began at layer {blame.layer!r}: {blame.why}")
    if blowup is not None:
        _tell_blowup(v, blowup)
    _trace_cause(v, run, origin, blame if moved else None, blowup, net, solver)
    if net is not None:
        named = [layer for layer in (blame.layer if moved else None, origin.layer) if layer]
        v.advice += [
            _finding_text(f) for f in net.findings if any(layer in f.layers for layer in named)
        ]


def _origin_said(origin: Origin, run: Run, net: Optional[NetFacts], at: str) -> str:
    """What the trace shows at the first non-finite value: an update that made a weight so, a
    data layer that delivered it, or a layer's forward or backward pass that made it (from
    finite inputs when the trace shows them)."""
    where = f"layer {origin.layer!r}" if origin.layer else "the all-params norms"
    value = f"mean |x| = {origin.value:g}"
    # A value at 1e37 or more counts as bad (one more step overflows float32): not called NaN.
    bad = "non-finite" if not math.isfinite(origin.value) else "huge, near float32's overflow"
    seen = run.suspect is not None and any(
        r.pass_ == origin.pass_ and r.line < origin.line for r in run.suspect.records
    )
    if origin.pass_ == "update":
        return (
            f"{where}'s {origin.blob} is {bad} ({value}) at the start of {at}: the update before "
            "made it so"
        )
    if origin.input:
        source = net.sources.get(origin.layer) if net else None
        return (
            f"data layer {origin.layer!r} delivered {origin.blob} {bad} ({value}) in {at}: a record "
            f"of {repr(source) if source else 'its source'} holds NaN or inf"
        )
    if origin.pass_ == "forward":
        inputs = "from finite inputs" if seen else "its inputs are not in the log"
        return f"{where} made {origin.blob} {bad} ({value}) in the forward pass of {at}, {inputs}"
    inputs = "from finite top diffs" if seen else "its top diffs are not in the log"
    return f"{where} made {origin.blob} diff {bad} ({value}) in the backward pass of {at}, {inputs}"


def _trace_cause(
    v: Verdict,
    run: Run,
    origin: Origin,
    moved: Optional[Blame],
    blowup: Optional[Blowup],
    net: Optional[NetFacts],
    solver: Optional[SolverFacts],
) -> None:
    """The cause the trace points to, and its advice (``moved``: the layer where the trouble
    began, before the layer that first showed a non-finite value)."""
    if origin.input:
        v.cause = Cause.BAD_INPUT
        v.advice += _bad_input_advice(origin.layer, net, solver)
    elif moved is not None:
        v.cause = Cause.LAYER_NUMERICS
        v.advice.append(_layer_advice(moved.layer, net, zero_statistics=moved.no_statistics))
    elif blowup is not None or (origin.pass_ == "update" and run.gap in (None, 1)):
        v.cause = Cause.EXPLODING_GRADIENTS
    elif origin.pass_ == "update":
        v.cause = Cause.UNKNOWN
        v.summary.append(f"display is {run.gap}: the iterations in between are not in the trace")
        v.advice.append(
            "set display: 1 in the solver so every iteration is traced, and run again from a "
            "snapshot before the failure"
        )
    else:
        v.cause = Cause.LAYER_NUMERICS
        v.advice.append(_layer_advice(origin.layer, net))
        v.advice.append(
            f"to see which samples: `caffe-nantools inject {_net_arg(net, solver)} --blobs "
            f"{origin.blob.split(' ', 1)[-1] if origin.blob else 'BLOB'} -o checked.prototxt` and train "
            "that net"
        )


def _from_check(v: Verdict, check, net: Optional[NetFacts]) -> None:
    layer = net.producers.get(check.blob) if net else None
    v.first = FirstNonfinite(None, check.pass_, layer, check.blob, check.line)
    v.summary.append(
        f"CheckFiniteLayer {check.check!r} found blob {check.blob!r} non-finite in the {check.pass_} "
        f"pass ({check.phase})"
    )
    if net is not None and layer in net.inputs and check.pass_ == "forward":
        v.cause = Cause.BAD_INPUT
        v.advice += _bad_input_advice(layer, net, None)
    elif layer is not None:
        v.cause = Cause.LAYER_NUMERICS
        v.advice.append(_layer_advice(layer, net))
    else:
        v.cause = Cause.UNKNOWN


def _bad_input_advice(
    layer: Optional[str], net: Optional[NetFacts], solver: Optional[SolverFacts]
) -> List[str]:
    source = net.sources.get(layer) if net else None
    return [
        f"name the bad records of data layer {layer!r}: `caffe-nantools scan {_net_arg(net, solver)}`",
        f"then drop them: `caffe-nantools scan {source or 'SOURCE'} --write-clean CLEAN` writes a copy without them",
    ]


def _layer_advice(
    layer: Optional[str], net: Optional[NetFacts], zero_statistics: bool = False
) -> str:
    """What to change in a layer that made non-finite values from finite inputs."""
    if zero_statistics:
        return (
            f"BatchNorm {layer!r} has no statistics: load them (the .caffemodel must hold mean, variance and the "
            "factor under the same layer names) or train it with use_global_stats: false"
        )
    kind = net.types.get(layer) if net else None
    advice = layer_type(kind).advice if kind else ""
    if advice:
        return advice.format(name=layer)
    return (
        f"layer {layer!r}{f' ({kind})' if kind else ''} turns finite inputs into non-finite values: look for "
        "log, sqrt or division at 0 in it"
    )


def _finding_text(f: LintFinding) -> str:
    return f"{f.file}:{f.line}: {f.message}; {f.fix}"


def _tell_blowup(v: Verdict, b: Blowup) -> None:
    where = f" of layer {b.layer!r}" if b.layer else ""
    v.summary.append(
        f"before it, the {b.what}{where} grew from {b.start.value:g} ({_at(b.start.iteration)}) to "
        f"{b.end.value:g} ({_at(b.end.iteration)}), {b.orders:.1f} orders of magnitude; it grew first"
    )
    v.lines += [Evidence(b.start.line, b.start.text), Evidence(b.end.line, b.end.text)]


def _exploding_advice(
    blowup: Optional[Blowup],
    solver: Optional[SolverFacts],
    updates: Optional[Updates],
    run: Run,
    suggested: Dict[str, float],
) -> List[str]:
    """Lower the rate and bound the steps: by numbers the trace gives when it has the params'
    updates and the gradient norms (kept in ``suggested``), else by rule of thumb."""
    advice = []
    solver_lr = solver.base_lr if solver is not None else None
    where = f" ({solver.path}:{solver.base_lr_line})" if solver_lr is not None else ""
    largest = updates.largest_at_onset() if updates is not None else None
    base = (
        solver_lr
        if solver_lr is not None
        else (dict(run.rates).get(largest.iteration) if largest else None)
    )
    if largest is not None and base is not None:
        suggested["base_lr"] = safe_base_lr(base, largest)
        advice.append(
            f"lower base_lr to {suggested['base_lr']:g} (from {base:g}){where}: that keeps the "
            f"update/weight ratios up to where they passed 1 (the largest, {largest.value:.2g}, layer "
            f"{largest.layer!r} at {_at(largest.iteration)}) under 1e-2"
        )
    elif solver_lr is not None:
        advice.append(f"lower base_lr by 10x: {solver_lr:g} -> {solver_lr / 10:g}{where}")
    else:
        advice.append("lower base_lr by 10x")
    if solver is None or solver.clip_gradients is None:
        norm = healthy_gradient_norm((b.iteration, n.l2_diff) for b in run.window for n in b.norms)
        if norm is not None:
            suggested["clip_gradients"] = float(f"{2 * norm:.1g}")
            advice.append(
                f"set clip_gradients: {suggested['clip_gradients']:g} in the solver (twice the L2 norm of "
                f"the gradients before the growth, {norm:g}) to bound each update"
            )
        else:
            advice.append("set clip_gradients (e.g. 10) in the solver to bound each update")
    first = updates.first_exploding() if updates is not None else None
    if first is not None:
        advice.append(
            f"look at layer {first.layer!r}, whose updates outgrew its weights first: its lr_mult, its "
            "weight_filler; a BatchNorm before it keeps its input in scale"
        )
    elif blowup is not None and blowup.layer:
        advice.append(
            f"look at layer {blowup.layer!r}, where the growth started: its loss_weight, its "
            "weight_filler; a BatchNorm before it keeps its input in scale"
        )
    return advice


def _lr_advice(solver: Optional[SolverFacts], lr, log: str) -> List[str]:
    if solver is None:
        return [
            "check lr_policy and its parameters (poly needs max_iter, step needs stepsize, inv and sigmoid "
            f"need gamma): `caffe-nantools diagnose {log} --solver SOLVER` or `caffe-nantools lint SOLVER` says which"
        ]
    found = solver.policy_errors
    if (
        solver.policy == "poly"
        and solver.max_iter
        and lr.iteration is not None
        and lr.iteration > solver.max_iter
        and solver.power is not None
        and solver.power != int(solver.power)
    ):
        return [
            f"lr_policy poly at iteration {lr.iteration}, past max_iter {solver.max_iter:g}: (1 - iter/max_iter) is "
            f"negative and its power {solver.power:g} is fractional, so the rate is nan; stop at max_iter or raise "
            f"it ({solver.path})"
        ] + [_finding_text(f) for f in found]
    if not found:
        return [
            f"the rate is non-finite but {solver.path} looks sound: is it the solver this run used?"
        ]
    return [_finding_text(f) for f in found]
