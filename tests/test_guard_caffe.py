"""guard.step on real pycaffe solvers: the first bad output, gradient or weight, named with its
layer, pass, iteration and rate."""

import textwrap

import numpy as np
import pytest

from caffe_nantools import guard
from caffe_nantools.errors import NonFiniteError

DATA = 'layer {{ name: "data" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{source}" batch_size: 4 }} }}\n'


def regression(folder, *, layers, base_lr=0.01, nan_row=None, policy='lr_policy: "fixed"', rows=16):
    import h5py

    rng = np.random.RandomState(1)
    x = rng.randn(rows, 6).astype(np.float32)
    y = x.sum(1, keepdims=True).astype(np.float32)
    if nan_row is not None:
        x[nan_row, 2] = np.nan
    with h5py.File(str(folder / "train.h5"), "w") as f:
        f["data"], f["label"] = x, y
    (folder / "train.txt").write_text(str(folder / "train.h5") + "\n")
    (folder / "net.prototxt").write_text(
        DATA.format(source=folder / "train.txt") + textwrap.dedent(layers)
    )
    (folder / "solver.prototxt").write_text(
        f'net: "{folder / "net.prototxt"}"\nbase_lr: {base_lr}\n{policy}\nmomentum: 0\nsolver_mode: CPU\n'
    )
    return str(folder / "solver.prototxt")


TWO_LAYERS = """\
    layer { name: "hidden" type: "InnerProduct" bottom: "data" top: "hidden"
            inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
    layer { name: "out" type: "InnerProduct" bottom: "hidden" top: "out"
            inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
    layer { name: "cost" type: "EuclideanLoss" bottom: "out" bottom: "label" top: "cost" }
"""


def test_a_healthy_run_steps_through(caffe, tmp_path):
    solver = caffe.SGDSolver(regression(tmp_path, layers=TWO_LAYERS))
    guard.step(solver, 6)
    guard.step(solver, 2)  # the same guard again
    assert solver.iter == 8


def test_a_rate_that_overflows_the_weights_is_caught_in_the_update(caffe, tmp_path):
    """The update takes the weights to ~1e38, past max_abs; the next forward would be inf."""
    solver = caffe.SGDSolver(regression(tmp_path, layers=TWO_LAYERS, base_lr="1e38"))
    with pytest.raises(NonFiniteError) as info:
        guard.step(solver, 5, max_abs=1e37)
    e = info.value
    assert (e.by, e.pass_, e.iteration, e.phase) == ("guard", "update", 0, "TRAIN")
    assert (
        e.layer in ("hidden", "out")
        and e.blob.startswith("param ")
        and e.lr == pytest.approx(1e38, rel=1e-6)
    )
    assert (
        f"layer '{e.layer}' {e.blob} data after the update of iteration 0 (TRAIN, lr 1e+38)"
        in str(e)
    )


@pytest.mark.parametrize("bad_sample", [1, 3])
def test_a_nan_gradient_is_named_at_the_layer_whose_params_it_reached(
    caffe, tmp_path, monkeypatch, bad_sample
):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    layers = TWO_LAYERS.replace(
        'type: "EuclideanLoss" bottom: "out" bottom: "label"', 'type: "Python" bottom: "out"'
    )
    layers = layers.replace(
        'top: "cost" }',
        f'top: "cost" loss_weight: 1\n'
        f'            python_param {{ module: "nan_loss" layer: "NanGradientLoss" param_str: "{bad_sample}" }} }}',
    )
    solver = caffe.SGDSolver(regression(tmp_path, layers=layers))
    with pytest.raises(NonFiniteError) as info:
        guard.step(solver, 3)
    e = info.value
    assert (e.pass_, e.iteration, e.blob) == ("backward", 0, "param 0") and e.layer in (
        "out",
        "hidden",
    )
    assert solver.net.blobs["cost"].data.item() == pytest.approx(
        solver.net.blobs["cost"].data.item()
    )  # finite loss


def test_a_nan_sample_shows_in_the_output_first(caffe, tmp_path):
    solver = caffe.SGDSolver(regression(tmp_path, layers=TWO_LAYERS, nan_row=9))  # batch 2 of 4
    with pytest.raises(NonFiniteError) as info:
        guard.step(solver, 4)
    e = info.value
    assert (e.pass_, e.layer, e.blob, e.iteration) == ("forward", "cost", "top cost", 2)


def test_every_other_iteration_is_checked_with_every_2(caffe, tmp_path):
    solver = caffe.SGDSolver(
        regression(tmp_path, layers=TWO_LAYERS, nan_row=5)
    )  # batch 1: not checked
    guard.step(solver, 2, every=2, check_params=False)
    assert solver.iter == 2


def test_step_keeps_no_solver_alive_once_the_caller_lets_go(caffe, tmp_path):
    """A sweep makes solver after solver: each one's guard, net and callback go with it."""
    import gc
    import weakref

    path = regression(tmp_path, layers=TWO_LAYERS)
    gone = []
    for _ in range(3):
        solver = caffe.SGDSolver(path)
        guard.step(solver, 2)
        gone += [weakref.ref(solver), weakref.ref(guard._GUARDS[solver])]
        del solver
        gc.collect()
    assert [ref() for ref in gone] == [None] * 6 and len(guard._GUARDS) == 0


def test_a_guard_made_by_hand_keeps_its_solver_and_both_go_together(caffe, tmp_path):
    import gc
    import weakref

    solver = caffe.SGDSolver(regression(tmp_path, layers=TWO_LAYERS))
    kept = guard.Guard(solver)
    solver_ref, guard_ref = weakref.ref(solver), weakref.ref(kept)
    del solver
    gc.collect()
    kept.step(3)
    assert solver_ref().iter == 3
    del kept
    gc.collect()
    assert solver_ref() is None and guard_ref() is None


@pytest.mark.parametrize(
    "options, message",
    [({"every": 0}, "every=0: must be 1 or more"), ({"n": -1}, "n=-1: must be 0 or more")],
)
def test_a_wrong_argument_stops_before_any_step(caffe, tmp_path, options, message):
    from caffe_nantools.arguments import ArgumentError

    solver = caffe.SGDSolver(regression(tmp_path, layers=TWO_LAYERS))
    with pytest.raises(ArgumentError, match=message):
        guard.step(solver, **options)
    assert solver.iter == 0


KEEP_GOOD = """
import json, sys
import caffe
from caffe_nantools import guard
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite_snapshot import check_snapshot
solver = caffe.SGDSolver(sys.argv[1])
try:
    guard.step(solver, 20, keep_good=1e-6)
except NonFiniteError as e:
    finite = check_snapshot(e.last_good).finite
    solver.restore(e.last_good[1])  # pycaffe reads back what was kept
    print(json.dumps([e.iteration, e.last_good, str(e), finite, solver.iter]))
"""


def test_keep_good_keeps_the_last_two_finite_snapshots_and_names_the_last_when_it_stops(
    caffe, tmp_path
):
    """Batch 4 of 5 holds a NaN: iterations 0 to 3 are finite, each followed by a snapshot; the
    first shows the guard the prefix (pycaffe does not tell it: Caffe's INFO line does), so it
    is never removed."""
    import json
    import os
    import subprocess
    import sys

    prefix = tmp_path / "keep"
    policy = f'lr_policy: "fixed"\nsnapshot_prefix: "{prefix}"'
    path = regression(tmp_path, layers=TWO_LAYERS, nan_row=17, policy=policy, rows=20)
    done = subprocess.run(
        [sys.executable, "-c", KEEP_GOOD, path],
        capture_output=True,
        text=True,
        env=dict(os.environ, GLOG_minloglevel="0"),
        timeout=300,
    )
    iteration, last_good, message, finite, resumed = json.loads(done.stdout)
    assert iteration == 4 and finite is True and resumed == 4
    assert last_good == [f"{prefix}_iter_4.caffemodel", f"{prefix}_iter_4.solverstate"]
    assert f"last finite snapshot: {prefix}_iter_4.caffemodel" in message
    assert "(iteration 4); resume from it with solver.restore(" in message
    left = sorted(p.name for p in tmp_path.glob("keep_iter_*"))
    assert left == [
        f"keep_iter_{i}.{kind}" for i in (1, 3, 4) for kind in ("caffemodel", "solverstate")
    ]
    assert "Snapshotting to binary proto file" in done.stderr  # Caffe's lines passed on


def test_keep_good_of_a_wrong_kind_stops_before_any_step(caffe, tmp_path):
    solver = caffe.SGDSolver(regression(tmp_path, layers=TWO_LAYERS))
    with pytest.raises(ValueError, match="keep_good=-5"):
        guard.step(solver, 3, keep_good=-5)
    assert solver.iter == 0
