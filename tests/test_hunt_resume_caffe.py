"""hunt from a snapshot (`hunt SOLVER --snapshot FILE.solverstate`): the checked training starts
where the run was (weights, history, iteration) and its data layers read the batches the run read
there, so that a failure hours into a training is found where it happened: the same cause,
iteration and record as a hunt from the start."""

import os
import re
import subprocess

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from hunt_nets import classifier, float_lmdb, lmdb_layer, solver


def snapshot_at(caffe, solver_path, iteration):
    """The run's own snapshot at ``iteration``, from a plain training as Caffe writes it."""
    s = caffe.get_solver(solver_path)
    s.step(iteration)
    s.snapshot()
    return f"snap_iter_{iteration}.solverstate"


def where(report):
    v = report.verdict
    return str(v.cause), v.layer, v.iteration, (v.record.source, v.record.key)


@pytest.mark.parametrize("bad, batch, at", [(33, 4, 5), (22, 3, 4)])
def test_a_hunt_from_a_snapshot_finds_what_a_hunt_from_the_start_finds(caffe, here, bad, batch, at):
    float_lmdb(here / "train_lmdb", bad=(bad,))
    (here / "net.prototxt").write_text(classifier(lmdb_layer("source_in", "train_lmdb", batch)))
    path = solver(here, max_iter=40)
    state = snapshot_at(caffe, path, at)
    resumed = hunt(path, workdir="resumed", snapshot=state, iters=20, verify=False)
    fresh = hunt(path, workdir="fresh", iters=20, verify=False)
    assert where(resumed) == where(fresh)
    assert where(resumed) == (
        "bad_input",
        "source_in",
        bad // batch,
        ("train_lmdb", f"{bad:08d}"),
    )
    # It began at the snapshot's iteration: the iterations before it were not trained again.
    assert resumed.training.start == at and resumed.training.skipped == at
    assert resumed.training.iterations == bad // batch - at
    assert any(f"iteration {at}); source_in advanced by {at} batches" in n for n in resumed.notes)


def test_hdf5_rows_are_matched_too_and_the_fix_is_tried_from_the_snapshot(caffe, here):
    import h5py

    x = np.random.RandomState(5).randn(30, 4).astype(np.float32)
    x[17, 2] = np.inf
    with h5py.File(str(here / "rows.h5"), "w") as f:
        f["data"], f["label"] = x, (np.arange(30) % 3).astype(np.float32)
    (here / "list.txt").write_text("rows.h5\n")
    (here / "net.prototxt").write_text(
        classifier(
            'layer { name: "rows" type: "HDF5Data" top: "data" top: "label" '
            'hdf5_data_param { source: "list.txt" batch_size: 5 } }\n'
        )
    )
    path = solver(here, max_iter=30)
    state = snapshot_at(caffe, path, 2)
    before = (here / "net.prototxt").read_text(), (here / path).read_text()
    report = hunt(path, workdir="hunt", snapshot=state)
    v, fix = report.verdict, report.fix
    assert fix is not None, report.notes
    assert (v.cause, v.layer, v.iteration) == ("bad_input", "rows", 3)
    assert v.record.to_dict() == {"source": "list.txt", "key": "rows.h5:17"}
    assert fix.verified
    # The command that resumes the user's training with the fix, run with Caffe's own tool,
    # trains from the snapshot to max_iter and stays finite; the user's files are as they were.
    command = fix.resume
    assert command == (
        "caffe train -solver hunt/fix/resume/solver.prototxt -snapshot snap_iter_2.solverstate"
    )
    env = dict(os.environ, GLOG_minloglevel="0")  # the loss lines are INFO
    run = subprocess.run(command.split(), capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    losses = re.findall(r"Iteration (\d+).*, loss = (\S+)", run.stderr)
    assert "Resuming from snap_iter_2.solverstate" in run.stderr, run.stderr[:3000]
    assert int(losses[0][0]) <= 5 and int(losses[-1][0]) >= 25  # displayed every 5
    assert all(np.isfinite(float(loss)) for _, loss in losses)
    assert ((here / "net.prototxt").read_text(), (here / path).read_text()) == before


def test_a_state_whose_weights_are_elsewhere_is_one_line_and_exit_2(caffe, here, capsys):
    float_lmdb(here / "train_lmdb")
    (here / "net.prototxt").write_text(classifier(lmdb_layer("data", "train_lmdb")))
    path = solver(here, max_iter=10)
    state = snapshot_at(caffe, path, 2)
    (here / "snap_iter_2.caffemodel").rename(here / "moved.caffemodel")
    assert main(["hunt", path, "--snapshot", state, "--workdir", "hunt"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "snap_iter_2.solverstate: its weights 'snap_iter_2.caffemodel' are not found" in err
