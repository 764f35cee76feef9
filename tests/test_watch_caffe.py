"""watch around the real `caffe train`: a base_lr that explodes is stopped with a snapshot and
diagnosed, a healthy run passes through untouched, an abort is reported, Ctrl-C reaches Caffe."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from caffe_train import caffe_train, train_command
from watch_logs import wait_for

from test_diagnose_caffe import REGRESSION_NET, regression_data, write_solver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A Python layer that makes each iteration last 20 ms, as a real net's would: watch acts
#: between iterations, as a user's run gives it time to.
PACE_LAYER = 'layer { name: "pace" type: "Python" python_param { module: "pace" layer: "Pace" } }'
PACE_MODULE = (
    "import time\nimport caffe\n\n\nclass Pace(caffe.Layer):\n    def setup(self, bottom, top):\n        pass\n\n"
    "    def reshape(self, bottom, top):\n        pass\n\n    def forward(self, bottom, top):\n"
    "        time.sleep(0.02)\n\n    def backward(self, top, propagate_down, bottom):\n        pass\n"
)
CAFFE = train_command()


def training(folder, *, paced=True, extra="", **solver):
    regression_data(folder)
    (folder / "pace.py").write_text(PACE_MODULE)
    (folder / "net.prototxt").write_text(
        REGRESSION_NET.substitute(extra=PACE_LAYER if paced else "", into="ip1")
    )
    write_solver(folder, extra="random_seed: 7\n" + extra, **solver)


def env(folder):
    return dict(os.environ, GLOG_minloglevel="0", PYTHONPATH=os.pathsep.join([str(folder), ROOT]))


def watch_args(*args):
    return [sys.executable, "-m", "caffe_nantools", "watch", *args]


def interrupted_watch(folder, *args, after: str):
    """watch running ``args``, sent SIGINT (a Ctrl-C) once its log holds ``after``: (status,
    stdout, stderr)."""
    proc = subprocess.Popen(
        watch_args(*args),
        cwd=folder,
        env=env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(folder / "w.log", after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def run_watch(folder, *args):
    return subprocess.run(
        watch_args(*args), cwd=folder, env=env(folder), capture_output=True, text=True, timeout=300
    )


def displayed(log_text):
    return [int(i) for i in re.findall(r"\] Iteration (\d+) \(.*\), loss = ", log_text)]


@pytest.mark.parametrize(
    "display, after_train, late",
    [(1, "", 1), (2, "", 1), (1, "snapshot_after_train: false\n", 2)],
)
def test_an_exploding_base_lr_is_stopped_with_a_snapshot_and_diagnosed(
    caffe, tmp_path, display, after_train, late
):
    training(tmp_path, base_lr=0.3, display=display, max_iter=2000, extra=after_train)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    answer = run.stdout
    assert answer.startswith("w.log: cause: exploding_gradients")
    assert (
        "lower base_lr to" in answer and "(from 0.3) (solver.prototxt:2)" in answer
    )  # the solver was read
    first_bad = int(re.search(r"first non-finite value at iteration (\d+)", run.stderr).group(1))
    # Caffe takes a signal at the end of an iteration: the stop, which writes the snapshot, at
    # the end of the one in flight (the one after the NaN was displayed, or the next if the
    # signal comes late in it); without snapshot_after_train, the snapshot there and the stop
    # at the end of the next.
    log = (tmp_path / "w.log").read_text()
    assert max(displayed(log)) <= first_bad + late and "Optimization stopped early." in log
    snapshot = next(line for line in answer.splitlines() if line.startswith("snapshot: "))
    model = snapshot.split()[1].rstrip(",")
    assert model.endswith(".caffemodel") and (tmp_path / model).stat().st_size > 0
    assert (tmp_path / model.replace(".caffemodel", ".solverstate")).exists()
    assert int(model.split("_iter_")[1].split(".")[0]) <= first_bad + 2


def normalised(text: str) -> str:
    """A log without what differs between two runs: times, thread ids, speeds."""
    text = re.sub(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ", r"\1 ", text, flags=re.M)
    return re.sub(r"\([^()]* iter/s, [^()]* iters\)", "(speed)", text)


def test_a_healthy_run_passes_through_byte_for_byte_and_exits_0(caffe, tmp_path):
    training(tmp_path, paced=False, base_lr=0.001, max_iter=40)
    plain = caffe_train(tmp_path)
    run = run_watch(tmp_path, "--log", "w.log", "--", *CAFFE)
    assert run.returncode == plain.returncode == 0
    ours = [line for line in run.stderr.splitlines() if line.startswith("caffe-nantools watch:")]
    assert (
        len(ours) == 2 and "every value was finite" in ours[-1]
    )  # the log's name, the outcome: no warning
    passed = "".join(
        line
        for line in run.stderr.splitlines(keepends=True)
        if not line.startswith("caffe-nantools watch:")
    )
    assert "] Iteration 39 " in passed and "[Backward] All net params" in passed
    assert normalised(passed) == normalised(plain.log)
    assert (tmp_path / "w.log").read_text() == passed
    assert run.stdout == ""


def test_a_check_failure_is_reported_with_the_fatal_line_and_what_it_means(caffe, tmp_path):
    from PIL import Image
    import numpy as np

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(str(tmp_path / "imgs" / "a.png"))
    (tmp_path / "list.txt").write_text("a.png 0\nmissing.png 1\n")
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "ImageData" top: "data" top: "label"\n'
        '        image_data_param { source: "list.txt" root_folder: "imgs/" batch_size: 2 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
    )
    write_solver(tmp_path, debug="false", max_iter=10)
    run = run_watch(tmp_path, "--log", "w.log", "--json", "--", *CAFFE)
    assert run.returncode == 128 + signal.SIGABRT
    result = json.loads(run.stdout)
    assert result["status"] == 134 and result["diagnosis"]["cause"] == "caffe_abort"
    assert (
        "Check failed" in result["diagnosis"]["abort"]["text"]
        and "missing.png" in result["diagnosis"]["abort"]["text"]
    )
    assert any("could not be opened" in s for s in result["diagnosis"]["summary"])


@pytest.mark.parametrize("flags, stops", [([], True), (["-sigint_effect", "snapshot"], False)])
def test_ctrl_c_on_watch_is_caffes_own_sigint(caffe, tmp_path, flags, stops):
    training(tmp_path, base_lr=0.001, max_iter=60)
    status, out, err = interrupted_watch(
        tmp_path, "--log", "w.log", "--", *CAFFE, *flags, after="] Iteration 5 "
    )
    assert status == 0, err[-3000:]
    log = (tmp_path / "w.log").read_text()
    assert ("Optimization stopped early." in log) == stops
    assert max(displayed(log)) < 59 if stops else max(displayed(log)) == 59
    snapshot = next(line for line in out.splitlines() if line.startswith("snapshot: "))
    assert "written after watch passed on SIGINT" in snapshot
    first = snapshot.split()[1].rstrip(",")
    assert (tmp_path / first).exists() and int(first.split("_iter_")[1].split(".")[0]) < 60
    assert out.startswith("w.log: cause: none")


def test_keep_good_leaves_a_finite_snapshot_from_before_the_nan_and_stops_within_an_iteration(
    caffe, tmp_path
):
    """A rate that explodes some iterations in, each iteration paced to 20 ms: watch's own
    snapshots (every 50 ms) checked and kept, the last finite one named; the stop's snapshot
    holds the bad update; Caffe stopped within one iteration of the first NaN line."""
    training(tmp_path, base_lr=0.07, display=1, max_iter=2000)  # inf at iteration 10
    run = run_watch(tmp_path, "--log", "w.log", "--keep-good", "0.05", "--json", "--", *CAFFE)
    assert run.returncode == 1, run.stderr[-3000:]
    result = json.loads(run.stdout)
    first_bad = result["diagnosis"]["first_nonfinite"]["iteration"]
    good = result["last_good_snapshot"]
    assert good and result["finite"][good[0]] is True and result["finite"][good[1]] is True
    assert result["last_good_iteration"] <= first_bad and good in result["kept"]
    assert all((tmp_path / f).exists() for kept in result["kept"] for f in kept)
    log = (tmp_path / "w.log").read_text()
    assert max(displayed(log)) <= first_bad + 1 and "Optimization stopped early." in log
