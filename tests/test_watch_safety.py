"""What watch must never do, with stand-ins for Caffe: leave a process of the command running
when watch is gone (killed by SIGKILL, or done), say "every value was finite" of values it never
saw, call a snapshot it did not ask for the state after the first bad iteration."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from watch_logs import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to list processes")


def watch_env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]), **extra)
    env.pop("GLOG_minloglevel", None)
    return env


def watch_command(*args):
    return [sys.executable, "-m", "caffe_nantools", "watch", *args]


def run_watch(folder, *args, env=None):
    return subprocess.run(
        watch_command(*args), cwd=folder, env=env or watch_env(), capture_output=True, timeout=60
    )


def running(marker: str):
    """The pids of the processes whose command line is ``marker`` (words)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode().split("\0")[:-1]
            with open(f"/proc/{entry}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except (OSError, ValueError, IndexError):
            continue
        if argv == marker.split() and not zombie:
            found.append(int(entry))
    return found


def gone_within(marker: str, seconds: float):
    deadline = time.monotonic() + seconds
    while running(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running(marker)


def family(seconds: int) -> str:
    """A script whose processes all sleep ``seconds`` (a number no other process uses): one in
    the background of its shell, one in a session of its own, one its parent left (an orphan)."""
    return f"sleep {seconds} & setsid sleep {seconds} & (sleep {seconds} &); echo ready; wait"


@pytest.mark.parametrize("script", ["bash", "sh"])
def test_no_process_of_the_command_outlives_a_watch_killed_by_sigkill(tmp_path, script):
    seconds = random.randrange(700000, 800000)
    proc = subprocess.Popen(
        watch_command("--log", "w.log", "--", script, "-c", family(seconds)),
        cwd=tmp_path,
        env=watch_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(tmp_path / "w.log", "ready")
        deadline = time.monotonic() + 10
        while len(running(f"sleep {seconds}")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(running(f"sleep {seconds}")) == 3
    finally:
        proc.kill()  # SIGKILL: watch runs no code of its own
        proc.wait()
    assert gone_within(f"sleep {seconds}", 5) == []


def test_what_the_command_leaves_running_when_it_ends_is_ended_and_named(tmp_path):
    seconds = random.randrange(800000, 900000)
    script = f"sleep {seconds} & setsid sleep {seconds} & echo started; exit 4"
    watched = run_watch(tmp_path, "--log", "w.log", "--", "bash", "-c", script)
    assert watched.returncode == 4  # the command's own status still
    assert running(f"sleep {seconds}") == []
    warning = next(line for line in watched.stderr.decode().splitlines() if "left " in line)
    assert warning.count(" (pid ") == 2 and "watch ended them" in warning


def test_a_command_that_ends_alone_leaves_nothing_to_name(tmp_path):
    watched = run_watch(tmp_path, "--log", "w.log", "--", "bash", "-c", "sleep 0.2 & wait; exit 3")
    assert watched.returncode == 3
    assert "left " not in watched.stderr.decode()


def test_signals_to_watch_reach_every_process_of_the_commands_group(tmp_path):
    # Two processes of one job, each writing when it gets SIGHUP: a terminal's hangup reaches both.
    script = (
        "import signal, sys, time\n"
        "def say(what):\n    sys.stdout.write(what + ' ' + sys.argv[1] + '\\n')\n    sys.stdout.flush()\n"
        "signal.signal(signal.SIGHUP, lambda s, f: (say('hup'), sys.exit(0)))\n"
        "say('up')\n"
        "time.sleep(60)\n"
    )
    (tmp_path / "hup.py").write_text(script)
    py = sys.executable
    proc = subprocess.Popen(
        watch_command(
            "--log", "w.log", "--", "bash", "-c", f"{py} hup.py a & {py} hup.py b & wait"
        ),
        cwd=tmp_path,
        env=watch_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(tmp_path / "w.log", "up a")
    wait_for(tmp_path / "w.log", "up b")
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=60)
    assert sorted(out.decode().split("\n")[-3:-1]) == ["hup a", "hup b"]


# -- never "every value was finite" of values watch did not see --------------------------------

CAFFE = ["caffe", "train", "-solver", "solver.prototxt"]


@pytest.mark.parametrize(
    "environ, command, expected",
    [
        ({}, CAFFE, {"GLOG_logtostderr": "1", "GLOG_minloglevel": "0"}),
        ({"GLOG_minloglevel": "2"}, CAFFE, {"GLOG_minloglevel": "0"}),
        ({"GLOG_minloglevel": "1"}, ["python3", "train.py"], {"GLOG_minloglevel": "0"}),
        ({"GLOG_log_dir": "/logs"}, CAFFE, {"GLOG_log_dir": "/logs", "GLOG_alsologtostderr": "1"}),
        ({"GLOG_logtostderr": "0"}, ["bash", "run.sh"], {"GLOG_alsologtostderr": "1"}),
        ({"GLOG_stderrthreshold": "0", "GLOG_log_dir": "/l"}, CAFFE, {"GLOG_stderrthreshold": "0"}),
        ({}, CAFFE + ["-nologtostderr"], {"GLOG_alsologtostderr": "1"}),
        ({}, CAFFE + ["--minloglevel=0"], {"GLOG_minloglevel": "0"}),
    ],
)
def test_the_command_runs_with_glog_showing_info_lines_on_stderr(environ, command, expected):
    from caffe_nantools.watch.environment import child_env

    env, notes = child_env(environ, command)
    assert {name: env.get(name) for name in expected} == expected
    changed = any(environ.get(name) != value for name, value in expected.items() if name in environ)
    assert bool(notes) == (changed or "GLOG_alsologtostderr" in expected)


@pytest.mark.parametrize(
    "flags, named",
    [
        (["-minloglevel=1"], "-minloglevel=1"),
        (["--minloglevel", "2"], "-minloglevel=2"),
        (["-nologtostderr", "-alsologtostderr=false"], "-alsologtostderr=false"),
        (["-logtostderr=0", "-noalsologtostderr", "-stderrthreshold", "3"], "-stderrthreshold=3"),
    ],
)
def test_caffe_flags_that_hide_info_lines_are_refused_with_exit_2(tmp_path, flags, named):
    watched = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE, *flags)
    assert watched.returncode == 2 and len(watched.stderr.splitlines()) == 1
    assert named in watched.stderr.decode() and "INFO lines" in watched.stderr.decode()
    assert list(tmp_path.iterdir()) == []  # nothing ran, no log


@pytest.mark.parametrize(
    "script, status, said",
    [
        ("true", 2, "no line of a Caffe log"),
        ("echo epoch 1 loss 0.3; echo done", 2, "no line of a Caffe log"),
        ("exit 5", 5, "no line of a Caffe log"),
        (  # Caffe's lines, without any value: INFO hidden by the command itself
            "echo 'W0101 00:00:00.000000 1 caffe.cpp:1] a warning' >&2;"
            "echo 'I0101 00:00:00.000000 1 solver.cpp:289] Solving net' >&2",
            2,
            "no loss line",
        ),
    ],
)
def test_a_command_that_showed_no_value_is_not_an_all_clear(tmp_path, script, status, said):
    watched = run_watch(tmp_path, "--log", "w.log", "--", "sh", "-c", script)
    last = watched.stderr.decode().splitlines()[-1]
    assert watched.returncode == status
    assert said in last and "checked nothing" in last and "finite" not in last


def test_a_finite_run_says_how_much_it_checked(tmp_path):
    fake = [sys.executable, os.path.join(HERE, "fake_caffe.py"), "train", "-iterations", "6"]

    def run(*args):
        return run_watch(tmp_path, *args, "--", *fake)

    text, as_json = run("--log", "text.log"), run("--log", "json.log", "--json")
    assert text.returncode == as_json.returncode == 0
    last = text.stderr.decode().splitlines()[-1]
    assert "every value was finite (6 displayed iterations, the last 5)" in last
    result = json.loads(as_json.stdout)
    assert result["checked"] is True and result["displayed"] == 6


def test_a_python_layers_module_gets_no_bytecode_beside_it(tmp_path):
    (tmp_path / "layer_module.py").write_text("VALUE = 3\n")
    env = watch_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    script = (
        "import os, layer_module; print(os.environ['PYTHONDONTWRITEBYTECODE'], layer_module.VALUE)"
    )
    watched = run_watch(
        tmp_path,
        "--log",
        "w.log",
        "--",
        sys.executable,
        "-c",
        script,
        env=dict(env, PYTHONPATH=os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])),
    )
    assert watched.stdout.decode().split() == ["1", "3"]
    assert not (tmp_path / "__pycache__").exists()


def test_a_bytecode_setting_of_the_users_is_kept(tmp_path):
    env = dict(watch_env(), PYTHONPYCACHEPREFIX=str(tmp_path / "mine"))
    watched = run_watch(
        tmp_path, "--log", "w.log", "--", "sh", "-c", "echo $PYTHONPYCACHEPREFIX", env=env
    )
    assert watched.stdout.decode().strip() == str(tmp_path / "mine")


# -- a snapshot is named for what it is -----------------------------------------------------------


def stopped_result(periodic, iterations, stopped="nonfinite", received=()):
    from caffe_nantools.watch.report import Seen, Snapshot, WatchResult

    snapshots = [
        Snapshot(100 + k, (f"snap_iter_{i}.caffemodel", f"snap_iter_{i}.solverstate"))
        for k, i in enumerate(iterations)
    ]
    return WatchResult(
        command=["caffe", "train", "-solver", "solver.prototxt"],
        log="w.log",
        returncode=0,
        stopped=stopped,
        went_bad=stopped is not None,
        received=list(received),
        seen=Seen(True, 12, 11),
        snapshots=snapshots,
        requested=snapshots,
        last_good=None,
        diagnosis=None,
        periodic=periodic,
    )


def snapshot_lines(result):
    return [line for line in result.format().splitlines() if line.startswith("snapshot: ")]


@pytest.mark.parametrize(
    "periodic, iterations, asked",
    [
        (10, [10], []),  # Caffe's own snapshot at the iteration it stopped: still the user's
        (10, [10, 11], [11]),
        (4, [12, 13, 16], [13]),
        (0, [7], [7]),
        (1000, [9, 10], [9, 10]),
    ],
)
def test_only_the_snapshot_watch_asked_for_is_the_state_after_the_first_bad_iteration(
    periodic, iterations, asked
):
    result = stopped_result(periodic, iterations)
    lines = snapshot_lines(result)
    assert len(lines) == len(iterations)
    for line, i in zip(lines, iterations):
        if i in asked[:1]:
            assert f"the state just after the first bad iteration was seen (iteration {i};" in line
        elif periodic and i % periodic == 0:
            assert f"the solver's periodic snapshot (snapshot: {periodic}) of iteration {i}" in line
            assert "state just after" not in line
        else:
            assert f"of iteration {i}, written as Caffe stopped" in line
    assert result.to_dict()["snapshot"] == [
        f"snap_iter_{i}.{kind}" for i in asked for kind in ("caffemodel", "solverstate")
    ]


def test_without_the_solver_no_snapshot_is_called_the_state_after_the_first_bad_iteration():
    (line,) = snapshot_lines(stopped_result(None, [8]))
    assert "state just after" not in line and "cannot tell it from a periodic one" in line


def test_snapshots_after_a_signal_passed_on_are_named_with_their_iteration():
    lines = snapshot_lines(stopped_result(5, [5, 6], stopped=None, received=[signal.SIGINT]))
    assert "periodic snapshot (snapshot: 5) of iteration 5" in lines[0]
    assert "of iteration 6, written after watch passed on SIGINT" in lines[1]
