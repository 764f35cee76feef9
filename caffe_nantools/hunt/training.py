"""hunt's bounded training: the checked copies trained in a child process (see
:mod:`caffe_nantools.hunt.child`), Caffe's log kept in the copies' folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

import caffe_nantools
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.hunt.inputs import CHECK_MAX_ABS, Copies, HuntError

#: What a CPU-only Caffe says when it is asked for a GPU.
CPU_ONLY = b"Cannot use GPU in CPU-only Caffe"


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

    @property
    def finite(self) -> bool:
        return self.error is None and not self.aborted

    def to_dict(self) -> dict:
        return {
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "log": self.log,
            "finite": self.finite,
            "aborted": self.aborted,
        }


def train(
    copies: Copies, iters: int, *, gpu: Optional[int] = None, replay: bool = True
) -> Training:
    """Train ``copies`` for at most ``iters`` iterations in a child process, from the current
    folder (Caffe opens the net's relative paths from there)."""
    folder = copies.folder
    result_path = os.path.join(folder, "result.json")
    replay_dir = os.path.join(folder, "replay") if replay else None
    config = {
        "solver": os.path.abspath(copies.solver),
        "iters": iters,
        "gpu": gpu,
        "max_abs": CHECK_MAX_ABS,
        "replay": replay_dir,
        "result": result_path,
    }
    config_path = os.path.join(folder, "child.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    if os.path.exists(result_path):
        os.unlink(result_path)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(caffe_nantools.__file__)))
    env = dict(
        os.environ,
        GLOG_logtostderr="1",
        GLOG_minloglevel="0",
        PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
    )
    log = os.path.join(folder, "train.log")
    with open(log, "wb") as out:
        child = subprocess.run(
            [sys.executable, "-m", "caffe_nantools.hunt.child", config_path],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if not os.path.exists(result_path):
        if gpu is not None and _says(log, CPU_ONLY):
            raise HuntError(
                "{gpu}: this Caffe is built for the CPU only; leave out {gpu:name}",
                arguments={"gpu": gpu},
            )
        return Training(0, 0.0, log, aborted=True, exit_code=child.returncode)
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
        aborted=child.returncode != 0,
        exit_code=child.returncode,
        replay=replay_dir
        if error is not None and replay_dir and os.path.isdir(replay_dir)
        else None,
    )


def _says(log: str, words: bytes, tail: int = 1 << 16) -> bool:
    """Whether the end of the log (where a fatal line is) holds ``words``."""
    with open(log, "rb") as f:
        f.seek(max(0, os.path.getsize(log) - tail))
        return words in f.read()
