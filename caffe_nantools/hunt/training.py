"""hunt's bounded training: the checked copies trained in a child process (see
:mod:`caffe_nantools.hunt.child`), Caffe's log kept in the copies' folder."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import BinaryIO, Optional

from caffe_nantools.children import end_with_parent, fatal_line, log_tail, python_env
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.hunt.child import EXIT_NO_SPACE
from caffe_nantools.hunt.inputs import CHECK_MAX_ABS, Copies, HuntError
from caffe_nantools.hunt.space import NEARLY_FULL, HuntSpaceError, free_bytes, no_room, size
from caffe_nantools.hunt.stores import remove_copies
from caffe_nantools.jsontext import fields_dict
from caffe_nantools.pycaffe import CPU_ONLY, cpu_only


@dataclass
class Training:
    """What one bounded training did.

    ``error`` is the first failure (a check layer's or the guard's NonFiniteError, as the
    child raised it) and ``iteration`` the solver's iteration it happened in; ``aborted`` is set when Caffe
    ended the process itself (a failed CHECK, a crash), with its ``exit_code``.
    """

    iterations: int
    seconds: float
    log: str
    error: Optional[NonFiniteError] = None
    iteration: Optional[int] = None
    aborted: bool = False
    exit_code: int = 0
    replay: Optional[str] = None
    #: The solver's iteration the training began at (a snapshot's), and the batches each TRAIN
    #: data layer was advanced by before it (a check counts its batches from there).
    start: int = 0
    skipped: int = 0

    @property
    def finite(self) -> bool:
        return self.error is None and not self.aborted

    def to_dict(self) -> dict:
        """The train stage's detail: the failure itself is the verdict's."""
        shown = fields_dict(
            self,
            convert={"seconds": lambda seconds: round(seconds, 3)},
            leave_out=("error", "iteration", "exit_code", "replay", "skipped"),
        )
        return {**shown, "finite": self.finite}


def train(
    copies: Copies, iters: int, *, gpu: Optional[int] = None, replay: bool = True
) -> Training:
    """Train ``copies`` for at most ``iters`` iterations in a child process, from the current
    folder (Caffe opens the net's relative paths from there)."""
    folder = copies.folder
    result_path = os.path.join(folder, "result.json")
    # WORKDIR/replay, beside the checked copies' folder, as the README says.
    replay_dir = os.path.join(os.path.dirname(folder), "replay") if replay else None
    config = _child_config(copies, iters, gpu, replay_dir, result_path)
    config_path = os.path.join(folder, "child.json")
    log = os.path.join(folder, "train.log")
    try:
        try:
            with open(config_path, "w") as f:
                json.dump(config, f, indent=2)
            if os.path.exists(result_path):
                os.unlink(result_path)
            with open(log, "wb") as out:
                returncode = _run_child(config_path, out)
        except OSError as e:
            raise no_room(e, folder) from None
    finally:
        remove_copies(copies.stores)
    if not os.path.exists(result_path):
        return _without_result(folder, log, returncode, gpu)
    with open(result_path) as f:
        result = json.load(f)
    error = NonFiniteError.from_dict(result["error"]) if result.get("error") else None
    return Training(
        result["iterations"],
        result["seconds"],
        log,
        error,
        result.get("failed_iteration"),
        # A process that reported and then died (a signal while it wrote or exited) did not
        # end well either.
        aborted=returncode != 0,
        exit_code=returncode,
        replay=replay_dir
        if error is not None and replay_dir and os.path.isdir(replay_dir)
        else None,
        start=result.get("start", 0),
        skipped=result.get("skipped", 0),
    )


def _child_config(
    copies: Copies, iters: int, gpu: Optional[int], replay_dir: Optional[str], result_path: str
) -> dict:
    """What the child trains and where it writes (:mod:`caffe_nantools.hunt.child`)."""
    config = {
        "solver": os.path.abspath(copies.solver),
        "iters": iters,
        "gpu": gpu,
        "max_abs": CHECK_MAX_ABS,
        "replay": replay_dir,
        "result": result_path,
    }
    if copies.resume is not None:
        config["restore"] = copies.resume.state
        config["advance"] = {"layers": copies.resume.layers, "batches": copies.resume.batches}
    return config


def _without_result(folder: str, log: str, returncode: int, gpu: Optional[int]) -> Training:
    """A child that wrote no result: a full disk or a CPU-only Caffe asked for a GPU (errors),
    else an aborted training."""
    if returncode == EXIT_NO_SPACE or 0 <= free_bytes(folder) < NEARLY_FULL:
        raise HuntSpaceError(
            f"{folder}: disk full while training (its log {log} is "
            f"{size(os.path.getsize(log))}, {size(max(free_bytes(folder), 0))} free); free "
            "some space, give fewer --iters or give --workdir on a disk with room"
        )
    if gpu is not None and CPU_ONLY in (fatal_line(log_tail(log)) or ""):
        raise cpu_only(gpu, HuntError)
    return Training(0, 0.0, log, aborted=True, exit_code=returncode)


def _run_child(config_path: str, out: BinaryIO) -> int:
    """The child's exit status. It ends with hunt (a hunt killed by SIGKILL leaves no training
    behind), and its Python writes no compiled module: a Python layer's would go into a
    __pycache__ beside the user's net (a PYTHONPYCACHEPREFIX would keep it away, but would
    compile numpy, protobuf and caffe anew into it at every run)."""
    env = python_env(GLOG_logtostderr="1", GLOG_minloglevel="0", PYTHONDONTWRITEBYTECODE="1")
    child = subprocess.Popen(
        [sys.executable, "-m", "caffe_nantools.hunt.child", config_path],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=functools.partial(end_with_parent, os.getpid()),
    )
    try:
        return child.wait()
    finally:
        if child.poll() is None:  # hunt was interrupted (Ctrl-C): the training goes with it
            child.kill()
            child.wait()
