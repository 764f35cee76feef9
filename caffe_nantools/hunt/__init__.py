"""``caffe-nantools hunt SOLVER``: from "loss = nan" to the cause, the place and a fix shown to
work, in one command.

Stages, each a library call with its own result: read the solver and its train net; lint them
(risks, not the verdict); scan the TRAIN data layers' sources; make checked copies in the
workdir (a check after every blob and in-place modifier, debug_info every iteration); train the
copies for a bounded number of iterations in a child process under the guard; judge the first
failure with the trace, the scan and lint; keep a replay bundle of the failing iteration; try
the fix the cause calls for on the copies and train again. The user's files are never changed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from caffe_nantools import jsontext
from caffe_nantools.cause import Cause, evidence_and_advice
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK, NanToolsError, NonFiniteError
from caffe_nantools.files import writing
from caffe_nantools.hunt.fixes import Fix, find_fix
from caffe_nantools.hunt.inputs import HuntError, Inputs, make_copies, read_inputs
from caffe_nantools.hunt.records import MAX_SCANNED, batch_records, reading_layer, scanned_records
from caffe_nantools.hunt.space import check_room
from caffe_nantools.hunt.training import Training, train
from caffe_nantools.hunt.verdict import CAUSES, Verdict, bad_records, count, judge
from caffe_nantools.hunt.workdir import check_workdir, claim_workdir
from caffe_nantools.lint import LintReport

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

    @property
    def return_code(self) -> int:
        return EXIT_OK if self.verdict.cause == Cause.NONE else EXIT_FINDINGS

    def to_dict(self) -> dict:
        scan = None
        if self.scan is not None:
            scan = {
                "findings": len(self.scan.findings),
                "sources": self.scan.sources,
                "first": [f.__dict__ for f in self.scan.findings[:10]],
            }
        elif self.scan_error:
            scan = {"error": self.scan_error}
        fix = self.verdict.fix
        return {
            "verdict": self.verdict.to_dict(),
            "stages": {
                "lint": [f.to_dict() for f in self.lint],
                "scan": scan,
                "train": self.training.to_dict() if self.training else None,
                "verify": fix,
            },
            "workdir": self.workdir,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict()) + "\n"

    def format(self) -> str:
        v = self.verdict
        lines = [f"cause: {v.cause}"]
        where = [
            f"{name} {value}"
            for name, value in (
                ("layer", v.layer),
                ("blob", v.blob),
                ("pass", v.pass_),
                ("iteration", v.iteration),
                ("phase", v.phase),
            )
            if value is not None
        ]
        if where:
            lines.append("  where: " + ", ".join(where))
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
            state = (
                "verified: the same iterations now stay finite"
                if v.fix["verified"]
                else "NOT verified: the same iterations still fail"
            )
            lines.append(f"  fix: {v.fix['change']} ({state}; {v.fix['files'].get('solver', '')})")
        lines += evidence_and_advice(v.evidence, v.advice)
        lines.append("stages:")
        lines.append(f"  lint: {self.lint}")
        for f in self.lint:
            lines.append(f"    {f}")
        if self.scan is not None:
            lines.append(
                f"  scan: {count(len(self.scan.findings), 'bad record')} in "
                f"{', '.join(self.scan.sources) or 'no source'}"
            )
        else:
            lines.append(f"  scan: {self.scan_error or 'skipped'}")
        if self.training is not None:
            t = self.training
            lines.append(f"  train: {t.iterations} iterations in {t.seconds:.1f} s; log {t.log}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"workdir: {self.workdir}")
        return "\n".join(lines) + "\n"


def _listed(keys: List[str], shown: int = 5) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


class _Stages:
    """One progress line per stage on stderr, when it is a terminal."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress

    def run(self, name: str, work: Callable):
        began = time.time()
        if self.progress:
            print(f"hunt: {name} ...", end="", file=sys.stderr, flush=True)
        try:
            return work()
        finally:
            if self.progress:
                print(f" {time.time() - began:.1f} s", file=sys.stderr, flush=True)


def hunt(
    solver: str,
    *,
    iters: Optional[int] = None,
    workdir: Optional[str] = None,
    gpu: Optional[int] = None,
    scan: bool = True,
    verify: bool = True,
    progress: bool = False,
) -> HuntReport:
    """Find out why ``solver``'s training goes non-finite.

    Args:
        iters: iterations to train (default: the solver's max_iter, at most 1000; 100 without one).
        workdir: where hunt's copies, logs, replay bundle and fixes go (a new or empty folder,
            claimed for this hunt alone; default ``nantools-hunt-YYYYmmdd-HHMMSS-XXXXXXXX`` in
            the current folder).
        gpu: train on this GPU (set_mode_gpu, set_device); CPU by default.
        scan: scan the TRAIN data layers' sources first.
        verify: try the fix on the copies and train again.
        progress: a line per stage on stderr.

    Raises:
        NanToolsError: a solver or net that cannot be read, no pycaffe, a workdir that is not
            empty, read-only or in use by another hunt, a disk with no room for the training.
    """
    from caffe_nantools.pycaffe import load_caffe

    check_workdir(workdir)
    stages = _Stages(progress)
    inputs = stages.run("read", lambda: read_inputs(solver, ""))
    load_caffe()  # a clear error now, not in the child
    workdir = claim_workdir(workdir)
    if inputs.inline:  # written out for lint, scan and the copies
        inputs.net = os.path.join(workdir, inputs.net)
        with writing() as out:
            out.text(inputs.net, inputs.net_text)
    report = HuntReport(Verdict(Cause.NONE), workdir, notes=inputs.notes(gpu))
    report.lint = stages.run("lint", lambda: _lint(inputs))
    if scan:
        report.scan, report.scan_error = stages.run("scan", lambda: _scan(inputs))
    iters = iters or inputs.default_iters()
    net = inputs.net_model  # with a check after each of its blobs: about as many layers again
    check_room(workdir, len(net.layers) + sum(len(l.tops) for l in net.layers), iters)
    copies = stages.run(
        "checked copies", lambda: make_copies(inputs, os.path.join(workdir, "checked"))
    )
    report.training = training = stages.run(
        f"train ({iters} iterations)", lambda: train(copies, iters, gpu=gpu)
    )
    diagnosis = _diagnose(training, inputs)
    verdict = report.verdict = judge(
        inputs.net_model, training, diagnosis, report.scan, report.lint
    )
    if verdict.cause == Cause.BAD_INPUT and training.error is not None:
        _name_records(verdict, inputs, training.error, report.notes)
    elif training.error is not None:
        _blame_scanned(verdict, inputs, bad_records(report.scan))
    elif verdict.record is not None:
        verdict.records = scanned_records(bad_records(report.scan), verdict.record)
        if verdict.cause == Cause.BAD_INPUT:
            verdict.layer = reading_layer(inputs.net, verdict.record["source"])
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
    if verify:
        try:
            fix: Optional[Fix] = stages.run(
                "verify the fix",
                lambda: find_fix(inputs, verdict, diagnosis, iters=iters, gpu=gpu, folder=workdir),
            )
            verdict.fix = fix.to_dict() if fix is not None else None
        except NanToolsError as e:
            report.notes.append(f"the fix could not be written or tried: {e}")
    return report


def _lint(inputs: Inputs) -> LintReport:
    from caffe_nantools.lint import lint

    return lint(inputs.net, inputs.solver)


def _scan(inputs: Inputs):
    from caffe_nantools.scan import scan

    try:
        return scan(inputs.net, phase="TRAIN"), None
    except NanToolsError as e:
        return None, str(e)


def _diagnose(training: Training, inputs: Inputs):
    from caffe_nantools.diagnose import diagnose

    try:
        return diagnose(training.log, net=inputs.net, solver=inputs.solver)
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


def _name_records(
    verdict: Verdict, inputs: Inputs, error: NonFiniteError, notes: List[str]
) -> None:
    """The records that the failing batch's bad samples were read from."""
    records, note = batch_records(
        inputs.net, verdict.layer, error.iteration, list(error.bad_samples)
    )
    if note:
        notes.append(note)
    if records:
        verdict.records = records
        verdict.record = {"source": records[0]["source"], "key": records[0]["key"]}


def _blame_scanned(verdict: Verdict, inputs: Inputs, bad: list) -> None:
    """A failure past the data layers in a batch that holds records the scan found bad (a label
    past the classes, say): those records are the cause; the verdict keeps where it failed."""
    found = {(f.source, f.key): f for f in bad}
    sources = dict.fromkeys(f.source for f in bad)  # each once: one may hold thousands
    for layer in dict.fromkeys(reading_layer(inputs.net, source) for source in sources):
        batch, _ = batch_records(inputs.net, layer, verdict.iteration) if layer else ([], None)
        held = [r for r in batch if (r["source"], r["key"]) in found]
        if held:
            first = found[held[0]["source"], held[0]["key"]]
            verdict.cause = Cause.BAD_INPUT
            verdict.record = {"source": first.source, "key": first.key}
            verdict.records = held
            verdict.advice.insert(
                0,
                f"the batch of iteration {verdict.iteration} held record {first.key} of "
                f"{first.source}, which the scan found bad: {first.detail}",
            )
            return


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
