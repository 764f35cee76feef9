"""``caffe-nantools hunt SOLVER``: from "loss = nan" to the cause, the place and a fix shown to
work, in one command.

Stages, each a library call with its own result: read the solver, its train and test nets; lint
them (risks, not the verdict); scan the data layers' sources; make checked copies in the
workdir (a check after every blob and in-place modifier, debug_info every iteration); train the
copies for a bounded number of iterations in a child process under the guard; keep a replay
bundle of the failing iteration; gather the evidence (:mod:`~caffe_nantools.hunt.gathering`)
and judge the first failure with the trace, the scan and lint (diagnose's ``judge``, the one
verdict engine); try the fix the cause calls for on the copies and train again. The verdict is
final when judged: the fix is the verification stage's result, kept beside it in the report
rather than written into it. The user's files are never changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from caffe_nantools import arguments, jsontext
from caffe_nantools.cause import Cause, evidence_and_advice, plural
from caffe_nantools.diagnose import Verdict, judge
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK, NanToolsError
from caffe_nantools.files import writing
from caffe_nantools.hunt.fixes import Fix, find_fix
from caffe_nantools.hunt.gathering import gather
from caffe_nantools.hunt.inputs import HuntError, Inputs, make_copies, read_inputs
from caffe_nantools.hunt.reproducibility import Reproducibility, reproducibility
from caffe_nantools.hunt.space import check_room
from caffe_nantools.hunt.stages import ERROR, FAILED, FOUND, OK, SKIPPED, Stages
from caffe_nantools.hunt.training import Training, train
from caffe_nantools.hunt.workdir import check_workdir, claim_workdir
from caffe_nantools.lint import LintReport, lint_models

__all__ = ["HuntError", "HuntReport", "hunt"]


@dataclass
class HuntReport:
    """The verdict first, then the fix tried for it and what each stage found. The verdict is
    as the judge gave it; the fix is the verification stage's, beside it (the JSON gives it in
    the verdict's ``fix``, and its advice after the verdict's)."""

    verdict: Verdict
    workdir: str
    fix: Optional[Fix] = None
    lint: LintReport = field(default_factory=LintReport)
    scan: Optional[object] = None  # ScanReport, or None with --no-scan
    scan_error: Optional[str] = None
    training: Optional[Training] = None
    notes: List[str] = field(default_factory=list)
    #: The checked training's log read by diagnose (its trace kept), for a report's pictures.
    diagnosis: Optional[object] = field(default=None, repr=False)
    #: The failing iteration replayed (a ReplayReport), where the caller ran the bundle.
    replayed: Optional[object] = field(default=None, repr=False)
    #: Every stage in the order it ran, with how it ended.
    stages: Stages = field(default_factory=Stages)
    #: Whether the failure comes back from the state it failed in (None: not judged).
    reproducible: Optional[Reproducibility] = None

    @property
    def return_code(self) -> int:
        return EXIT_OK if self.verdict.cause == Cause.NONE else EXIT_FINDINGS

    @property
    def advice(self) -> List[str]:
        """The verdict's advice, then what trying the fix found."""
        return self.verdict.advice + (self.fix.advice if self.fix is not None else [])

    def to_dict(self) -> dict:
        verdict = {**self.verdict.to_dict(), "advice": self.advice}
        breach = verdict.pop("breach")  # the README's order: the fix, then the breach
        verdict["fix"] = self.fix.to_dict() if self.fix is not None else None
        verdict["breach"] = breach
        return {
            "verdict": verdict,
            "stages": [stage.to_dict() for stage in self.stages],
            "workdir": self.workdir,
            "notes": self.notes,
            "reproducible": self.reproducible.to_dict() if self.reproducible else None,
        }

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict()) + "\n"

    def format(self) -> str:
        v = self.verdict
        lines = [f"cause: {v.cause}"]
        if v.where():
            lines.append("  where: " + v.where())
        if v.origin and v.origin.layer and v.origin.layer != v.layer:
            lines.append(
                f"  began: layer {v.origin.layer}, {v.origin.pass_} of iteration {v.origin.iteration}: "
                f"{v.origin.why}"
            )
        if v.record is not None:
            more = [r.key for r in v.records if r.key != v.record.key]
            lines.append(
                f"  record: {v.record.key} of {v.record.source}"
                + (f" (and {len(more)} more: {_listed(more)})" if more else "")
            )
        fix = self.fix
        if fix is not None:
            lines.append(f"  fix: {fix.change} ({fix.state}; {fix.files.get('solver', '')})")
            if fix.resume:
                lines.append(
                    f"  resume: {fix.resume} (from this folder: your training from the "
                    "snapshot with the fix; your own files are untouched)"
                )
        if self.reproducible is not None:
            lines.append(self.reproducible.format())
        lines += evidence_and_advice(v.evidence, self.advice)
        lines.append("stages:")
        for stage in self.stages:
            lines.append(f"  {stage.format()}")
            if stage.name == "lint":
                lines += [f"    {f}" for f in self.lint]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"workdir: {self.workdir}")
        return "\n".join(lines) + "\n"


def _listed(keys: List[str], shown: int = 5) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


def hunt(
    solver: str,
    *,
    iters: Optional[int] = None,
    workdir: Optional[str] = None,
    gpu: Optional[int] = None,
    scan: bool = True,
    verify: bool = True,
    progress: bool = False,
    snapshot: Optional[str] = None,
) -> HuntReport:
    """Find out why ``solver``'s training goes non-finite.

    Args:
        iters: iterations to train (default: the solver's max_iter, at most 1000; 100 without one).
        workdir: where hunt's copies, logs, replay bundle and fixes go (a new or empty folder,
            claimed for this hunt alone; default ``nantools-hunt-YYYYmmdd-HHMMSS-XXXXXXXX`` in
            the current folder).
        gpu: train on this GPU (set_mode_gpu, set_device); CPU by default.
        scan: scan the sources of the TRAIN data layers and of the test nets first.
        verify: try the fix on the copies and train again.
        progress: a line per stage on stderr.
        snapshot: a ``.solverstate`` to start from, as ``caffe train -snapshot`` does (the
            weights, the history, the iteration and so the rate); the TRAIN data layers are
            advanced to the batches the run read there (where they read their source in order),
            and ``iters`` counts from the snapshot's iteration.

    Raises:
        NanToolsError: a solver or net that cannot be read, no pycaffe, a workdir that is not
            empty, read-only or in use by another hunt, a disk with no room for the training.
    """
    from caffe_nantools.pycaffe import load_caffe

    solver = arguments.path("solver", solver)
    iters = arguments.whole("iters", iters, optional=True)
    workdir = arguments.path("workdir", workdir, optional=True)
    gpu = arguments.whole("gpu", gpu, 0, optional=True)
    scan, verify = arguments.flag("scan", scan), arguments.flag("verify", verify)
    progress = arguments.flag("progress", progress)
    snapshot = arguments.path("snapshot", snapshot, optional=True)
    check_workdir(workdir)
    stages = Stages(progress)
    inputs = stages.run("read", lambda: _read(solver, snapshot), _read_stage)
    load_caffe()  # a clear error now, not in the child
    workdir = claim_workdir(workdir)
    inputs.write_inline(workdir)  # for lint, scan and the copies
    notes = inputs.notes(gpu)
    if inputs.resume is not None:
        notes.insert(0, inputs.resume.words())
    lint, scanned, scan_error = _lint_and_scan(stages, inputs, scan)
    iters = iters or inputs.default_iters()
    training = _train(stages, inputs, workdir, iters, gpu)
    diagnosis = _diagnose(training, inputs)
    replay = _finish_bundle(training.replay, inputs, notes)
    grounds = gather(inputs, training, diagnosis, scanned, lint, replay=replay, notes=notes)
    # From here on the verdict stands: what cannot be written (a full disk) is a note.
    verdict = judge(grounds)
    reproducible = reproducibility(stages, training, snapshot=snapshot is not None, gpu=gpu)
    fix = None
    if verify and verdict.cause != Cause.NONE:
        fix = _try_fix(stages, inputs, verdict, diagnosis, iters, gpu, workdir, training, notes)
    else:
        stages.skip("verify the fix", "nothing to fix" if verify else "not asked for (--no-verify)")
    return HuntReport(
        verdict,
        workdir,
        fix=fix,
        lint=lint,
        scan=scanned,
        scan_error=scan_error,
        training=training,
        notes=notes,
        diagnosis=diagnosis,
        stages=stages,
        reproducible=reproducible,
    )


def _lint_and_scan(stages: Stages, inputs: Inputs, scan: bool):
    """(lint's report, the scan's report or None, why the scan failed or None)."""
    lint = stages.run("lint", lambda: lint_models(inputs.net_model, inputs.doc), _lint_stage)
    if not scan:
        stages.skip("scan", "not asked for (--no-scan)")
        return lint, None, None
    scanned, scan_error = stages.run("scan", lambda: _scan(inputs), _scan_stage)
    return lint, scanned, scan_error


def _train(
    stages: Stages, inputs: Inputs, workdir: str, iters: int, gpu: Optional[int]
) -> Training:
    """The checked copies, trained."""
    net = inputs.net_model  # with a check after each of its blobs: about as many layers again
    check_room(workdir, len(net.layers) + sum(len(l.tops) for l in net.layers), iters)
    copies = stages.run(
        "checked copies",
        lambda: make_copies(inputs, os.path.join(workdir, "checked")),
        lambda c: (OK, f"a check after every blob: {c.net}", None),
    )
    return stages.run("train", lambda: train(copies, iters, gpu=gpu), _train_stage)


def _try_fix(
    stages: Stages,
    inputs: Inputs,
    verdict: Verdict,
    diagnosis,
    iters: int,
    gpu: Optional[int],
    workdir: str,
    training: Training,
    notes: List[str],
) -> Optional[Fix]:
    """The fix the verdict calls for, tried on the copies; a note where it cannot be."""
    try:
        return stages.run(
            "verify the fix",
            lambda: find_fix(
                inputs,
                verdict,
                diagnosis,
                iters=iters,
                gpu=gpu,
                folder=workdir,
                error=training.error,
            ),
            _verify_stage,
        )
    except NanToolsError as e:
        notes.append(f"the fix could not be written or tried: {e}")
        return None


def _read(solver: str, snapshot: Optional[str]) -> Inputs:
    inputs = read_inputs(solver, "")
    if snapshot is not None:
        inputs.resume_from(snapshot)
    return inputs


def _read_stage(inputs: Inputs):
    tests = len(inputs.test_nets)
    more = f", {plural(tests, 'test net')}" if tests else ""
    resume = inputs.resume
    more += f", from {resume.state} (iteration {resume.iteration})" if resume else ""
    return OK, f"{inputs.solver}: train net {inputs.net}{more}", None


def _lint_stage(found: LintReport):
    status = FOUND if found.of("error") or found.of("warning") else OK
    return status, str(found), [f.to_dict() for f in found]


def _scan_stage(scanned):
    report, error = scanned
    if report is None:
        return ERROR, error, {"error": error}
    detail = {
        "findings": len(report.findings),
        "sources": report.sources,
        "first": [f.__dict__ for f in report.findings[:10]],
    }
    named = ", ".join(report.sources) or "no source"
    if report.findings:
        return FOUND, f"{plural(len(report.findings), 'bad record')} in {named}", detail
    records = sum(s.records for s in report.summaries.values())
    return OK, f"{plural(records, 'record')} of {named}: none bad", detail


def _train_stage(training: Training):
    detail = training.to_dict()
    e = training.error
    if e is not None:
        counts = f"{e.nan} NaN, {e.posinf} +inf, {e.neginf} -inf"
        where = f"blob {e.blob!r}, {e.pass_} pass ({e.phase})"
        return FOUND, f"iteration {training.iteration}: {where}: {counts}", detail
    if training.aborted:
        return FOUND, f"Caffe ended the process (exit {training.exit_code})", detail
    return OK, f"{training.iterations} iterations stayed finite; log {training.log}", detail


def _verify_stage(fix: Optional[Fix]):
    if fix is None:
        return SKIPPED, "no fix hunt can make and try for this verdict", None
    return (OK if fix.verified else FAILED), f"{fix.change}: {fix.state}", fix.to_dict()


def _scan(inputs: Inputs):
    """The sources of the train net's TRAIN phase and those only the test nets read."""
    from caffe_nantools.scan import scan
    from caffe_nantools.scan.report import merge_reports
    from caffe_nantools.scan.net_sources import sources_from_net

    try:
        reports = [scan(inputs.net_model, phase="TRAIN")]
        seen = set(reports[0].sources)
        for net in inputs.test_models:
            for source in sources_from_net(net.path, "TEST", net)[0]:
                if source.name not in seen:
                    seen.add(source.name)
                    reports.append(scan(net, phase="TEST", layer=source.layer))
        return (reports[0] if len(reports) == 1 else merge_reports(reports)), None
    except NanToolsError as e:
        return None, str(e)


def _diagnose(training: Training, inputs: Inputs):
    from caffe_nantools.diagnose import diagnose

    try:
        return diagnose(training.log, net=inputs.net_model, solver=inputs.doc, keep_trace=True)
    except NanToolsError:
        return None


def _finish_bundle(folder: Optional[str], inputs: Inputs, notes: List[str]) -> Optional[str]:
    """The bundle's net: the train net with Input layers shaped like the saved batch; then
    the digests that tell replay the bundle is as hunt wrote it. The bundle's folder, or None
    (with a note where it could not be finished)."""
    from caffe_nantools.bundle import seal
    from caffe_nantools.replay import bundle_net

    if folder is None:
        return None
    try:
        manifest_path = os.path.join(folder, "manifest.json")
        with open(manifest_path) as f:
            manifest = json.load(f)
        shapes = {
            top: np.load(os.path.join(folder, name), mmap_mode="r").shape
            for top, name in manifest["inputs"].items()
        }
        manifest["net"] = "net.prototxt"
        with writing() as out:
            out.text(
                os.path.join(folder, "net.prototxt"),
                bundle_net(inputs.net_text, inputs.net, shapes),
            )
            out.text(manifest_path, json.dumps(manifest, indent=2) + "\n")
        seal(folder)
    except NanToolsError as e:
        notes.append(f"the replay bundle could not be finished: {e}")
        return None
    return folder
