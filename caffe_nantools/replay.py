"""``caffe-nantools replay BUNDLE``: run the failing iteration of a hunt again, forward and
backward, from the weights it started with and the batch it read, and give the exact numbers of
every blob and param in net order (NaN/+inf/-inf counts, min, max, mean |x|), the first bad one
marked: without retraining, as often as needed.

Caffe's work runs in a child process (:mod:`caffe_nantools.replay_child`): a failed CHECK in a
layer's set-up, forward or backward ends that process, and replay names the layer and Caffe's
fatal line. In a bundle whose files are as hunt wrote them (their digests in the manifest) that
is a finding about the net; in one edited since, or made by hand, it is the bundle's fault.

A bundle (``hunt`` writes one in ``WORKDIR/replay`` at the first failure) is a folder with
``manifest.json``, ``net.prototxt`` (the train net with its data layers replaced by Input
layers), the ``.caffemodel`` and one ``.npy`` per data top; :mod:`caffe_nantools.bundle` reads
and checks it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from caffe_nantools import arguments, jsontext
from caffe_nantools.bundle import (
    Bundle,
    ReplayError,
    changed_since_hunt,
    check_layer_types,
    find_bundle,
    open_bundle,
)
from caffe_nantools.children import end_with_parent, fatal_line, log_tail, python_env
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK, NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.prototxt import Net, NetState, dump, validate
from caffe_nantools.templates import escape

__all__ = ["Abort", "ReplayError", "ReplayReport", "Row", "bundle_net", "replay"]


def bundle_net(net_text: str, path: str, shapes: Dict[str, Sequence[int]]) -> str:
    """The TRAIN net of ``net_text`` with every data layer replaced by an Input layer whose tops
    have ``shapes`` (the saved batch's), other layers as written."""
    net = Net.parse(net_text, path)
    parts = [f'name: "{escape(net.name or "replay")}"\n']
    for layer in net.active_layers(NetState("TRAIN")):
        if layer.is_data:
            tops = "".join(f' top: "{escape(t)}"' for t in layer.tops)
            dims = "".join(
                " shape {" + "".join(f" dim: {d}" for d in shapes[t]) + " }" for t in layer.tops
            )
            parts.append(
                f'layer {{ name: "{escape(layer.name)}" type: "Input"{tops} input_param {{{dims} }} }}\n'
            )
        else:
            parts.append(dump(layer.node).strip("\r\n") + "\n")
    return "".join(parts)


@dataclass(frozen=True)
class Row:
    """The numbers of one array: a blob's data or diff, or a param's."""

    what: str  # "data" or "diff"
    name: str  # "layer: blob" or "layer: param i"
    count: int
    nan: int
    posinf: int
    neginf: int
    huge: int  # finite values of 1e37 or more in magnitude: an overflow to FLT_MAX
    min: Optional[float]
    max: Optional[float]
    mean_abs: Optional[float]

    @property
    def bad(self) -> bool:
        return bool(self.nan or self.posinf or self.neginf or self.huge)

    def to_dict(self) -> dict:
        return jsontext.fields_dict(self)


#: As hunt's checks: a finite value this large is an overflow to FLT_MAX (an empty MAX pooling
#: window gives -FLT_MAX), as bad as inf.
HUGE = 1e37


def measure(what: str, name: str, x: np.ndarray) -> Row:
    x = np.asarray(x).ravel()
    s = finite_stats(x, HUGE)
    finite = x[np.isfinite(x)]
    mean_abs = float(np.abs(finite, dtype=np.float64).mean()) if finite.size else None
    return Row(
        what,
        name,
        s.count,
        s.nan,
        s.posinf,
        s.neginf,
        s.over_max_abs,
        s.finite_min,
        s.finite_max,
        mean_abs,
    )


@dataclass(frozen=True)
class Abort:
    """A step of the replay that ended it: Caffe ended the process (a failed CHECK, a
    LOG(FATAL), a crash) or a Python layer raised.

    ``stage`` is ``start``, ``device``, ``setup``, ``weights``, ``forward`` or ``backward``;
    ``layer`` the layer it was in (None: the net's own set-up, or no layer's step) and
    ``where`` its ``net.prototxt:LINE``; ``why`` Caffe's fatal line (``file:line] message``),
    the exception, or how the process ended.
    """

    stage: str
    layer: Optional[str]
    where: Optional[str]
    why: str

    def __str__(self) -> str:
        step = {"setup": "set-up"}.get(self.stage, self.stage)
        if self.layer is not None:
            place = f"the {step} of layer {self.layer!r} ({self.where})"
        else:
            place = {"setup": "the net's set-up", "start": "the start of the replay process"}.get(
                self.stage, f"the replay's {step} step"
            )
        return f"{place} failed: {self.why}"

    def to_dict(self) -> dict:
        return jsontext.fields_dict(self)


@dataclass
class ReplayReport:
    """Forward rows (blob data, then each layer's params) and backward rows (blob diffs, param
    diffs), in net order; ``first_bad`` is the first row with a non-finite value. ``abort`` is
    the step that ended the replay early in a bundle as hunt wrote it (the rows are those
    measured before it)."""

    iteration: Optional[int]
    error: Optional[NonFiniteError] = None  # what hunt saw fail in that iteration
    forward: List[Row] = field(default_factory=list)
    backward: List[Row] = field(default_factory=list)
    abort: Optional[Abort] = None

    @property
    def first_bad(self) -> Optional[Row]:
        return next((r for r in self.forward + self.backward if r.bad), None)

    @property
    def return_code(self) -> int:
        return EXIT_FINDINGS if self.first_bad is not None or self.abort is not None else EXIT_OK

    def to_dict(self) -> dict:
        return jsontext.fields_dict(
            self, names=("iteration", "error", "forward", "backward", "first_bad", "abort")
        )

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict()) + "\n"

    def format(self) -> str:
        first = self.first_bad
        if first is not None:
            head = f"first non-finite: the {first.what} of {first.name}"
        else:
            head = "every value finite" + (" up to there" if self.abort else "")
        lines = [f"iteration {self.iteration}: {head}"]
        if self.abort is not None:
            lines.append(
                f"stopped: {self.abort} (the bundle is as hunt wrote it: the net itself fails here)"
            )
        if self.error is not None:
            lines.append(f"hunt saw: {self.error}")
            if first is None and self.abort is None and self.error.pass_ == "update":
                lines.append(
                    "forward and backward stay finite: the update (its rate, its step) made the weights bad"
                )
        header = (
            f"  {'':2}{'what':5} {'name':32} {'nan':>6} {'+inf':>6} {'-inf':>6} {'>=1e37':>6} {'min':>11} "
            f"{'max':>11} {'mean |x|':>11}"
        )
        for title, rows in (("forward", self.forward), ("backward", self.backward)):
            lines += [title + ":", header]
            for r in rows:
                mark = "->" if r is first else ""
                lines.append(
                    f"  {mark:2}{r.what:5} {r.name[:32]:32} {r.nan:6} {r.posinf:6} {r.neginf:6} {r.huge:6} "
                    f"{_number(r.min):>11} {_number(r.max):>11} {_number(r.mean_abs):>11}"
                )
        return "\n".join(lines) + "\n"


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def replay(
    bundle: str, *, gpu: Optional[int] = None, threads: Optional[int] = None
) -> ReplayReport:
    """Run the bundle's iteration once more, forward and backward, in a child process.

    Args:
        bundle: the bundle's folder (or its manifest), or the workdir of the hunt that wrote it
            (its ``replay``, or ``checked/replay`` of older hunts).
        gpu: run on this GPU (CPU by default).
        threads: the threads BLAS and OpenMP may use in the child (``OPENBLAS_NUM_THREADS``,
            ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``); by default as many as this process's
            environment allows.

    Returns:
        The report; a step that ended the replay (a failed CHECK, a Python layer's exception)
        in a bundle as hunt wrote it is its ``abort``, a finding about the net.

    Raises:
        ReplayError: not a bundle; a file of it missing, unreadable or not agreeing with the net
            (all checked before Caffe sees them); a Python layer's module or class not found; a
            step that ended the replay in a bundle changed since hunt wrote it, or made by hand.
        ArgumentError: ``bundle`` not a path, ``gpu`` not a device number.
        CaffeUnavailableError: no pycaffe here, or no GPU ``gpu`` for it.
    """
    from caffe_nantools.pycaffe import load_caffe, unusable_gpu

    bundle = arguments.path("bundle", bundle)
    gpu = arguments.whole("gpu", gpu, 0, optional=True)
    threads = arguments.whole("threads", threads, 1, optional=True)
    found = open_bundle(find_bundle(bundle))
    caffe = load_caffe()
    validate(found.net_text, found.net_path)
    check_layer_types(found, set(caffe.layer_type_list()))
    report = ReplayReport(found.iteration, found.error)
    abort = _run(found, gpu, report, _threads_env(threads))
    if abort is None:
        return report
    if abort.stage == "device" and gpu is not None:
        raise unusable_gpu(gpu, abort.why)
    changed = changed_since_hunt(found)
    if changed is not None:
        raise ReplayError(
            f"{found.folder}: {abort}; the bundle is not as hunt wrote it ({changed}): undo "
            "the edit, or replay the bundle hunt wrote"
        )
    report.abort = abort
    return report


#: The settings that bound the threads of the BLAS libraries Caffe is built with, and OpenMP's.
THREAD_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _threads_env(threads: Optional[int]) -> Dict[str, str]:
    if threads is None:
        return {}
    return {name: str(threads) for name in THREAD_SETTINGS}


def _run(
    bundle: Bundle, gpu: Optional[int], report: ReplayReport, settings: Dict[str, str]
) -> Optional[Abort]:
    """The child's work: its rows into ``report``; the step that ended it early, if one did."""
    with tempfile.TemporaryDirectory(prefix="nantools-replay-") as tmp:
        config = os.path.join(tmp, "config.json")
        progress = os.path.join(tmp, "progress.jsonl")
        log = os.path.join(tmp, "caffe.log")
        with open(config, "w") as f:
            json.dump({"bundle": bundle.folder, "gpu": gpu, "progress": progress}, f)
        open(progress, "w").close()
        with open(log, "wb") as out:
            child = subprocess.run(
                [sys.executable, "-m", "caffe_nantools.replay_child", config],
                stdin=subprocess.DEVNULL,
                stdout=out,  # a Python layer's prints too: never in replay's own output
                stderr=subprocess.STDOUT,
                # Caffe's info lines name the layer it sets up when it fails.
                env=python_env(GLOG_logtostderr="1", GLOG_minloglevel="0", **settings),
                preexec_fn=functools.partial(end_with_parent, os.getpid()),
            )
        stage, layer, raised = "start", None, None
        with open(progress) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:  # the line the process was writing when it ended
                    continue
                if "row" in record:
                    row = Row(**record["row"])
                    (report.forward if row.what == "data" else report.backward).append(row)
                elif "stage" in record:
                    stage, layer = record["stage"], record["layer"]
                elif "refused" in record:
                    raise ReplayError(record["refused"])
                elif "raised" in record:
                    raised = record["raised"]
                elif record.get("done"):
                    return None
        tail = log_tail(log)
    if stage == "setup":
        layer = layer_being_set_up(tail)
    fatal = fatal_line(tail)
    why = raised or (f"Caffe ended the process: {fatal}" if fatal else _ended(child.returncode))
    where = next(
        (f"{bundle.net_path}:{x.node.line}" for x in bundle.layers if x.name == layer), None
    )
    return Abort(stage, layer, where, why)


#: Caffe's info lines as it builds a net: a layer is created, then set up.
_BUILDING = re.compile(r"\] (Creating Layer|Setting up) (.+)$", re.M)


def layer_being_set_up(log: str) -> Optional[str]:
    """The layer Caffe was setting up when it stopped (None: past the last layer's set-up)."""
    steps = _BUILDING.findall(log)
    return steps[-1][1].strip() if steps and steps[-1][0] == "Creating Layer" else None


def _ended(code: int) -> str:
    if code < 0:
        try:
            return f"the process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the process was killed by signal {-code}"
    return f"the process ended with exit status {code}"
