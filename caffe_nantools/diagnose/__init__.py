"""``diagnose``: read a Caffe training log (and the net and solver) and name the cause of the
first non-finite value, with the log lines that show it and what to change.

Besides ``diagnose`` and its ``Diagnosis``, this front gives what watch, hunt and the report
take from the reading: ``Reader`` and its ``Run`` (read as the log is written), the evidence
kinds, a run's sampled columns, a debug_info ``Block`` and ``is_bad``; and the one verdict
engine that diagnose and hunt share: ``judge`` over the evidence (``LogGrounds`` from a log,
``CheckedGrounds`` from hunt's checked training) and its ``Verdict``. The rest of the package
imports them from here, not from the modules below (``tests/test_package_imports.py``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from caffe_nantools import arguments, jsontext
from caffe_nantools.cause import Cause, evidence_and_advice
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK, NanToolsError
from caffe_nantools.diagnose.blame import Blame, find_blame
from caffe_nantools.diagnose.causes import LogGrounds, NetFacts, SolverFacts, judge_log
from caffe_nantools.diagnose.checked import (
    CheckedGrounds,
    bad_records,
    fatal_line,
    judge_checked,
    scanned_records,
)
from caffe_nantools.diagnose.origin import GLOBAL_ORDERS, Blowup, Origin, find_blowup, find_origin
from caffe_nantools.diagnose.reading import (
    SATURATED_SOFTMAX_LOSS,
    Abort,
    Column,
    Evidence,
    Reader,
    Run,
    Valued,
    is_saturated,
    larger,
)
from caffe_nantools.diagnose.series import Curve, Curves, Sampled, Stretch
from caffe_nantools.diagnose.trace import Block, is_bad, net_norms
from caffe_nantools.diagnose.updates import update_ratios
from caffe_nantools.diagnose.verdict import FirstNonfinite, RecordRef, Verdict
from caffe_nantools.diagnose.weights import read_trained
from caffe_nantools.files import check_writable, refuse_overlaps
from caffe_nantools.logs import not_a_log, read_log
from caffe_nantools.prototxt import Document, Net


@dataclass
class Diagnosis:
    """The answer for one log: the verdict on ``run``, the 1-based run it is about (the last run
    that went non-finite, else the last run) of ``runs``."""

    log: str
    verdict: Verdict
    debug_info: bool
    run: int
    runs: int
    origin: Optional[Origin] = None
    blowup: Optional[Blowup] = None
    trace: Optional[Run] = field(default=None, repr=False)

    @property
    def cause(self) -> Cause:
        return self.verdict.cause

    @property
    def first_nonfinite(self) -> Optional[FirstNonfinite]:
        return self.verdict.first

    @property
    def began(self) -> Optional[Blame]:
        """Where the trouble began; ``first_nonfinite`` is where it showed."""
        return self.verdict.origin

    @property
    def evidence(self) -> List[Evidence]:
        return self.verdict.lines

    @property
    def advice(self) -> List[str]:
        return self.verdict.advice

    @property
    def summary(self) -> List[str]:
        return self.verdict.summary

    @property
    def warnings(self) -> List[str]:
        return self.verdict.warnings

    @property
    def suggested(self) -> Dict[str, float]:
        """Numbers the advice gives for solver settings (base_lr, clip_gradients), for a fix."""
        return self.verdict.suggested

    @property
    def first_bad_iteration(self) -> Optional[int]:
        """The iteration of the first non-finite value, where the log tells it."""
        first = self.first_nonfinite
        return first.iteration if first is not None else None

    def to_dict(self) -> dict:
        first = self.first_nonfinite
        return {
            "log": self.log,
            "cause": self.cause,
            "first_nonfinite": first.to_dict() if first is not None else None,
            "origin": self.began.to_dict() if self.began is not None else None,
            "warnings": self.warnings,
            "evidence": [{"line": e.line, "text": e.text} for e in self.evidence],
            "advice": self.advice,
            "summary": self.summary,
            "debug_info": self.debug_info,
            "blowup": self.blowup.to_dict() if self.blowup is not None else None,
            "abort": self.abort,
            "run": self.run,
            "runs": self.runs,
        }

    @property
    def abort(self) -> Optional[dict]:
        """How the run ended early (``line``, ``text``), or None."""
        a = self.trace.abort if self.trace is not None else None
        return None if a is None else {"line": a.line, "text": a.text}

    @property
    def return_code(self) -> int:
        """The command's exit status: 0 when the run stayed finite (warnings allowed), 1 when a
        value went non-finite or the run aborted."""
        return EXIT_OK if self.cause == Cause.NONE else EXIT_FINDINGS

    def __str__(self) -> str:
        return f"{self.log}: cause: {self.cause}"

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict())

    def format(self) -> str:
        lines = [str(self)]
        if self.runs > 1:
            lines.append(f"  (run {self.run} of {self.runs} in this log)")
        lines += [f"  {s}" for s in self.summary]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += evidence_and_advice(
            [f"{e.line}: {e.text.strip()}" for e in self.evidence], self.advice
        )
        return "\n".join(lines) + "\n"


def diagnose(
    log: str,
    net: Union[str, Net, None] = None,
    solver: Union[str, Document, None] = None,
    plot: Optional[str] = None,
    *,
    reader: Optional[Reader] = None,
    keep_trace: bool = False,
) -> Diagnosis:
    """``caffe-nantools diagnose LOG [--net NET] [--solver SOLVER] [--plot PNG]``.

    Without ``net``, the train net ``solver`` names is read where it is found from here (as
    Caffe finds it); the advice names the user's files, or says in words what it cannot name.
    ``net`` and ``solver`` may be given parsed already (a ``Net``, a ``Document``).

    ``reader``: the log, read already (watch reads it as it is written), finished; it is not
    read again. ``keep_trace``: keep a sample of the trace for a report's pictures (as
    ``plot`` does).

    Raises:
        NanToolsError: unreadable files, a log in which no line of a Caffe log was recognised
            (:class:`~caffe_nantools.logs.opening.NotALogError`), a net or solver that does not
            parse, a plot that cannot be written (one line each).
    """
    log = arguments.path("log", log)
    net_model = net if isinstance(net, Net) else None
    solver_doc = solver if isinstance(solver, Document) else None
    net = arguments.path("net", net_model.path if net_model else net, optional=True)
    solver = arguments.path("solver", solver_doc.path if solver_doc else solver, optional=True)
    plot = arguments.path("plot", plot, optional=True)
    keep_trace = arguments.flag("keep_trace", keep_trace)
    if plot is not None:
        inputs = [("log", log), ("net", net), ("solver", solver)]
        refuse_overlaps(
            [(name, path) for name, path in inputs if path is not None], [("plot", plot)]
        )
        check_writable(plot)
    net_facts, solver_facts = _facts(net_model or net, solver_doc or solver)
    if reader is None:
        reader = Reader(plot=plot is not None or keep_trace)
        reader.feed_all(read_log(log, sweep=True, displays=True, wants_values=reader.wants_values))
    if not reader.recognised:
        raise not_a_log(log)
    runs = reader.runs
    chosen = next(
        (i for i in range(len(runs) - 1, -1, -1) if runs[i].went_bad or runs[i].abort),
        len(runs) - 1,
    )
    others = [_other_run(k, other, len(runs)) for k, other in enumerate(runs) if k != chosen]
    grounds = log_grounds(log, runs[chosen], net_facts, solver_facts, others)
    diagnosis = Diagnosis(
        log=log,
        verdict=judge(grounds),
        debug_info=grounds.run.has_debug,
        run=chosen + 1,
        runs=len(runs),
        origin=grounds.origin,
        blowup=grounds.blowup,
        trace=grounds.run,
    )
    if plot is not None:
        _plot(plot, diagnosis)
    return diagnosis


def judge(grounds: Union[LogGrounds, CheckedGrounds]) -> Verdict:
    """The verdict on the evidence, gathered first: a log's run alone (diagnose), or hunt's
    checked training with its log's verdict, the scan, lint and the records its failing batch
    read. The verdict is complete as it is returned; nothing changes it afterwards."""
    if isinstance(grounds, CheckedGrounds):
        return judge_checked(grounds)
    return judge_log(grounds)


def log_grounds(
    log: str,
    run: Run,
    net: Optional[NetFacts] = None,
    solver: Optional[SolverFacts] = None,
    other_runs: Sequence[str] = (),
) -> LogGrounds:
    """What the run says, measured: where its trace went non-finite first, what grew before,
    the updates against the weights and which layer is to blame."""
    suspect = run.suspect
    origin = find_origin(suspect, net.inputs if net else None) if suspect is not None else None
    types = net.types if net else None
    blowup = (
        find_blowup(run.window, run.suspect, origin, run.losses, types) if run.went_bad else None
    )
    updates = update_ratios(
        run.window + ([suspect] if suspect is not None else []), dict(run.rates)
    )
    grew = blowup is not None or updates.first_exploding() is not None
    blame = (
        find_blame(suspect, origin, types, grew_over_iterations=grew)
        if origin is not None
        else None
    )
    return LogGrounds(log, run, origin, blame, blowup, updates, net, solver, tuple(other_runs))


def _facts(
    net: Union[str, Net, None], solver: Union[str, Document, None]
) -> Tuple[Optional[NetFacts], Optional[SolverFacts]]:
    """What the net and the solver say, each read once; without a net, the train net the solver
    names where it is found."""
    net_facts = NetFacts.of(net) if isinstance(net, Net) else NetFacts.read(net) if net else None
    solver_facts = (
        SolverFacts.of(solver)
        if isinstance(solver, Document)
        else SolverFacts.read(solver)
        if solver
        else None
    )
    if net_facts is None and solver_facts is not None:
        net_facts = _named_net(solver_facts)
    return net_facts, solver_facts


def _plot(path: str, diagnosis: Diagnosis) -> None:
    from caffe_nantools.report.picture import plot_run
    from caffe_nantools.report.plots import marks
    from caffe_nantools.report.trace import trace_of

    plot_run(
        path,
        f"{diagnosis.log}: cause {diagnosis.cause}",
        diagnosis.trace,
        trace_of(diagnosis.trace, diagnosis.first_bad_iteration),
        diagnosis.origin,
        marks(diagnosis.began, diagnosis.first_nonfinite),
    )


def _named_net(solver: SolverFacts) -> Optional[NetFacts]:
    """The train net the solver names, where it is found from here (Caffe opens it from the
    folder it runs in) and reads; else None, and the advice names it as the solver writes it."""
    if not solver.net or not os.path.isfile(solver.net):
        return None
    try:
        return NetFacts.read(solver.net)
    except NanToolsError:
        return None


def _other_run(index: int, run: Run, runs: int) -> str:
    """One line for a run of the log that is not the one diagnosed."""
    what = "stayed finite"
    first = run.first_bad
    if run.abort is not None and (first is None or run.abort.line < first.line):
        what = f"aborted at line {run.abort.line}: `{run.abort.text.strip()[:160]}`"
    elif first is not None:
        what = f"went non-finite first at line {first.line}: `{first.text.strip()[:160]}`"
    return f"run {index + 1} of {runs} (from line {run.start}) {what}"


__all__ = [
    "GLOBAL_ORDERS",
    "SATURATED_SOFTMAX_LOSS",
    "Abort",
    "Blame",
    "Block",
    "Blowup",
    "CheckedGrounds",
    "Column",
    "Diagnosis",
    "Evidence",
    "FirstNonfinite",
    "LogGrounds",
    "Origin",
    "Reader",
    "RecordRef",
    "Run",
    "Sampled",
    "Curve",
    "Curves",
    "Stretch",
    "Valued",
    "Verdict",
    "bad_records",
    "diagnose",
    "fatal_line",
    "find_blowup",
    "is_bad",
    "is_saturated",
    "judge",
    "larger",
    "log_grounds",
    "net_norms",
    "read_trained",
    "scanned_records",
]
