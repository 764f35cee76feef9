"""replay's side that needs no Caffe: what is not a bundle, or an incomplete one, is one line;
the report tells what hunt saw fail, kept from the bundle's manifest as the error it was."""

import json

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.replay import ReplayError, ReplayReport, replay


def guard_error(pass_="update", iteration=7):
    weights = np.array([[1.0, np.nan], [np.inf, 2.0]], np.float32)
    return NonFiniteError(
        layer="ip2",
        blob="param 0",
        pass_=pass_,
        phase="TRAIN",
        iteration=iteration,
        stats=finite_stats(weights),
        lr=float("inf"),
        by="guard",
    )


def bundle(folder, **manifest):
    folder.mkdir()
    np.save(folder / "data.npy", np.zeros((2, 3), np.float32))
    record = {"net": "net.prototxt", "weights": "w.caffemodel", "inputs": {"data": "data.npy"}}
    (folder / "manifest.json").write_text(json.dumps({**record, **manifest}))
    return str(folder)


@pytest.mark.parametrize("pass_, update_line", [("update", True), ("backward", False)])
def test_the_report_says_what_hunt_saw_and_keeps_it_in_its_json(pass_, update_line):
    error = guard_error(pass_)
    record = json.loads(json.dumps(error.to_dict()))
    report = ReplayReport(7, NonFiniteError.from_dict(record))
    text = report.format()
    assert text.splitlines()[1] == f"hunt saw: {error}"
    assert ("the update (its rate, its step) made the weights bad" in text) == update_line
    assert report.to_dict()["error"] == error.to_dict() and report.return_code == 0
    assert json.loads(report.to_json())["error"]["lr"] == "inf"  # strict JSON: the rate as text


def test_a_folder_without_a_manifest_is_not_a_bundle(tmp_path, capsys):
    with pytest.raises(ReplayError, match="not a replay bundle"):
        replay(str(tmp_path))
    assert main(["replay", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hunt writes one in WORKDIR/replay" in err


@pytest.mark.parametrize(
    "manifest",
    [
        {"inputs": {"data": "gone.npy"}},
        {"inputs": []},
        {"error": {"layer": "ip2"}},  # cut short
        {"error": "nan"},
        {"error": dict(guard_error().to_dict(), bad_samples=7)},
    ],
)
def test_an_incomplete_bundle_is_one_line(tmp_path, capsys, manifest):
    folder = bundle(tmp_path / "replay", **manifest)
    with pytest.raises(ReplayError, match="the bundle is incomplete"):
        replay(folder)
    assert main(["replay", folder]) == 2
    assert capsys.readouterr().err.count("\n") == 1
