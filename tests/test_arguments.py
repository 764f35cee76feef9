"""The library's public functions check their arguments first: a wrong kind or value is one
ArgumentError naming the argument as Python does, before anything is read, run or written; the
command line says the same in its flags' terms."""

import math
import pathlib

import pytest

from caffe_nantools import guard
from caffe_nantools.arguments import ArgumentError, ArgumentTypeError
from caffe_nantools.cli import main
from caffe_nantools.diagnose import diagnose
from caffe_nantools.hunt import hunt
from caffe_nantools.inject import inject, remove
from caffe_nantools.lint import lint, lint_files
from caffe_nantools.logs import log2csv
from caffe_nantools.replay import replay
from caffe_nantools.scan import merge_files, scan
from caffe_nantools.watch import watch

NET = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


class FakeSolver:
    """What guard needs of a solver, without Caffe: it steps, and has a net and an iteration."""

    iter = 0

    class net:
        params: dict = {}
        outputs: list = []
        blobs: dict = {}

    def step(self, n):
        self.iter += n


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\n')
    return tmp_path


@pytest.mark.parametrize(
    "call, message, kind",
    [
        (lambda: scan("net.prototxt", limit=0), "limit=0: must be 1 or more", ArgumentError),
        (
            lambda: scan("net.prototxt", limit=2.5),
            "limit=2.5: must be an integer (1 or more)",
            TypeError,
        ),
        (
            lambda: scan("net.prototxt", max_findings=-3),
            "max_findings=-3: must be 1 or more",
            ArgumentError,
        ),
        (
            lambda: scan("net.prototxt", workers="4"),
            "workers='4': must be an integer (1 or more)",
            TypeError,
        ),
        (
            lambda: scan("net.prototxt", workers=True),
            "workers=True: must be an integer (1 or more)",
            TypeError,
        ),
        (lambda: scan("net.prototxt", shard=(4, 4)), "shard=(4, 4): must be (k, n)", ArgumentError),
        (lambda: scan(None), "target=None: must be a path", TypeError),
        (
            lambda: lint(7),
            "net=7: must be a path",
            TypeError,
        ),  # an int would open file descriptor 7
        (
            lambda: lint("net.prototxt", b"solver.prototxt"),
            "solver=b'solver.prototxt': must be a path",
            TypeError,
        ),
        (
            lambda: lint_files("net.prototxt"),
            "paths='net.prototxt': must be a list of paths, not one",
            TypeError,
        ),
        (lambda: lint_files([]), "paths=[]: an empty list", ArgumentError),
        (
            lambda: merge_files("a.json"),
            "paths='a.json': must be a list of paths, not one",
            TypeError,
        ),
        (lambda: inject("net.prototxt", every=0), "every=0: must be 1 or more", ArgumentError),
        (
            lambda: inject("net.prototxt", max_abs=math.nan),
            "max_abs=nan: must be a finite number above 0",
            ArgumentError,
        ),
        (
            lambda: inject("net.prototxt", max_abs=-1e3),
            "max_abs=-1000.0: must be a finite number above 0",
            ArgumentError,
        ),
        (
            lambda: inject("net.prototxt", solver="solver.prototxt", display=-1),
            "display=-1: must be 0 or more",
            ArgumentError,
        ),
        (
            lambda: inject("net.prototxt", blobs="x"),
            "blobs='x': must be a list of strings, not one",
            TypeError,
        ),
        (
            lambda: inject("net.prototxt", in_place="no"),
            "in_place='no': must be True or False",
            TypeError,
        ),
        (
            lambda: remove(["net.prototxt"], dry_run="yes"),
            "dry_run='yes': must be True or False",
            TypeError,
        ),
        (lambda: log2csv("train.log", None), "outdir=None: must be a path", TypeError),
        (lambda: replay("", gpu=0), "bundle='': an empty path", ArgumentError),
        (lambda: replay("bundle", gpu=-1), "gpu=-1: must be 0 or more", ArgumentError),
        (
            lambda: guard.step("solver.prototxt"),
            "solver='solver.prototxt': not a pycaffe solver",
            TypeError,
        ),
        (lambda: guard.step(FakeSolver(), every=0), "every=0: must be 1 or more", ArgumentError),
        (lambda: guard.step(FakeSolver(), every=-1), "every=-1: must be 1 or more", ArgumentError),
        (lambda: guard.step(FakeSolver(), 2.5), "n=2.5: must be an integer (0 or more)", TypeError),
        (
            lambda: guard.step(FakeSolver(), max_abs=math.nan),
            "max_abs=nan: must be a finite number above 0",
            ArgumentError,
        ),
        (
            lambda: guard.step(FakeSolver(), max_abs=-1.0),
            "max_abs=-1.0: must be a finite number above 0",
            ArgumentError,
        ),
        (
            lambda: guard.step(FakeSolver(), check_params="no"),
            "check_params='no': must be True or False",
            TypeError,
        ),
        (
            lambda: guard.Guard(FakeSolver(), max_abs=0),
            "max_abs=0: must be a finite number above 0",
            ArgumentError,
        ),
        (lambda: hunt("solver.prototxt", iters=0), "iters=0: must be 1 or more", ArgumentError),
        (
            lambda: hunt("solver.prototxt", gpu=-1),
            "gpu=-1: must be 0 or more",
            ArgumentError,
        ),
        (
            lambda: hunt("solver.prototxt", workdir=3),
            "workdir=3: must be a path",
            TypeError,
        ),
        (
            lambda: hunt("solver.prototxt", verify="no"),
            "verify='no': must be True or False",
            TypeError,
        ),
        (
            lambda: watch("caffe train -solver solver.prototxt"),
            "command='caffe train -solver solver.prototxt': must be a list of strings, not one",
            TypeError,
        ),
        (
            lambda: watch(["true"], timeout=math.nan),
            "timeout=nan: must be a finite number above 0",
            ArgumentError,
        ),
        (lambda: watch(["true"], log=b"w.log"), "log=b'w.log': must be a path", TypeError),
        (lambda: diagnose(None), "log=None: must be a path", TypeError),
        (
            lambda: diagnose("train.log", solver=5),
            "solver=5: must be a path",
            TypeError,
        ),
    ],
)
def test_a_wrong_argument_is_named_as_python_does(files, call, message, kind):
    before = sorted(p.name for p in files.iterdir())
    with pytest.raises(kind) as info:
        call()
    assert isinstance(info.value, ArgumentError) and str(info.value).startswith(message)
    assert sorted(p.name for p in files.iterdir()) == before  # nothing written


def test_a_wrong_type_is_also_a_type_error_and_a_wrong_value_a_value_error():
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentError, ValueError)


def test_paths_may_be_path_objects_and_numpy_numbers_count(files):
    import numpy as np

    assert lint(pathlib.Path("net.prototxt")).return_code == 0
    assert lint_files((pathlib.Path("net.prototxt"),)).return_code == 0
    solver = FakeSolver()
    guard.step(solver, np.int64(3), every=np.int32(2), max_abs=np.float32(1e30))
    guard.step(solver, 0)  # nothing to do is not wrong
    assert solver.iter == 3


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["replay", "bundle", "--gpu", "-2"],
            "caffe-nantools replay: error: --gpu -2: must be 0 or more",
        ),
    ],
)
def test_the_command_line_says_it_in_its_flags(files, capsys, argv, line):
    assert main(argv) == 2
    assert capsys.readouterr().err == line + "\n"
