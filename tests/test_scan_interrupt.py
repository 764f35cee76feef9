"""Ctrl-C during a scan in several processes: exit 130 and one line, from the parent and from
the children alike, and no child left running."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(
    not os.path.exists("/proc/self/task"), reason="needs Linux's /proc to find the children"
)
@pytest.mark.parametrize(
    "to_group", [True, False]
)  # Ctrl-C at a terminal; a kill of the parent alone
@pytest.mark.parametrize("wait", [0.0, 0.3])
def test_ctrl_c_during_a_scan_with_workers_is_exit_130_and_one_line(tmp_path, to_group, wait):
    process = scan_with_workers(tmp_path, "--max-findings", "3")
    try:
        interrupt(process, to_group, wait)
    finally:
        if process.poll() is None:  # a hang: no process of the test left behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def as_from_a_terminal():
    """In the child, before it runs the CLI: Ctrl-C's default action, as a shell in a terminal
    starts a command (a suite started in the background, ``pytest &``, has SIGINT ignored, and
    a command inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def scan_with_workers(folder, *options):
    """The CLI scanning a long image list with 2 workers, in a session of its own."""
    source = folder / "list.txt"
    source.write_text("".join(f"img{i}.png {i % 7}\n" for i in range(600000)))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [
        sys.executable,
        "-m",
        "caffe_nantools",
        "scan",
        str(source),
        "--backend",
        "imagelist",
    ]
    return subprocess.Popen(
        command + ["--workers", "2", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,
    )


def started_children(process):
    """The worker processes, once they are there (none if the scan ended first)."""
    deadline = time.monotonic() + 30
    while not children_of(process.pid) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    return children_of(process.pid)


def interrupt(process, to_group, wait):
    children = started_children(process)
    assert children, "the scan ended before it could be interrupted: make the list longer"
    time.sleep(wait)
    (os.killpg if to_group else os.kill)(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert err.decode() == "caffe-nantools scan: interrupted; no output was left half-written\n"
    time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)]


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the kernel ends a worker with its parent on Linux only",
)
def test_workers_end_when_their_parent_is_killed(tmp_path):
    process = scan_with_workers(tmp_path, "-q")
    try:
        children = started_children(process)
        assert children, "the scan ended before its parent could be killed: make the list longer"
        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while [pid for pid in children if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if alive(pid)]
    finally:
        # whatever is left of the group, a failed test's orphans too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_ctrl_c_inside_a_finalizer_comes_again_where_it_can_stop_the_command():
    # Found by CI: SIGINT landed in multiprocessing's Connection.__del__, where Python only
    # prints a KeyboardInterrupt ("Exception ignored in ..."), and the scan ran to its end.
    from types import SimpleNamespace

    from caffe_nantools.cli import _interrupt

    finalizer = SimpleNamespace(f_code=SimpleNamespace(co_name="__del__"))
    came = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        _interrupt(signal.SIGINT, finalizer)  # does not raise there
        deadline = time.monotonic() + 5
        while not came and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert came == [signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):
        _interrupt(signal.SIGINT, SimpleNamespace(f_code=SimpleNamespace(co_name="scan")))
