"""watch --hunt and --resume where no hunt can run, around the stand-in `caffe` (its solver
names a net that does not exist, and the host has no pycaffe): one line says why and gives the
hunt command to run, from the last finite snapshot over the failing window when there is one;
the resume command is the user's own with the fixed solver and the snapshot; the exit status is
the resumed training's. What a hunt finds and the resumed run: test_watch_hunt_caffe.py."""

import json
import os
import subprocess
import sys

import pytest

from caffe_nantools.cause import Cause
from caffe_nantools.cli import main
from caffe_nantools.hunt import HuntReport
from caffe_nantools.diagnose import Verdict
from caffe_nantools.watch import WatchError, watch
from caffe_nantools.watch.follow_up import MARGIN, resumed
from caffe_nantools.watch.report import Hunted
from test_watch import HERE, watch_env
from test_watch_keep_good import keep_watch, stand_in
from test_watch_safety import stopped_result


def test_a_hunt_that_cannot_run_says_why_and_gives_the_command_over_the_failing_window(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(
        tmp_path,
        "-nan_at",
        "45",
        "-iterations",
        "300",
        "-pace",
        "0.02",
        flags=("--hunt", "--json"),
    )
    assert run.returncode == 1, run.stderr.decode()[-2000:]
    result = json.loads(run.stdout)
    good, first = result["last_good_iteration"], result["diagnosis"]["first_nonfinite"]["iteration"]
    assert 0 < good <= first == 45
    hunted = result["hunt"]
    assert hunted["report"] is None and hunted["resume"] is None
    assert hunted["no_hunt"].startswith("hunt could not run: ")
    assert hunted["no_hunt"].endswith(
        "once that is fixed, run `caffe-nantools hunt solver.prototxt --snapshot "
        f"snap_iter_{good}.solverstate --iters {first - good + MARGIN}`"
    )
    assert "\n" not in hunted["no_hunt"]
    assert result["resumed"] is None


def test_without_a_finite_snapshot_the_hunt_to_run_trains_from_the_start(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(tmp_path, "-nan_at", "12", "-iterations", "100", keep="0", flags=("--hunt",))
    assert run.returncode == 1
    said = [line for line in run.stdout.decode().splitlines() if line.startswith("no hunt: ")]
    assert said == [
        "no hunt: no finite snapshot from before the first non-finite value to start from; run "
        "`caffe-nantools hunt solver.prototxt` to train it from the start"
    ]


def test_a_script_has_no_solver_to_hunt(tmp_path):
    script = [sys.executable, os.path.join(HERE, "fake_caffe.py"), "train", "-nan_at", "8"]
    run = subprocess.run(
        [sys.executable, "-m", "caffe_nantools", "watch", "--log", "w.log", "--hunt", "--"]
        + script,
        cwd=tmp_path,
        env=watch_env(),
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 1
    out = run.stdout.decode()
    assert (
        "no hunt: the command is not `caffe train -solver S`, so watch knows no solver to hunt; "
        "run `caffe-nantools hunt SOLVER`" in out
    )


def test_a_healthy_run_has_nothing_to_hunt_and_ends_as_it_did(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(tmp_path, "-iterations", "20", flags=("--hunt", "--resume", "--json"))
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    result = json.loads(run.stdout)
    assert result["hunt"] is None and result["resumed"] is None and result["exit_status"] == 0


def test_resume_needs_hunt(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["watch", "--resume", "--", "true"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "caffe-nantools watch: error: --resume: needs --hunt (it resumes with the fix the hunt verified)"
    ]
    with pytest.raises(WatchError, match=r"resume=True: needs hunt=True"):
        watch(["true"], resume=True)
    assert os.listdir(tmp_path) == []  # refused before a log was made


@pytest.mark.parametrize(
    "command, expected",
    [
        (
            ["caffe", "train", "-solver", "s.prototxt"],
            [
                "caffe",
                "train",
                "-solver",
                "F/solver.prototxt",
                "-snapshot",
                "snap_iter_8.solverstate",
            ],
        ),
        (
            [
                "/opt/caffe/bin/caffe",
                "train",
                "--solver=s.prototxt",
                "-gpu",
                "0,1",
                "-weights",
                "w.caffemodel",
            ],
            ["/opt/caffe/bin/caffe", "train", "-gpu", "0,1", "-solver", "F/solver.prototxt"]
            + ["-snapshot", "snap_iter_8.solverstate"],
        ),
        (
            [
                "caffe.bin",
                "train",
                "-snapshot=old.solverstate",
                "-sighup_effect",
                "none",
                "-solver",
                "s",
            ],
            ["caffe.bin", "train", "-sighup_effect", "none", "-solver", "F/solver.prototxt"]
            + ["-snapshot", "snap_iter_8.solverstate"],
        ),
    ],
)
def test_the_resume_command_is_the_users_own_from_the_snapshot_with_the_fixed_solver(
    command, expected
):
    assert resumed(command, "F/solver.prototxt", "snap_iter_8.solverstate") == expected


def test_the_exit_status_is_the_resumed_trainings_and_the_report_shows_both_runs():
    result = stopped_result(0, [9])
    report = HuntReport(Verdict(Cause.NONE), "hunt-dir")
    result.hunted = Hunted(
        report,
        "snap_iter_6.solverstate",
        no_resume="hunt found no cause from snap_iter_6.solverstate",
    )
    assert result.exit_status == 1
    text = result.format()
    assert "\nhunt from snap_iter_6.solverstate:\n  cause: none\n" in text
    assert "resume: none: hunt found no cause from snap_iter_6.solverstate" in text
    result.resumed = stopped_result(0, [], stopped=None)
    assert result.exit_status == result.resumed.exit_status == 0
    assert result.to_dict()["exit_status"] == 0 and result.to_dict()["resumed"]["status"] == 0
    assert "\nresumed:\n  watch: `caffe train -solver solver.prototxt` ended with status 0" in (
        result.format()
    )
