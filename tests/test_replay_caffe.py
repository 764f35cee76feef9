"""replay on real Caffe: a bundle Caffe would abort on, or replay from random fillers, is one
line and exit 2 before Caffe sees it (the abort-prone cases run in a process of their own, so
that a regression fails the test instead of ending the suite); what Caffe still aborts on (a
failed CHECK in a layer's set-up or backward, a Python layer raising) ends replay's child, not
replay: the layer and Caffe's fatal line in one line, exit 2, for a bundle edited or made by
hand, a finding (exit 1) for one as hunt wrote it; hunt leaves its bundle in WORKDIR/replay,
sealed, and replay takes that workdir too, or an older hunt's WORKDIR/checked/replay."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from caffe_nantools.bundle import ReplayError, changed_since_hunt, open_bundle, seal
from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from caffe_nantools.replay import replay
from test_scan_interrupt import alive

NET = textwrap.dedent("""\
    name: "regress"
    layer { name: "feed" type: "Input" top: "x" top: "y" input_param { shape { dim: 4 dim: 5 } shape { dim: 4 dim: 1 } } }
    layer { name: "hidden" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: OUT weight_filler { type: "gaussian" std: 10 } } }
    layer { name: "act" type: "TanH" bottom: "h" top: "h" }
    layer { name: "head" type: "InnerProduct" bottom: "h" top: "p" inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 10 } } }
    layer { name: "cost" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "cost" }
""")


def saved_net(caffe, folder, hidden=3):
    """A net written by Caffe itself, with weights Caffe saved (net.save)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.prototxt").write_text(NET.replace("OUT", str(hidden)))
    net = caffe.Net(str(folder / "net.prototxt"), caffe.TRAIN)
    net.save(str(folder / "weights.caffemodel"))
    return net


def real_bundle(caffe, folder):
    net = saved_net(caffe, folder)
    rng = np.random.RandomState(3)
    np.save(str(folder / "x.npy"), rng.randn(4, 5).astype(np.float32))
    np.save(str(folder / "y.npy"), rng.randn(4, 1).astype(np.float32))
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "net": "net.prototxt",
                "weights": "weights.caffemodel",
                "inputs": {"x": "x.npy", "y": "y.npy"},
                "iteration": 2,
            }
        )
    )
    return str(folder), net.params["hidden"][0].data.copy()


def in_own_process(*argv, cwd=None):
    """The CLI in a process of its own: a Caffe abort ends it, not the test run."""
    env = dict(os.environ, GLOG_minloglevel="2")
    return subprocess.run(
        [sys.executable, "-m", "caffe_nantools", "replay", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


def one_line_error(run):
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("caffe-nantools replay: error: ")
    return run.stderr


#: A Python layer for the bundle's folder: passes its bottom through, and raises where its
#: param_str says (``forward``, ``backward``), or sleeps there after writing its pid (``wait``).
GATE = textwrap.dedent("""\
    import os, time
    import caffe

    class Gate(caffe.Layer):
        def setup(self, bottom, top):
            self.fail = self.param_str

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            if self.fail == "forward":
                raise ArithmeticError("gate saw a negative mean")
            if self.fail.startswith("wait "):
                open(self.fail[5:], "w").write(str(os.getpid()))
                time.sleep(120)
            top[0].data[...] = bottom[0].data

        def backward(self, top, propagate_down, bottom):
            if self.fail == "backward":
                raise ZeroDivisionError("gate's scale is 0")
            bottom[0].diff[...] = top[0].diff
""")


def edit_net(folder, old, new):
    """The bundle's net with ``old`` (which must be there) replaced by ``new``."""
    path = Path(folder, "net.prototxt")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def gated_bundle(caffe, folder, module, fail):
    """A bundle whose net has a Python layer ``gate`` (module ``module`` in the bundle's
    folder) after the activation, failing where ``fail`` says."""
    path, _ = real_bundle(caffe, folder)
    (folder / f"{module}.py").write_text(GATE)
    edit_net(
        path,
        'layer { name: "head"',
        f'layer {{ name: "gate" type: "Python" bottom: "h" top: "g" python_param {{ module: "{module}" '
        f'layer: "Gate" param_str: "{fail}" }} }}\nlayer {{ name: "head"',
    )
    edit_net(path, 'bottom: "h" top: "p"', 'bottom: "g" top: "p"')
    return path


def test_a_bundle_is_replayed_from_its_saved_weights(caffe, tmp_path):
    folder, weights = real_bundle(caffe, tmp_path / "b")
    report = replay(folder)
    row = next(r for r in report.forward if r.name == "hidden: param 0")
    # std 10: the fillers' own draw would not give these numbers again
    assert (row.min, row.max) == (pytest.approx(weights.min()), pytest.approx(weights.max()))
    assert report.iteration == 2 and report.first_bad is None


def test_empty_weights_are_refused_instead_of_an_all_clear_from_random_fillers(caffe, tmp_path):
    folder, _ = real_bundle(caffe, tmp_path / "b")
    open(os.path.join(folder, "weights.caffemodel"), "wb").close()
    with pytest.raises(ReplayError, match="weights.caffemodel: an empty file"):
        replay(folder)


@pytest.mark.parametrize("how", ["truncated", "deleted", "foreign", "other net", "no layer of it"])
def test_weights_caffe_would_abort_on_or_ignore_are_one_line(caffe, tmp_path, how):
    folder, _ = real_bundle(caffe, tmp_path / "b")
    weights = os.path.join(folder, "weights.caffemodel")
    if how == "truncated":
        data = Path(weights).read_bytes()
        Path(weights).write_bytes(data[: len(data) * 2 // 3])
    elif how == "deleted":
        os.unlink(weights)
    elif how == "foreign":
        Path(weights).write_bytes(Path(folder, "x.npy").read_bytes())
    else:
        other = saved_net(caffe, tmp_path / "other", hidden=7 if how == "other net" else 3)
        if how == "no layer of it":
            text = NET.replace("OUT", "3").replace('"hidden"', '"h1"').replace('"head"', '"h2"')
            (tmp_path / "other" / "net.prototxt").write_text(text)
            other = caffe.Net(str(tmp_path / "other" / "net.prototxt"), caffe.TRAIN)
            other.save(str(tmp_path / "other" / "weights.caffemodel"))
        os.replace(str(tmp_path / "other" / "weights.caffemodel"), weights)
    run = in_own_process(folder)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("caffe-nantools replay: error: ")
    expected = {
        "truncated": "not a binary caffemodel",
        "deleted": "weights.caffemodel is missing",
        "foreign": "not a binary caffemodel",
        "other net": "layer 'hidden' param 0: shape (7, 5) with 35 values, the net's is shape (3, 5)",
        "no layer of it": "holds none of the net's params (layers hidden, head)",
    }[how]
    assert expected in run.stderr


def test_an_input_of_another_shape_and_an_unknown_layer_type_are_one_line(caffe, tmp_path):
    folder, _ = real_bundle(caffe, tmp_path / "b")
    np.save(os.path.join(folder, "x.npy"), np.zeros((1, 5), np.float32))  # would broadcast
    run = in_own_process(folder)
    assert (
        run.returncode == 2
        and "the input of 'x' has shape (1, 5), the net's Input layer (4, 5)" in run.stderr
    )
    folder, _ = real_bundle(caffe, tmp_path / "c")
    net = os.path.join(folder, "net.prototxt")
    Path(net).write_text(Path(net).read_text().replace('"TanH"', '"Mish"'))
    run = in_own_process(folder)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "layer 'act' has type 'Mish', which this Caffe does not have" in run.stderr


@pytest.mark.parametrize("gpu", [0, 2])
def test_a_gpu_on_a_cpu_only_caffe_is_one_line_as_in_hunt(caffe, tmp_path, gpu):
    if (
        b"CPU-only"
        not in subprocess.run(
            [sys.executable, "-c", "import caffe; caffe.set_mode_gpu(); caffe.set_device(0)"],
            capture_output=True,
        ).stderr
    ):
        pytest.skip("this Caffe has a GPU")
    folder, _ = real_bundle(caffe, tmp_path / "b")
    run = in_own_process(folder, "--gpu", str(gpu))
    assert run.returncode == 2
    assert run.stderr == (
        f"caffe-nantools replay: error: --gpu {gpu}: this Caffe is built for the CPU only; leave out --gpu\n"
    )


def test_hunt_leaves_its_bundle_in_workdir_replay_and_replay_takes_the_workdir(caffe, here, capsys):
    import h5py

    rng = np.random.RandomState(0)
    x = rng.randn(16, 5).astype(np.float32)
    with h5py.File(str(here / "train.h5"), "w") as f:
        f["x"], f["y"] = x, x.sum(1, keepdims=True)
    (here / "train.txt").write_text("train.h5\n")
    data = 'layer { name: "rows" type: "HDF5Data" top: "x" top: "y" hdf5_data_param { source: "train.txt" batch_size: 4 } }\n'
    (here / "net.prototxt").write_text(data + NET.split("\n", 2)[2].replace("OUT", "3"))
    (here / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "poly"\npower: 1\nsolver_mode: CPU\n'
    )
    report = hunt("solver.prototxt", workdir="work", iters=5, scan=False, verify=False)
    assert report.training.replay == os.path.join("work", "replay")
    assert os.path.isfile(os.path.join("work", "replay", "manifest.json"))
    assert f"replay bundle: {os.path.join('work', 'replay')}" in report.format()
    assert changed_since_hunt(open_bundle(os.path.join("work", "replay"))) is None  # sealed
    assert main(["replay", "work"]) == main(["replay", os.path.join("work", "replay")])
    out = capsys.readouterr().out
    assert out.count("iteration 0: ") == 2
    # an older hunt kept it beside its checked copies
    os.replace(os.path.join("work", "replay"), os.path.join("work", "checked", "replay"))
    main(["replay", "work"])
    assert capsys.readouterr().out == out[: len(out) // 2]  # the same report again


def test_layers_edited_into_shapes_that_do_not_fit_are_one_line_naming_caffes_check(
    caffe, tmp_path
):
    folder, _ = real_bundle(caffe, tmp_path / "b")
    # the head now makes 2 outputs for a target of 1: Caffe's EuclideanLoss CHECK in its set-up
    edit_net(folder, "num_output: 1 weight_filler", "num_output: 2 weight_filler")
    err = one_line_error(in_own_process(folder))
    assert (
        "the set-up of layer 'cost' (" + os.path.join(folder, "net.prototxt") + ":6) failed: "
        in err
    )
    assert "Caffe ended the process: euclidean_loss_layer.cpp:" in err
    assert "Check failed: bottom[0]->count(1) == bottom[1]->count(1) (2 vs. 1)" in err
    assert "the bundle is not as hunt wrote it (its manifest has no sha256 digests" in err


def test_weights_that_no_longer_fit_an_edited_num_output_are_one_line(caffe, tmp_path):
    folder, _ = real_bundle(caffe, tmp_path / "b")
    edit_net(folder, "num_output: 3", "num_output: 6")  # the net is set up; the weights do not fit
    err = one_line_error(in_own_process(folder))
    assert "layer 'hidden' param 0: shape (3, 5) with 15 values, the net's is shape (6, 5)" in err


@pytest.mark.parametrize(
    "fail, step, why",
    [
        ("forward", "forward", "ArithmeticError: gate saw a negative mean (gate_"),
        ("backward", "backward", "ZeroDivisionError: gate's scale is 0 (gate_"),
    ],
)
def test_a_python_layer_raising_in_an_edited_bundle_is_one_line(caffe, tmp_path, fail, step, why):
    module = f"gate_{fail[:3]}"
    folder = gated_bundle(caffe, tmp_path / "b", module, fail)
    err = one_line_error(in_own_process(folder))
    assert (
        f"the {step} of layer 'gate' (" + os.path.join(folder, "net.prototxt") + ":5) failed: "
        in err
    )
    assert why in err and f"{module}.py:" in err


def test_a_backward_caffe_aborts_on_in_hunts_own_bundle_is_a_finding(caffe, tmp_path):
    folder, _ = real_bundle(caffe, tmp_path / "b")
    # Threshold has no backward: Caffe's LOG(FATAL) "Not Implemented Yet" once hidden learns
    edit_net(folder, '"TanH"', '"Threshold"')
    seal(folder)  # as hunt seals the bundle it wrote
    run = in_own_process(folder)
    assert run.returncode == 1 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert lines[0] == "iteration 2: every value finite up to there"
    assert lines[1] == (
        "stopped: the backward of layer 'act' (" + os.path.join(folder, "net.prototxt") + ":4) "
        "failed: Caffe ended the process: threshold_layer.hpp:"
        + lines[1].split("threshold_layer.hpp:")[1].split("]")[0]
        + "] Not Implemented Yet (the bundle is as hunt wrote it: the net itself fails here)"
    )
    report = json.loads(in_own_process(folder, "--json").stdout)
    # every forward row, and the backward ones of the layers after 'act'
    assert [r["name"] for r in report["forward"]][-1] == "cost: cost"
    assert {r["name"].split(":")[0] for r in report["backward"]} == {"cost", "head"}
    assert report["abort"]["stage"] == "backward" and report["abort"]["layer"] == "act"


def test_a_python_layer_raising_in_hunts_own_bundle_is_a_finding(caffe, tmp_path):
    folder = gated_bundle(caffe, tmp_path / "b", "gate_seal", "forward")
    seal(folder)
    run = in_own_process(folder)
    assert run.returncode == 1 and run.stderr == ""
    assert "stopped: the forward of layer 'gate' (" in run.stdout
    assert "ArithmeticError: gate saw a negative mean (gate_seal.py:" in run.stdout


def test_a_python_layers_module_is_checked_before_caffe_imports_it(caffe, tmp_path):
    folder = gated_bundle(caffe, tmp_path / "b", "gate_ok", "none")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = in_own_process(folder, cwd=str(elsewhere))  # found in the bundle's folder
    assert run.returncode == 0 and run.stdout.startswith("iteration 2: every value finite")
    assert "gate: g" in run.stdout
    os.replace(os.path.join(folder, "gate_ok.py"), str(elsewhere / "gate_ok.py"))
    err = one_line_error(in_own_process(folder, cwd=str(tmp_path)))
    assert err.endswith(
        "net.prototxt:5: Python layer 'gate': module 'gate_ok' is not found here; put the folder "
        f"that holds it on PYTHONPATH (or the module in {folder})\n"
    )
    run = in_own_process(os.path.relpath(folder, str(elsewhere)), cwd=str(elsewhere))
    assert run.returncode == 0  # the current folder is on the path, as for hunt's training
    edit_net(folder, 'layer: "Gate"', 'layer: "Gates"')
    err = one_line_error(in_own_process(folder, cwd=str(elsewhere)))
    assert "module 'gate_ok' (" in err and "has no class 'Gates' (python_param.layer)" in err


def test_replays_child_ends_with_it(caffe, tmp_path):
    pid_file = tmp_path / "child.pid"
    folder = gated_bundle(caffe, tmp_path / "b", "gate_wait", f"wait {pid_file}")
    parent = subprocess.Popen(
        [sys.executable, "-m", "caffe_nantools", "replay", folder],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        child = int(pid_file.read_text())
    finally:
        parent.kill()
        parent.wait()
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("replay's child outlived replay")
