"""What a report page shows, taken from a report the library made (a hunt's, a diagnosis, a
watch's): nothing is run again and no file read again here (the curves are the ones the
diagnosis kept as it read the log)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Tuple

from caffe_nantools.cause import Cause
from caffe_nantools.diagnose import Curve, Curves, Diagnosis
from caffe_nantools.hunt import HuntReport
from caffe_nantools.watch import WatchResult

if TYPE_CHECKING:
    from caffe_nantools.replay import ReplayReport

#: The scan's bad records listed (all are counted).
RECORDS_SHOWN = 100

#: Each cause in a user's words.
CAUSE_WORDS = {
    Cause.BAD_INPUT: "bad input: the data held a value the net cannot train on",
    Cause.EXPLODING_GRADIENTS: "exploding gradients: values grew by orders of magnitude over the updates",
    Cause.LR_POLICY: "the learning-rate policy: the solver's rate itself went non-finite",
    Cause.LAYER_NUMERICS: "a layer's numerics: a layer made a non-finite value from finite inputs",
    Cause.CONFIG: "a net setting that computes it (such as an empty pooling window)",
    Cause.CAFFE_ABORT: "Caffe stopped (a failed CHECK or a crash) before anything went non-finite",
    Cause.UNKNOWN: "a value went non-finite, and the log does not say where",
    Cause.NONE: "nothing went non-finite",
}


def cause_words(cause: Cause) -> str:
    """``cause`` in a user's words."""
    return CAUSE_WORDS.get(cause, str(cause))


DIFF_WORDS = (
    "The fix's change to your files (only its edit: hunt's copies carry its checks besides); "
    "apply it with patch -p0 in the folder hunt ran in:"
)
RUN_WORDS = "To train hunt's fixed copy as it verified it (with its checks):"


def run_command(fix: dict) -> str:
    """The command that trains the fix's solver (hunt's copy)."""
    return f"caffe train -solver {fix['files']['solver']}"


@dataclass
class Page:
    """One report: the verdict on top, then what shows it.

    ``facts`` are the verdict's (label, text) rows; ``evidence`` (line number or None, text);
    ``records`` the scan's bad records shown (source, key, detail) of ``record_count``.
    """

    command: str
    subject: str
    cause: str
    facts: List[Tuple[str, str]] = field(default_factory=list)
    summary: List[str] = field(default_factory=list)
    advice: List[str] = field(default_factory=list)
    evidence: List[Tuple[Optional[int], str]] = field(default_factory=list)
    diagnosis: Optional[Diagnosis] = None
    replay: Optional[ReplayReport] = None
    records: List[Tuple[str, str, str]] = field(default_factory=list)
    record_count: int = 0
    risks: List[str] = field(default_factory=list)
    fix: Optional[dict] = None
    notes: List[str] = field(default_factory=list)
    #: The run's curves, as the diagnosis read them (None: it kept none).
    curves: Optional[Curves] = None

    @property
    def outputs(self) -> List[Curve]:
        return self.curves.outputs if self.curves is not None else []

    @property
    def headline(self) -> str:
        return cause_words(self.cause)


def page_of(report) -> Page:
    """The page of a HuntReport, a Diagnosis or a WatchResult."""
    if isinstance(report, HuntReport):
        page, d = _hunt_page(report), report.diagnosis
    elif isinstance(report, Diagnosis):
        page, d = _diagnosis_page(report, "diagnose", report.log), report
    elif isinstance(report, WatchResult):
        page, d = _watch_page(report), report.diagnosis
    else:
        raise TypeError(f"no report page for a {type(report).__name__}")
    if d is not None and d.trace is not None:
        page.curves = d.trace.curves
        if page.curves is None:
            page.notes.append(
                "the curves of the outputs were not kept: diagnose with keep_trace=True "
                "(the command line does with --report)"
            )
    return page


def _diagnosis_page(d: Diagnosis, command: str, subject: str) -> Page:
    first = d.first_nonfinite
    facts = []
    if first is not None:
        where = [
            f"{name} {value}"
            for name, value in (
                ("layer", first.layer),
                ("blob", first.blob),
                ("pass", first.pass_),
                ("iteration", first.iteration),
                ("log line", first.line),
            )
            if value is not None
        ]
        facts.append(("first non-finite", ", ".join(where)))
    if d.began is not None and d.began.layer:
        b = d.began
        facts.append(("began", f"layer {b.layer}, {b.pass_} of iteration {b.iteration}: {b.why}"))
    if d.abort is not None:
        facts.append(("abort", f"line {d.abort['line']}: {d.abort['text'].strip()}"))
    if d.runs > 1:
        facts.append(("run", f"{d.run} of {d.runs} in this log"))
    return Page(
        command,
        subject,
        d.cause,
        facts,
        summary=list(d.summary) + [f"warning: {w}" for w in d.warnings],
        advice=list(d.advice),
        evidence=[(e.line, e.text.strip()) for e in d.evidence],
        diagnosis=d,
    )


def _hunt_page(report) -> Page:
    v = report.verdict
    facts = [("where", v.where())] if v.where() else []
    if v.origin is not None and v.origin.layer and v.origin.layer != v.layer:
        o = v.origin
        facts.append(("began", f"layer {o.layer}, {o.pass_} of iteration {o.iteration}: {o.why}"))
    if v.record is not None:
        more = len([r for r in v.records if r.key != v.record.key])
        facts.append(
            (
                "record",
                f"{v.record.key} of {v.record.source}" + (f" (and {more} more)" if more else ""),
            )
        )
    fix = report.fix.to_dict() if report.fix is not None else None
    if fix is not None:
        facts.append(("fix", fix["change"]))
        facts.append(("verified", fix["state"]))
    else:
        facts.append(("fix", "none tried for this cause"))
    if report.reproducible is not None:
        facts.append(("reproducible", report.reproducible.verdict))
    d = getattr(report, "diagnosis", None)
    page = Page(
        "hunt",
        report.workdir,
        v.cause,
        facts,
        advice=list(report.advice),
        evidence=[(None, e) for e in v.evidence],
        diagnosis=d,
        replay=getattr(report, "replayed", None),
        risks=[str(f) for f in report.lint],
        fix=fix,
        notes=list(report.notes)
        + (report.reproducible.differences if report.reproducible is not None else []),
    )
    if d is not None:
        page.evidence += [(e.line, e.text.strip()) for e in d.evidence]
        page.summary = list(d.summary)
    if report.scan is not None:
        findings = report.scan.findings
        page.records = [(f.source, f.key, f.detail) for f in findings[:RECORDS_SHOWN]]
        page.record_count = len(findings)
    elif report.scan_error:
        page.notes.append(f"scan: {report.scan_error}")
    if report.training is not None:
        t = report.training
        page.notes.append(f"trained {t.iterations} iterations in {t.seconds:.1f} s; log {t.log}")
    return page


def _watch_page(result) -> Page:
    d = result.diagnosis
    if d is not None:
        page = _diagnosis_page(d, "watch", result.log)
    else:
        page = Page("watch", result.log, Cause.NONE)
    page.facts.insert(0, ("command", result.summary()))
    for line in result.snapshot_lines():
        what, _, told = line.partition(": ")
        page.facts.append((what, told))
    hunted = result.hunted
    if hunted is not None and hunted.report is not None:
        h = hunted.report
        page.facts.append(("hunt from", hunted.state))
        page.facts.append(("hunt's verdict", cause_words(h.verdict.cause)))
        if h.fix is not None:
            page.facts.append(("hunt's fix", f"{h.fix.change} ({h.fix.state})"))
        page.facts.append(
            ("resume", shlex.join(hunted.resume) if hunted.resume else f"none: {hunted.no_resume}")
        )
        page.advice += list(h.advice)
    elif hunted is not None and hunted.no_hunt:
        page.facts.append(("hunt", f"none: {hunted.no_hunt}"))
    if result.resumed is not None:
        page.facts.append(("resumed", result.resumed.summary()))
    page.summary += [f"warning: {w}" for w in result.warnings]
    return page
