"""replay on real Caffe: a bundle Caffe would abort on, or replay from random fillers, is one
line and exit 2 before Caffe sees it (the abort-prone cases run in a process of their own, so
that a regression fails the test instead of ending the suite); hunt leaves its bundle in
WORKDIR/replay and replay takes that workdir too."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from caffe_nantools.bundle import ReplayError
from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from caffe_nantools.replay import replay

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


def in_own_process(*argv):
    """The CLI in a process of its own: a Caffe abort ends it, not the test run."""
    env = dict(os.environ, GLOG_minloglevel="2")
    return subprocess.run(
        [sys.executable, "-m", "caffe_nantools", "replay", *argv],
        capture_output=True,
        text=True,
        env=env,
    )


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
    assert main(["replay", "work"]) == main(["replay", os.path.join("work", "replay")])
    out = capsys.readouterr().out
    assert out.count("iteration 0: ") == 2
