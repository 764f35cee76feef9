"""watch around a real process (a stand-in for `caffe train` that prints Caffe's lines and
acts on its signals as Caffe does): the output passed through, the log, the stop at the first
NaN and its signals, signals passed on, exit statuses and one-line errors."""

import os
import signal
import subprocess
import sys
import time

import pytest

from watch_logs import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAKE = [sys.executable, os.path.join(HERE, "fake_caffe.py"), "train"]


def watch_env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]), **extra)
    env.pop("GLOG_minloglevel", None)
    return env


def run_watch(folder, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "caffe_nantools", "watch", *args],
        cwd=folder,
        env=env or watch_env(),
        capture_output=True,
        timeout=120,
    )


def own_lines(stderr: bytes):
    return [
        line for line in stderr.decode().splitlines() if line.startswith("caffe-nantools watch:")
    ]


def without_own_lines(stderr: bytes) -> bytes:
    return b"".join(
        line
        for line in stderr.splitlines(keepends=True)
        if not line.startswith(b"caffe-nantools watch:")
    )


WRITER = r"""
import os, sys, time
out, err = sys.stdout.buffer, sys.stderr.buffer
for k in range(300):
    out.write(b"stdout %d \xff\xfe raw bytes\n" % k if k % 7 else b"half a line, ")
    err.write(b"I0101 00:00:00.000000 1 x.cpp:1] line %d of stderr\n" % k)
    if k % 50 == 0:
        out.flush(); err.flush(); time.sleep(0.01)
out.write(b"the last line has no break"); err.write(b"E0101 x.cpp:1] done\n")
sys.exit(3)
"""


def test_every_byte_passes_through_in_order_to_each_own_output_and_the_status_is_the_commands(
    tmp_path,
):
    plain = subprocess.run([sys.executable, "-c", WRITER], capture_output=True)
    watched = run_watch(tmp_path, "--log", "run.log", "--", sys.executable, "-c", WRITER)
    assert watched.returncode == plain.returncode == 3
    assert watched.stdout == plain.stdout
    assert without_own_lines(watched.stderr) == plain.stderr
    log = (tmp_path / "run.log").read_bytes()
    # The log holds both outputs, line by line: the last line of one is ended there.
    assert sorted(log.splitlines()) == sorted((plain.stdout + b"\n" + plain.stderr).splitlines())
    assert own_lines(watched.stderr)[0] == "caffe-nantools watch: logging to run.log"
    assert "ended with status 3" in own_lines(watched.stderr)[-1]


def test_a_command_killed_by_a_signal_exits_128_plus_it(tmp_path):
    watched = run_watch(tmp_path, "--", "sh", "-c", "kill -USR1 $$")
    assert watched.returncode == 128 + signal.SIGUSR1
    assert "killed by SIGUSR1" in own_lines(watched.stderr)[-1]


def test_the_default_log_is_named_by_the_time_and_glog_goes_to_stderr(tmp_path):
    watched = run_watch(tmp_path, "--", "sh", "-c", "echo GLOG_logtostderr=$GLOG_logtostderr")
    assert watched.stdout == b"GLOG_logtostderr=1\n"
    logs = list(tmp_path.glob("caffe-train-*.log"))
    assert len(logs) == 1 and logs[0].read_bytes() == b"GLOG_logtostderr=1\n"
    assert len(logs[0].name) == len("caffe-train-20240101-120000.log")


def test_glog_variables_the_user_set_are_kept_and_info_lines_reach_stderr_too(tmp_path):
    watched = run_watch(
        tmp_path,
        "--",
        "sh",
        "-c",
        "echo [$GLOG_logtostderr] [$GLOG_log_dir] [$GLOG_alsologtostderr]",
        env=watch_env(GLOG_log_dir=str(tmp_path)),
    )
    assert watched.stdout == f"[] [{tmp_path}] [1]\n".encode()
    assert any("runs with GLOG_alsologtostderr=1 too" in line for line in own_lines(watched.stderr))


def test_at_the_first_nan_caffe_snapshots_then_stops_and_watch_exits_1(tmp_path):
    watched = run_watch(
        tmp_path, "--log", "w.log", "--", *FAKE, "-nan_at", "5", "-iterations", "200"
    )
    assert watched.returncode == 1
    messages = own_lines(watched.stderr)
    assert any("first non-finite value at iteration 5" in m for m in messages)
    assert any("SIGHUP: -sighup_effect snapshot" in m for m in messages)
    assert any("SIGINT: -sigint_effect stop" in m for m in messages)
    out = watched.stdout.decode()
    snapshot = next(line for line in out.splitlines() if line.startswith("snapshot: "))
    first = snapshot.split()[1].rstrip(",")
    assert (tmp_path / first).exists() and int(first.split("_iter_")[1].split(".")[0]) in (6, 7)
    # Not `caffe train -solver`: without a solver to read, watch cannot tell its own from a periodic one.
    assert "written after watch stopped the run" in snapshot
    assert out.startswith("w.log: cause: ")  # diagnose's answer comes first
    log = (tmp_path / "w.log").read_text()
    assert "Optimization stopped early." in log and "Iteration 15," not in log


def test_the_last_good_snapshot_is_named(tmp_path):
    # The stand-in writes one on SIGHUP: -sigint_effect snapshot makes a Ctrl-C before the nan one.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caffe_nantools",
            "watch",
            "--log",
            "w.log",
            "--json",
            "--",
            *FAKE,
            "-nan_at",
            "40",
            "-iterations",
            "200",
            "-sigint_effect",
            "snapshot",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=watch_env(),
    )
    wait_for(tmp_path / "w.log", "Iteration 10,")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    import json

    result = json.loads(out)
    assert proc.returncode == 1 and result["stopped"] == "nonfinite"
    good = result["last_good_snapshot"]
    assert (
        good
        and good[0].endswith(".caffemodel")
        and 10 < int(good[0].split("_iter_")[1].split(".")[0]) <= 40
    )
    assert (
        result["received"] == ["SIGINT"]
        and result["diagnosis"]["first_nonfinite"]["iteration"] == 40
    )
    assert (
        int(result["snapshot"][0].split("_iter_")[1].split(".")[0]) > 40
    )  # the one asked for at the stop


def test_a_command_deaf_to_signals_is_terminated_then_killed(tmp_path):
    start = time.monotonic()
    watched = run_watch(
        tmp_path, "--timeout", "0.5", "--", *FAKE, "-nan_at", "2", "-iterations", "100000", "-deaf"
    )
    assert watched.returncode == 1
    messages = own_lines(watched.stderr)
    assert any("no snapshot within 0.5 s" in m for m in messages)
    assert any(m.endswith("sent SIGKILL") for m in messages)
    assert time.monotonic() - start < 30


def test_no_snapshot_stops_with_sigterm_and_no_snapshot_is_written(tmp_path):
    watched = run_watch(
        tmp_path, "--no-snapshot", "--", *FAKE, "-nan_at", "3", "-iterations", "200"
    )
    assert watched.returncode == 1 and not list(tmp_path.glob("snap_*"))
    assert any(m.endswith("sent SIGTERM") for m in own_lines(watched.stderr))


@pytest.mark.parametrize(
    "signum, effect", [(signal.SIGINT, "stop"), (signal.SIGHUP, "snapshot"), (signal.SIGTERM, None)]
)
def test_a_signal_to_watch_reaches_the_command_which_acts_as_configured(tmp_path, signum, effect):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caffe_nantools",
            "watch",
            "--log",
            "w.log",
            "--",
            *FAKE,
            "-iterations",
            "60",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=watch_env(),
    )
    wait_for(tmp_path / "w.log", "Iteration 3,")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    log = (tmp_path / "w.log").read_text()
    name = signal.Signals(signum).name
    assert any(f"got {name}: passed it on" in m for m in own_lines(err))
    if effect is None:  # Caffe leaves SIGTERM to its default: it ends at once
        assert proc.returncode == 128 + signal.SIGTERM and "snapshot" not in out.decode()
        return
    assert proc.returncode == 0
    assert ("Optimization stopped early." in log) == (effect == "stop")
    assert "Iteration 59," in log or effect == "stop"
    snapshot = next(line for line in out.decode().splitlines() if line.startswith("snapshot: "))
    assert f"written after watch passed on {name}" in snapshot
    assert (tmp_path / snapshot.split()[1].rstrip(",:")).exists()


def test_a_command_that_does_not_exist_is_one_line_and_exit_2(tmp_path):
    watched = run_watch(tmp_path, "--", "no-such-trainer", "train")
    assert watched.returncode == 2
    assert (
        watched.stderr.decode()
        == "caffe-nantools watch: error: no-such-trainer: command not found\n"
    )
    assert list(tmp_path.iterdir()) == []  # no log left behind


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no command to watch"),
        (
            ["--log", "solver.prototxt", "--", "caffe", "train", "-solver=solver.prototxt"],
            "is the input COMMAND",
        ),
        (["--log", "old.log", "--", "true"], "old.log: already exists"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "solver.prototxt").write_text("base_lr: 0.1\n")
    (tmp_path / "old.log").write_text("kept\n")
    watched = run_watch(tmp_path, *args)
    assert watched.returncode == 2 and len(watched.stderr.splitlines()) == 1
    assert message in watched.stderr.decode()
    assert (tmp_path / "old.log").read_text() == "kept\n" and (
        tmp_path / "solver.prototxt"
    ).read_text() == "base_lr: 0.1\n"
