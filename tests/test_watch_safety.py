"""What watch must never do, with stand-ins for Caffe: leave a process of the command running
when watch is gone (killed by SIGKILL, or done), say "every value was finite" of values it never
saw, call a snapshot it did not ask for the state after the first bad iteration."""

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
    wait_for(tmp_path / "w.log", "ready")
    deadline = time.monotonic() + 10
    while len(running(f"sleep {seconds}")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(running(f"sleep {seconds}")) == 3
    proc.kill()  # SIGKILL: watch runs no code of its own
    proc.wait()
    assert gone_within(f"sleep {seconds}", 5) == []


def test_what_the_command_leaves_running_when_it_ends_is_ended_and_named(tmp_path):
    seconds = random.randrange(800000, 900000)
    script = f"sleep {seconds} & setsid sleep {seconds} & echo started; exit 4"
    watched = subprocess.run(
        watch_command("--log", "w.log", "--", "bash", "-c", script),
        cwd=tmp_path,
        env=watch_env(),
        capture_output=True,
        timeout=60,
    )
    assert watched.returncode == 4  # the command's own status still
    assert running(f"sleep {seconds}") == []
    warning = next(line for line in watched.stderr.decode().splitlines() if "left " in line)
    assert warning.count("sleep (pid ") == 2 and "watch ended them" in warning


def test_a_command_that_ends_alone_leaves_nothing_to_name(tmp_path):
    watched = subprocess.run(
        watch_command("--log", "w.log", "--", "bash", "-c", "sleep 0.2 & wait; exit 3"),
        cwd=tmp_path,
        env=watch_env(),
        capture_output=True,
        timeout=60,
    )
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
