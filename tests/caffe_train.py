"""The real ``caffe train``, for the tests that need a log Caffe wrote itself: one way to run
it, so that every such test sees the same environment and fails the same way, with the end of
Caffe's log, when Caffe ends otherwise than the test expects."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

import caffe_nantools

TESTS = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(caffe_nantools.__file__)))
#: How much of the log a failure shows.
TAIL = 3000


def train_command(solver: str = "solver.prototxt", *args: str) -> List[str]:
    return ["caffe", "train", "-solver", str(solver), *args]


def train_env(folder) -> dict:
    """Caffe's whole log on stderr (not in files under /tmp), from INFO up; Python layers
    importable from the package, the tests and ``folder``."""
    path = [str(folder), PACKAGE_ROOT, TESTS, os.environ.get("PYTHONPATH", "")]
    return dict(
        os.environ,
        GLOG_logtostderr="1",
        GLOG_minloglevel="0",
        PYTHONPATH=os.pathsep.join(p for p in path if p),
    )


@dataclass
class Trained:
    """What ``caffe train`` did: its exit status and its log (kept as ``path`` too)."""

    returncode: int
    log: str
    path: Path

    @property
    def tail(self) -> str:
        return self.log[-TAIL:]


def caffe_train(
    folder, *args: str, solver: str = "solver.prototxt", fails: bool = False, timeout: int = 300
) -> Trained:
    """Run ``caffe train -solver SOLVER ARGS`` in ``folder`` and keep its log as
    ``folder/train.log``. The test fails, showing the log's end, unless Caffe finished the
    optimization (exit 0) or, with ``fails``, exited non-zero."""
    folder = Path(folder)
    try:
        run = subprocess.run(
            train_command(solver, *args),
            cwd=folder,
            env=train_env(folder),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        log = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        pytest.fail(f"caffe train ran over {timeout} s; its log ends:\n{(log or '')[-TAIL:]}")
    trained = Trained(run.returncode, run.stderr, folder / "train.log")
    trained.path.write_text(trained.log)
    if fails and trained.returncode == 0:
        pytest.fail(f"caffe train was to fail and exited 0; its log ends:\n{trained.tail}")
    if not fails and (trained.returncode != 0 or "Optimization Done." not in trained.log):
        pytest.fail(
            f"caffe train exited {trained.returncode} before it finished; its log ends:\n"
            f"{trained.tail}"
        )
    return trained
