"""A snapshot's files checked for non-finite values without pycaffe: the weights and the solver
state's history blobs, wherever the bad value sits; a file being written, missing or not
Caffe's is not called finite."""

import numpy as np
import pytest

from caffe_nantools.arguments import ArgumentError
from caffe_nantools.finite_snapshot import check_snapshot, keep_every
from snapshot_files import caffemodel, solverstate, write_snapshot

LAYERS = {"conv1": [np.ones((4, 3, 2, 2)), np.zeros(4)], "fc": [np.full((2, 16), 0.5), np.ones(2)]}


def test_a_snapshot_of_finite_values_is_finite_with_its_iteration(tmp_path):
    files = write_snapshot(str(tmp_path / "snap"), 120, LAYERS)
    found = check_snapshot(files)
    assert found.finite is True and found.iteration == 120 and found.complete
    assert found.detail == "every value finite"


@pytest.mark.parametrize(
    "layer, param, bad", [("conv1", 0, np.nan), ("fc", 1, np.inf), ("fc", 0, -np.inf)]
)
def test_a_non_finite_weight_is_named_with_its_layer_and_param(tmp_path, layer, param, bad):
    layers = {name: [p.copy() for p in ps] for name, ps in LAYERS.items()}
    layers[layer][param].flat[-1] = bad
    files = write_snapshot(str(tmp_path / "s"), 7, layers)
    found = check_snapshot(files)
    assert found.finite is False
    assert f"{files[0]}: layer '{layer}' param {param}: " in found.detail


@pytest.mark.parametrize("k", [0, 2, 3])
def test_a_non_finite_history_blob_of_the_solver_state_makes_it_not_finite(tmp_path, k):
    history = [np.zeros(6) for _ in range(4)]
    history[k][k] = np.nan
    files = write_snapshot(str(tmp_path / "s"), 30, LAYERS, history)
    found = check_snapshot(files)
    assert found.finite is False and f"{files[1]}: history blob {k}: 1 NaN" in found.detail


def test_a_solver_state_still_being_written_is_not_complete(tmp_path):
    state = tmp_path / "s_iter_5.solverstate"
    state.write_bytes(solverstate(5, "s_iter_5.caffemodel", [np.ones(3)], complete=False))
    found = check_snapshot([str(state)])
    assert found.finite is True and not found.complete


@pytest.mark.parametrize(
    "content, why",
    [
        (None, "not found"),
        (b"\x0b\x0c\x0d", "not a snapshot Caffe wrote"),
        (caffemodel(LAYERS)[:-7], "not a snapshot"),
    ],
)
def test_a_file_that_cannot_be_read_is_not_called_finite(tmp_path, content, why):
    model = tmp_path / "m.caffemodel"
    if content is not None:
        model.write_bytes(content)
    found = check_snapshot([str(model)])
    assert found.finite is None and why in found.detail


def test_keep_good_is_seconds_or_zero_for_never():
    assert keep_every("keep_good", 0) == 0.0 and keep_every("keep_good", None) == 0.0
    assert keep_every("keep_good", 2) == 2.0
    for wrong in (-1, float("nan"), "60", True):
        with pytest.raises(ArgumentError, match="keep_good="):
            keep_every("keep_good", wrong)
