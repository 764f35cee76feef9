"""watch around the real `caffe train`, reading every line as diagnose does: a crash by a signal
is never an all-clear, a NaN only a Python layer prints stops the run, a NaN that only
debug_info's ERROR lines show (a script hides INFO) is exit 1, names holding "nan" and "inf"
leave a healthy run alone, and without debug_info the diagnosis gives the probable cause and the
hunt that confirms it, naming the user's files."""

import signal

from caffe_train import train_command
from test_diagnose_caffe import REGRESSION_NET, regression_data, write_solver
from test_watch_caffe import displayed, run_watch, training

CAFFE = train_command()
#: A Python layer that does ``act`` (Python source, ``n`` its forward count) at its n-th
#: forward, and sleeps 20 ms each time as a real net's iteration lasts.
ACTOR = (
    "import os, signal, time\nimport caffe\n\n\nclass Actor(caffe.Layer):\n"
    "    def setup(self, bottom, top):\n        self.n = 0\n\n"
    "    def reshape(self, bottom, top):\n        pass\n\n"
    "    def forward(self, bottom, top):\n        time.sleep(0.02)\n        self.n += 1\n"
    "        n = self.n\n        {act}\n\n"
    "    def backward(self, top, propagate_down, bottom):\n        pass\n"
)
ACTOR_LAYER = (
    'layer { name: "actor" type: "Python" python_param { module: "actor" layer: "Actor" } }'
)


def acting(folder, act: str, **solver):
    regression_data(folder)
    (folder / "actor.py").write_text(ACTOR.replace("{act}", act))
    (folder / "net.prototxt").write_text(REGRESSION_NET.substitute(extra=ACTOR_LAYER, into="ip1"))
    write_solver(folder, extra="random_seed: 7\n", **solver)


def test_a_crash_by_a_signal_is_the_commands_status_and_caffe_abort(caffe, tmp_path):
    acting(tmp_path, "if n == 6: os.kill(os.getpid(), signal.SIGSEGV)", max_iter=50)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == 128 + signal.SIGSEGV, run.stderr[-3000:]
    assert run.stdout.startswith("w.log: cause: caffe_abort")
    assert "killed by SIGSEGV" in run.stdout


def test_a_crash_a_script_swallows_is_exit_1_not_0(caffe, tmp_path):
    acting(tmp_path, "if n == 6: os.kill(os.getpid(), signal.SIGSEGV)", max_iter=50)
    script = " ".join(CAFFE) + "; echo training done; exit 0"
    run = run_watch(tmp_path, "--log", "w.log", "--", "bash", "-c", script)
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.stdout.startswith("training done\nw.log: cause: caffe_abort")  # its echo first
    summary = next(line for line in run.stdout.splitlines() if line.startswith("watch: "))
    assert "ended with status 0, but its output shows an abort" in summary
    assert "every value was finite" not in run.stdout + run.stderr


def test_a_nan_only_a_python_layer_prints_stops_the_run(caffe, tmp_path):
    # Not flushed, on stdout: the training's own values all stay finite.
    acting(tmp_path, "if n == 12: print('my_metric:', float('nan'))", max_iter=2000)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "first non-finite value after iteration" in run.stderr
    assert "my_metric: nan" in run.stderr
    log = (tmp_path / "w.log").read_text()
    assert "Optimization stopped early." in log and max(displayed(log)) < 40
    # The print passes through to stdout first, then the diagnosis.
    assert run.stdout.startswith("my_metric: nan\nw.log: cause: ")
    assert "holds nan in a line whose layout diagnose does not read" in run.stdout


def test_a_nan_only_errors_show_when_a_script_hides_info_is_exit_1(caffe, tmp_path):
    training(tmp_path, base_lr=0.3, max_iter=2000)
    script = "GLOG_minloglevel=2 " + " ".join(CAFFE)  # out of watch's reach
    # Caffe's snapshot line is an INFO line too: watch waits --timeout for it, then stops it.
    run = run_watch(tmp_path, "--log", "w.log", "--timeout", "3", "--", "bash", "-c", script)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "first non-finite value" in run.stderr and "All net params" in run.stderr
    log = (tmp_path / "w.log").read_text()
    assert "] Iteration " not in log  # no INFO line: only debug_info's norms, at ERROR
    assert log.count("All net params") < 1000  # stopped, not trained through


def test_names_holding_nan_and_inf_leave_a_healthy_run_at_exit_0(caffe, tmp_path):
    training(tmp_path, paced=False, base_lr=0.001, max_iter=30)
    guard = 'layer { name: "nan_guard" type: "ReLU" bottom: "info_fc" top: "info_fc" }'
    net = (
        REGRESSION_NET.substitute(extra=guard, into="ip1")
        .replace('"ip1"', '"info_fc"')
        .replace('"loss"', '"nan_inf_loss"')
    )
    (tmp_path / "net.prototxt").write_text(net)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (tmp_path / "w.log").read_text()
    assert "Layer nan_guard, top blob info_fc data" in log and "nan_inf_loss = " in log
    assert "every value was finite (31 displayed iterations, the last 30)" in run.stderr


def test_without_debug_info_the_probable_cause_and_its_hunt_name_the_users_files(caffe, tmp_path):
    # display 10: the loss is seen finite once, then NaN; lint finds base_lr too high.
    training(tmp_path, base_lr=0.3, max_iter=2000, debug="false", display=10)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    answer = run.stdout
    assert answer.startswith("w.log: cause: exploding_gradients")
    assert "probable cause (no debug_info trace to confirm it): base_lr 0.3 is above" in answer
    assert "`caffe-nantools hunt solver.prototxt`" in answer
    assert "`caffe-nantools inject net.prototxt --solver solver.prototxt`" in answer
    assert "train_val" not in answer and "unknown" not in answer
