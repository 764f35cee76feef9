"""The suite's one runner of `caffe train` (tests/caffe_train.py), against a stand-in `caffe`
on PATH: it keeps the log, and fails the test with the log's end when Caffe exits otherwise
than the test expects."""

import os
import stat

import pytest

from caffe_train import caffe_train

#: A stand-in for `caffe`: says how it was called, prints a long log, ends as told.
STAND_IN = """#!/bin/sh
echo "called with: $* in $(pwd); logtostderr=$GLOG_logtostderr minloglevel=$GLOG_minloglevel" >&2
echo "PYTHONPATH=$PYTHONPATH" >&2
i=0
while [ $i -lt $LOG_LINES ]; do echo "I0101 00:00:00.000000 1 solver.cpp:1] log line $i" >&2; i=$((i+1)); done
[ -n "$PAUSE" ] && exec sleep "$PAUSE"
printf "$LAST" >&2
exit $CODE
"""


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    caffe = bin_dir / "caffe"
    caffe.write_text(STAND_IN)
    caffe.chmod(caffe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PAUSE", raising=False)
    work = tmp_path / "run"
    work.mkdir()

    def ends(code, last="", lines=5):
        monkeypatch.setenv("CODE", str(code))
        monkeypatch.setenv("LAST", last)
        monkeypatch.setenv("LOG_LINES", str(lines))
        return work

    return ends


@pytest.mark.parametrize(
    "solver, args", [("solver.prototxt", ()), ("s2.prototxt", ("-iterations", "3"))]
)
def test_a_finished_training_gives_its_log_kept_beside_the_solver(stand_in, solver, args):
    folder = stand_in(0, "I0101 solver.cpp:2] Optimization Done.\n")
    trained = caffe_train(folder, *args, solver=solver)
    assert trained.returncode == 0 and trained.path == folder / "train.log"
    assert trained.path.read_text() == trained.log and trained.log.endswith("Optimization Done.\n")
    called = trained.log.splitlines()[0]
    assert called == (
        f"called with: train -solver {' '.join((solver,) + args)} in {folder}; "
        "logtostderr=1 minloglevel=0"
    )
    python_path = trained.log.splitlines()[1][len("PYTHONPATH=") :].split(os.pathsep)
    assert python_path[0] == str(folder) and os.path.dirname(__file__) in python_path


@pytest.mark.parametrize(
    "code, last, fails, said",
    [
        (1, "F0101 net.cpp:9] Check failed: bad thing\n", False, "exited 1 before it finished"),
        (
            0,
            "I0101 solver.cpp:3] Optimization stopped early.\n",
            False,
            "exited 0 before it finished",
        ),
        (0, "I0101 solver.cpp:2] Optimization Done.\n", True, "was to fail and exited 0"),
    ],
)
def test_an_unexpected_end_fails_the_test_with_the_end_of_the_log(
    stand_in, code, last, fails, said
):
    folder = stand_in(code, last, lines=400)
    with pytest.raises(pytest.fail.Exception) as failure:
        caffe_train(folder, fails=fails)
    message = str(failure.value)
    assert said in message and message.endswith(last) and "log line 399" in message
    assert "called with" not in message  # the end of a long log, not all of it
    assert (folder / "train.log").read_text().endswith(last)


@pytest.mark.parametrize("code", [1, 134])
def test_a_training_that_is_to_fail_gives_its_log(stand_in, code):
    folder = stand_in(code, "F0101 layer.cpp:7] Check failed: data_\n")
    trained = caffe_train(folder, fails=True)
    assert trained.returncode == code and "Check failed: data_" in trained.log


def test_a_training_that_runs_over_its_time_fails_with_what_it_logged(stand_in, monkeypatch):
    folder = stand_in(0)
    monkeypatch.setenv("PAUSE", "5")
    with pytest.raises(pytest.fail.Exception) as failure:
        caffe_train(folder, timeout=1)
    assert "ran over 1 s" in str(failure.value) and "log line 4" in str(failure.value)
