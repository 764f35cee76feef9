"""watch around the real `caffe train`, where it must not fail its user: glog told to hide
Caffe's INFO lines (watch shows them, or says it checked nothing), `kill -9` of watch (no Caffe
process runs on), the solver's periodic snapshots (named as what they are), an lr_policy that
grows the rate (the cause, not "lower base_lr"), advice naming the user's own files."""

import json
import os
import signal
import subprocess
import time

import pytest

from caffe_train import train_command
from test_diagnose_caffe import write_solver
from test_watch_caffe import displayed, env, interrupted_watch, training, watch_args
from watch_logs import wait_for

CAFFE = train_command()


def run_watch(folder, *args, **environ):
    return subprocess.run(
        watch_args(*args),
        cwd=folder,
        env=dict(env(folder), **environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def own_lines(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("caffe-nantools watch:")]


@pytest.mark.parametrize("level", ["1", "2", "3"])
def test_glog_minloglevel_in_the_users_environment_does_not_blind_watch(caffe, tmp_path, level):
    training(tmp_path, base_lr=0.3, max_iter=2000)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE, GLOG_minloglevel=level)
    assert run.returncode == 1, run.stderr[-3000:]
    ours = own_lines(run.stderr)
    assert any(f"GLOG_minloglevel={level} would hide" in line for line in ours)
    assert any("first non-finite value at iteration" in line for line in ours)
    assert run.stdout.startswith("w.log: cause: ")
    assert max(displayed((tmp_path / "w.log").read_text())) < 1999  # stopped, not trained through


def test_a_healthy_run_under_glog_minloglevel_says_what_it_checked(caffe, tmp_path):
    training(
        tmp_path, paced=False, base_lr=0.001, max_iter=25, display=5
    )  # 0, 5, ... and 25 at the end
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE, GLOG_minloglevel="2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        "every value was finite (6 displayed iterations, the last 25)" in own_lines(run.stderr)[-1]
    )


def test_a_command_that_hides_caffes_info_lines_itself_is_not_an_all_clear(caffe, tmp_path):
    # Caffe still logs debug_info's norms of the params at ERROR: lines of a Caffe log, no loss.
    training(tmp_path, paced=False, base_lr=0.001, max_iter=20)
    script = "GLOG_minloglevel=2 " + " ".join(CAFFE)  # out of watch's reach
    run = run_watch(tmp_path, "--log", "w.log", "--", "bash", "-c", script)
    last = own_lines(run.stderr)[-1]
    assert run.returncode == 2 and "checked nothing" in last and "finite" not in last
    assert "saw Caffe's lines but no loss line" in last


def test_caffes_own_flag_hiding_info_lines_is_refused(caffe, tmp_path):
    training(tmp_path, paced=False, base_lr=0.001, max_iter=5)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE, "-minloglevel=1")
    assert run.returncode == 2 and "-minloglevel=1" in run.stderr
    assert not (tmp_path / "w.log").exists() and not list(tmp_path.glob("snap_*"))


def caffe_processes(folder):
    """The pids of the `caffe` processes running in ``folder``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if cwd == str(folder) and os.path.basename(argv[0]) == b"caffe" and state != b"Z":
            found.append(int(entry))
    return found


@pytest.mark.parametrize(
    "script",
    [
        "{caffe} & wait",  # a background job of the shell, in its group
        "setsid {caffe} & wait",  # in a session of its own
        "({caffe} &); sleep 600",  # an orphan, its parent gone
    ],
)
def test_kill_9_of_watch_leaves_no_caffe_running(caffe, tmp_path, script):
    training(tmp_path, base_lr=0.001, max_iter=100000)
    command = script.format(caffe=" ".join(CAFFE))
    proc = subprocess.Popen(
        watch_args("--log", "w.log", "--", "bash", "-c", command),
        cwd=tmp_path,
        env=env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(tmp_path / "w.log", "] Iteration 3 ")
        assert len(caffe_processes(tmp_path)) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while caffe_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert caffe_processes(tmp_path) == []


def test_ctrl_c_through_a_shell_lets_caffe_stop_with_its_snapshot(caffe, tmp_path):
    # bash dies of the SIGINT at once; Caffe, in the same job, stops at the end of its iteration.
    training(tmp_path, base_lr=0.001, max_iter=100000)
    script = " ".join(CAFFE) + " & wait"
    _, _, err = interrupted_watch(
        tmp_path, "--log", "w.log", "--", "bash", "-c", script, after="] Iteration 3 "
    )
    log = (tmp_path / "w.log").read_text()
    assert "Optimization stopped early." in log, err[-3000:]
    assert list(tmp_path.glob("snap_iter_*.caffemodel")) and caffe_processes(tmp_path) == []
    assert "left " not in err  # it ended by itself, in time


def test_periodic_snapshots_are_named_as_the_solvers_with_their_iteration(caffe, tmp_path):
    training(tmp_path, base_lr=0.3, max_iter=2000, extra="snapshot: 1\n")
    run = run_watch(tmp_path, "--log", "w.log", "--json", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    text = run_watch(tmp_path, "--log", "w2.log", "--", *CAFFE).stdout
    lines = [line for line in text.splitlines() if line.startswith("snapshot: ")]
    assert lines and all(
        "the solver's periodic snapshot (snapshot: 1) of iteration" in l for l in lines
    )
    assert "state just after" not in text
    result = json.loads(run.stdout)
    assert result["snapshot"] == [] and result["snapshot_interval"] == 1


def test_an_exp_policy_with_gamma_above_1_is_the_cause_not_the_base_lr(caffe, tmp_path):
    training(tmp_path, paced=False, base_lr=0.001, policy="exp", max_iter=400, extra="gamma: 1.5\n")
    run = run_watch(tmp_path, "--log", "w.log", "--json", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    diagnosis = json.loads(run.stdout)["diagnosis"]
    assert diagnosis["cause"] == "lr_policy"
    gamma_line = (tmp_path / "solver.prototxt").read_text().splitlines().index("gamma: 1.5") + 1
    assert diagnosis["advice"][0].startswith(
        f"solver.prototxt:{gamma_line}: lr_policy exp with gamma 1.5 > 1"
    )
    assert not any("base_lr" in a or "clip_gradients" in a for a in diagnosis["advice"])
    assert "would only delay the NaN" in diagnosis["summary"][0]


def test_advice_names_the_net_the_solver_names(caffe, tmp_path):
    training(tmp_path, paced=False, base_lr=0.3, max_iter=2000)
    (tmp_path / "net.prototxt").rename(tmp_path / "my_regression.prototxt")
    write_solver(tmp_path, base_lr=0.3, debug="false", max_iter=2000, extra="random_seed: 7\n")
    solver = (tmp_path / "solver.prototxt").read_text()
    (tmp_path / "solver.prototxt").write_text(
        solver.replace("net.prototxt", "my_regression.prototxt")
    )
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "caffe-nantools inject my_regression.prototxt --solver solver.prototxt" in run.stdout
    assert "train_val.prototxt" not in run.stdout


def test_an_exp_policy_that_decays_leaves_an_explosion_to_the_base_lr(caffe, tmp_path):
    training(tmp_path, paced=False, base_lr=0.3, policy="exp", max_iter=400, extra="gamma: 0.99\n")
    run = run_watch(tmp_path, "--log", "w.log", "--json", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    diagnosis = json.loads(run.stdout)["diagnosis"]
    assert diagnosis["cause"] == "exploding_gradients"
    assert any(a.startswith("lower base_lr") for a in diagnosis["advice"])
