"""watch reads the command's output as diagnose reads a log, second pass included: a non-finite
value in any line layout stops the run, a crash in its output is never an all-clear, and names
that hold "nan" or "inf" leave a healthy run alone."""

import signal
import subprocess
import sys

import pytest

from caffe_nantools.watch.effects import Effects
from caffe_nantools.watch.monitor import Monitor
from test_watch import run_watch
from watch_logs import STAMP, training_log

#: Lines that hold a NaN in a layout the reading of Caffe's own lines does not know.
UNREAD = {
    "a fork's loss layer": f"{STAMP}loss_layer.cpp:213] total loss: nan",
    "a Python layer's print": "loss: nan",
    "a metric beside a finite loss": f"{STAMP}solver.cpp:258]     Train net output #1: accuracy = -nan",
    "a Windows build's NaN in a print": "  rpn_loss_bbox = 1.#QNAN",
    "two records glued": f"{STAMP}solver.cpp:112] Iteration 2, lr = 0.01"
    f"{STAMP}net.cpp:593]     [Forward] Layer ip1, top blob ip1 data: -nan",
}


def monitor():
    return Monitor(Effects.of(["caffe", "train", "-solver", "s.prototxt"]), clock=lambda: 0.0)


def with_line(iterations: int, after: int, line: str) -> str:
    """A healthy log without debug_info, ``line`` after iteration ``after``'s lines."""
    lines = training_log(iterations, debug=False).splitlines(keepends=True)
    # Each iteration: loss, output, rate (after the Solving line).
    at = 1 + 3 * (after + 1)
    return "".join(lines[:at] + [line + "\n"] + lines[at:])


@pytest.mark.parametrize("layout", sorted(UNREAD))
@pytest.mark.parametrize("after", [0, 3])
def test_a_nan_in_any_layout_stops_the_run(layout, after):
    m = monitor()
    log = with_line(8, after, UNREAD[layout])
    events = m.feed(log.encode())
    (stop,) = [e for e in events if e.kind == "stop"]
    line = log.splitlines().index(UNREAD[layout]) + 1
    assert stop.line == line and f"line {line}" in stop.message
    assert f"after iteration {after}" in stop.message
    assert m.stop_reason == "nonfinite" and m.went_bad
    assert [e.signal for e in events if e.signal] == [signal.SIGHUP]


def test_the_line_cut_across_two_pieces_still_stops_it_at_its_line():
    m = monitor()
    log = with_line(6, 2, UNREAD["a fork's loss layer"]).encode()
    cut = log.index(b"total loss: n") + len(b"total loss: n")
    assert m.feed(log[:cut]) == []
    stop = next(e for e in m.feed(log[cut:]) if e.kind == "stop")
    assert stop.line == 1 + 3 * 3 + 1


def test_debug_infos_norms_alone_are_enough_to_stop_it():
    # GLOG_minloglevel=2 set by the script: only the ERROR lines of debug_info reach watch.
    norms = (
        "E1121 07:12:32.521485 10203 net.cpp:721]     [Backward] All net params (data, diff): "
        "L1 norm = (6.2, {diff}); L2 norm = (2.6, {diff})\n"
    )
    log = "".join(norms.format(diff=d) for d in ("2.1", "3.5", "nan", "nan"))
    m = monitor()
    stop = next(e for e in m.feed(log.encode()) if e.kind == "stop")
    assert stop.line == 3 and "L1 norm = (6.2, nan)" in stop.message


def test_a_nan_in_the_debug_info_trace_is_still_told_at_its_iteration():
    m = monitor()
    stop = next(e for e in m.feed(training_log(9, bad_at=5).encode()) if e.kind == "stop")
    assert "at iteration 5" in stop.message and "after iteration" not in stop.message


@pytest.mark.parametrize(
    "line",
    [
        f"{STAMP}net.cpp:593]     [Forward] Layer nan_guard, top blob nan_guard data: 0.5",
        f"{STAMP}layer_factory.hpp:77] Creating layer info_fc",
        f"{STAMP}net.cpp:84] Creating Layer info_fc",
        f"{STAMP}net.cpp:122] Setting up nan_guard",
        f"{STAMP}solver.cpp:243] Iteration 0 (-nan iter/s, 0.08s/20 iters), loss = 2.3",
        '  name: "nan_guard"',
        "printing from my layer: no nan or inf here",
    ],
)
def test_names_that_hold_nan_or_inf_are_no_stop(line):
    m = monitor()
    events = m.feed(with_line(6, 2, line).encode()) + m.close()
    assert [e for e in events if e.kind == "stop"] == [] and not m.went_bad


# -- through a process: never exit 0 on a crash or a NaN in the output --------------------------

SCRIPT = (
    "import sys\n"
    "sys.stderr.write(open(sys.argv[1]).read())\n"
    "sys.stderr.write(sys.argv[2] + '\\n')\n"
    "sys.stderr.flush()\n"
)


def scripted(tmp_path, tail: str, status: int = 0):
    (tmp_path / "train.log.in").write_text(training_log(4, debug=False))
    command = f"{sys.executable} -c {subprocess.list2cmdline([SCRIPT])} train.log.in '{tail}'; exit {status}"
    return run_watch(tmp_path, "--log", "w.log", "--", "sh", "-c", command)


@pytest.mark.parametrize(
    "crash",
    [
        "Segmentation fault (core dumped)",
        "Killed",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "F1121 07:12:40.000000 10203 syncedmem.cpp:56] Check failed: error == cudaSuccess (2 vs. 0)  out of memory",
    ],
)
def test_a_crash_in_the_output_of_a_command_that_ends_well_is_exit_1(tmp_path, crash):
    run = scripted(tmp_path, crash)
    answer = run.stdout.decode()
    assert run.returncode == 1, run.stderr[-2000:]
    assert answer.startswith("w.log: cause: caffe_abort")
    (summary,) = [line for line in answer.splitlines() if line.startswith("watch: ")]
    assert "ended with status 0, but its output shows an abort (line 14: " in summary
    assert "finite" not in summary


def test_a_crash_keeps_the_commands_own_failing_status(tmp_path):
    assert scripted(tmp_path, "Segmentation fault", status=139).returncode == 139


def test_a_nan_in_a_print_at_the_end_is_exit_1(tmp_path):
    run = scripted(tmp_path, "my_metric: nan")
    assert run.returncode == 1
    assert (
        "after iteration 3 (in a line whose layout diagnose does not read)" in run.stderr.decode()
    )
    assert "first_nonfinite" not in run.stdout.decode()
    assert run.stdout.decode().startswith("w.log: cause: ")


def test_a_python_print_reaches_watch_as_it_is_printed_and_stops_the_run(tmp_path):
    # Not flushed, and the script goes on: watch sees it only if Python's stdout is unbuffered.
    script = "import time\nprint('epoch 1 metric: nan')\ntime.sleep(60)\n"
    run = run_watch(
        tmp_path, "--log", "w.log", "--timeout", "5", "--", sys.executable, "-c", script
    )
    assert run.returncode == 1
    assert "was stopped by watch at the first non-finite value" in run.stderr.decode()
