"""``caffe-nantools hunt SOLVER``: from "loss = nan" to the cause, the place and a fix shown to
work, in one command.

Stages, each a library call with its own result: read the solver, its train and test nets; lint
them (risks, not the verdict); scan the data layers' sources; make checked copies in the
workdir (a check after every blob and in-place modifier, debug_info every iteration); train the
copies for a bounded number of iterations in a child process under the guard; judge the first
failure with the trace, the scan and lint; keep a replay bundle of the failing iteration; try
the fix the cause calls for on the copies and train again. The user's files are never changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from caffe_nantools import arguments, jsontext
from caffe_nantools.cause import Cause, evidence_and_advice
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK, NanToolsError
from caffe_nantools.files import writing
from caffe_nantools.hunt.contracts import blame_breach
from caffe_nantools.hunt.ending import Ending, read_ending
from caffe_nantools.hunt.fixes import Fix, find_fix
from caffe_nantools.hunt.inputs import HuntError, Inputs, make_copies, read_inputs
from caffe_nantools.hunt.batches import (
    MAX_SCANNED,
    batch_records,
    reading_layer,
    scanned_records,
    source_reader,
)
from caffe_nantools.hunt.space import check_room
from caffe_nantools.hunt.stages import ERROR, FAILED, FOUND, OK, SKIPPED, Stages
from caffe_nantools.hunt.training import Training, train
from caffe_nantools.hunt.verdict import CAUSES, Verdict, bad_records, plural, judge
from caffe_nantools.hunt.workdir import check_workdir, claim_workdir
from caffe_nantools.lint import LintReport, lint_models
from caffe_nantools.lint.solver_rules import rate_grows, rate_overflows_at
from caffe_nantools.prototxt import NetState

__all__ = ["CAUSES", "HuntError", "HuntReport", "hunt"]


@dataclass
class HuntReport:
    """The verdict first, then what each stage found."""

    verdict: Verdict
    workdir: str
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

    @property
    def return_code(self) -> int:
        return EXIT_OK if self.verdict.cause == Cause.NONE else EXIT_FINDINGS

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict.to_dict(),
            "stages": [stage.to_dict() for stage in self.stages],
            "workdir": self.workdir,
            "notes": self.notes,
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
            more = [r["key"] for r in v.records if r["key"] != v.record["key"]]
            lines.append(
                f"  record: {v.record['key']} of {v.record['source']}"
                + (f" (and {len(more)} more: {_listed(more)})" if more else "")
            )
        if v.fix is not None:
            lines.append(
                f"  fix: {v.fix['change']} ({v.fix['state']}; {v.fix['files'].get('solver', '')})"
            )
            if v.fix.get("resume"):
                lines.append(
                    f"  resume: {v.fix['resume']} (from this folder: your training from the "
                    "snapshot with the fix; your own files are untouched)"
                )
        lines += evidence_and_advice(v.evidence, v.advice)
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
    report = HuntReport(Verdict(Cause.NONE), workdir, notes=inputs.notes(gpu), stages=stages)
    if inputs.resume is not None:
        report.notes.insert(0, inputs.resume.words())
    report.lint = stages.run("lint", lambda: lint_models(inputs.net_model, inputs.doc), _lint_stage)
    if scan:
        report.scan, report.scan_error = stages.run("scan", lambda: _scan(inputs), _scan_stage)
    else:
        stages.skip("scan", "not asked for (--no-scan)")
    iters = iters or inputs.default_iters()
    net = inputs.net_model  # with a check after each of its blobs: about as many layers again
    check_room(workdir, len(net.layers) + sum(len(l.tops) for l in net.layers), iters)
    copies = stages.run(
        "checked copies",
        lambda: make_copies(inputs, os.path.join(workdir, "checked")),
        lambda c: (OK, f"a check after every blob: {c.net}", None),
    )
    report.training = training = stages.run(
        "train", lambda: train(copies, iters, gpu=gpu), _train_stage
    )
    diagnosis = report.diagnosis = _diagnose(training, inputs)
    ending = _ending(training, diagnosis, inputs) if training.aborted else None
    verdict = report.verdict = judge(
        inputs.net_model,
        training,
        diagnosis,
        report.scan,
        report.lint,
        ending=ending,
        test_nets=inputs.test_models if inputs.test_nets else [],
        rate_fails_at=rate_overflows_at(inputs.doc),
        rate_grows=rate_grows(inputs.doc),
    )
    bad = bad_records(report.scan)
    if verdict.cause == Cause.BAD_INPUT and training.error is not None:
        _name_records(verdict, inputs, training, report.notes)
    elif verdict.record is not None:
        verdict.records = scanned_records(bad, verdict.record)
        if verdict.cause == Cause.BAD_INPUT:
            _, phase, verdict.layer = source_reader(
                inputs.net_model, inputs.test_models, verdict.record["source"]
            )
            verdict.phase = verdict.phase or phase
    elif training.error is not None:
        _blame_scanned(verdict, inputs, bad)
    elif ending is not None and bad and verdict.cause == Cause.CAFFE_ABORT:
        # Only a record that the batch Caffe stopped in read can be why it stopped, and none
        # is when the fatal line or the signal names another reason.
        note = None if ending.cause else _blame_scanned(verdict, inputs, bad)
        if verdict.record is not None:  # the fix drops them all: the blamed one first
            verdict.records = scanned_records(bad, verdict.record)
        else:
            which = "which is" if len(bad) == 1 else "which are"
            why = (
                f"{which} not why Caffe stopped"
                if ending.cause
                else f"none in the batch of iteration {verdict.iteration}, where Caffe stopped"
                if note is None
                else f"whether the batch Caffe stopped in held one is not known ({note})"
            )
            verdict.advice.append(
                f"the scan found {plural(len(bad), 'bad record')} in the data, {why}; drop "
                f"{'it' if len(bad) == 1 else 'them'} all the same (`caffe-nantools scan {bad[0].source} --write-clean CLEAN`)"
            )
    abort = diagnosis.abort if diagnosis is not None else None
    blame_breach(verdict, report.scan, training, inputs, abort["text"] if abort else "")
    if verdict.cause == Cause.NONE and report.scan is not None and report.scan.findings:
        _unreadable(verdict, report.scan.findings, training)
    # From here on the verdict stands: what cannot be written (a full disk) is a note.
    if training.replay is not None:
        try:
            _finish_bundle(training.replay, inputs)
            verdict.evidence.append(
                f"replay bundle: {training.replay} (caffe-nantools replay {training.replay})"
            )
        except NanToolsError as e:
            report.notes.append(f"the replay bundle could not be finished: {e}")
    if verify and verdict.cause != Cause.NONE:
        try:
            fix: Optional[Fix] = stages.run(
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
            verdict.fix = fix.to_dict() if fix is not None else None
        except NanToolsError as e:
            report.notes.append(f"the fix could not be written or tried: {e}")
    else:
        stages.skip("verify the fix", "nothing to fix" if verify else "not asked for (--no-verify)")
    return report


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


def _unreadable(verdict: Verdict, findings: list, training: Training) -> None:
    """The scan found damage that is no single record (a LevelDB .log whose records its
    recovery drops): the training stayed finite on what could be read, the rest is bad input."""
    first = findings[0]
    verdict.cause = Cause.BAD_INPUT
    verdict.record = {"source": first.source, "key": first.key}
    verdict.records = [
        {"source": f.source, "key": f.key, "index": str(f.index)} for f in findings[:MAX_SCANNED]
    ]
    verdict.evidence += [f"scan: {f.source} {f.key}: {f.detail}" for f in findings[:3]]
    verdict.advice.append(
        f"the training stayed finite for {training.iterations} iterations on the records that "
        f"could be read, but the scan found {first.source} damaged: what {first.key} held never "
        "reaches the net; restore it from where it was written, or rebuild the store"
    )


def _name_records(verdict: Verdict, inputs: Inputs, training: Training, notes: List[str]) -> None:
    """The records that the failing batch's bad samples were read from: a test net's layer
    counts its batches over every test pass (as its check does)."""
    error = training.error
    net, phase = _reading_net(inputs, verdict.layer, error.phase)
    # A resumed training's TRAIN layers were advanced before their checks began to count.
    batch = error.iteration + (training.skipped if phase == "TRAIN" else 0)
    records, note = batch_records(net, verdict.layer, batch, list(error.bad_samples), phase=phase)
    if note:
        notes.append(note)
    if records:
        verdict.records = records
        verdict.record = {"source": records[0]["source"], "key": records[0]["key"]}


def _reading_net(inputs: Inputs, layer: Optional[str], phase: Optional[str]):
    """(the net, phase) in which ``layer`` reads its batches."""
    if phase == "TEST":
        for net in inputs.test_models:
            if any(l.name == layer for l in net.active_layers(NetState("TEST"))):
                return net, "TEST"
    return inputs.net_model, "TRAIN"


def _blame_scanned(verdict: Verdict, inputs: Inputs, bad: list) -> Optional[str]:
    """A failure in a batch that holds records the scan found bad (a label past the classes,
    say): those records are the cause; the verdict keeps where it failed. Returns why the
    batch's records cannot be named, when they cannot."""
    found = {(f.source, f.key): f for f in bad}
    sources = dict.fromkeys(f.source for f in bad)  # each once: one may hold thousands
    unnamed = None
    net = inputs.net_model
    for layer in dict.fromkeys(reading_layer(net, source) for source in sources):
        batch, note = batch_records(net, layer, verdict.iteration) if layer else ([], None)
        unnamed = unnamed or note
        held = [r for r in batch if (r["source"], r["key"]) in found]
        if held:
            first = found[held[0]["source"], held[0]["key"]]
            verdict.cause = Cause.BAD_INPUT
            verdict.record = {"source": first.source, "key": first.key}
            verdict.records = held
            verdict.layer = verdict.layer or layer
            verdict.advice.insert(
                0,
                f"the batch of iteration {verdict.iteration} held record {first.key} of "
                f"{first.source}, which the scan found bad: {first.detail}",
            )
            return None
    return unnamed


def _ending(training: Training, diagnosis, inputs: Inputs) -> Ending:
    """How Caffe ended the training process; the iterations it finished by the child's count,
    else by the log's last displayed one (the copies display every iteration)."""
    iterations = training.iterations
    run = diagnosis.trace if diagnosis is not None else None
    if not iterations and run is not None and run.iterations and run.iterations[-1] is not None:
        iterations = run.iterations[-1] + 1
    abort = diagnosis.abort if diagnosis is not None else None
    return read_ending(
        training.log,
        training.exit_code,
        iterations,
        fatal=abort["text"] if abort is not None else None,
        user_files=inputs.user_files,
    )


def _finish_bundle(folder: str, inputs: Inputs) -> None:
    """The bundle's net: the train net with Input layers shaped like the saved batch; then
    the digests that tell replay the bundle is as hunt wrote it."""
    from caffe_nantools.bundle import seal
    from caffe_nantools.replay import bundle_net

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
            os.path.join(folder, "net.prototxt"), bundle_net(inputs.net_text, inputs.net, shapes)
        )
        out.text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    seal(folder)
