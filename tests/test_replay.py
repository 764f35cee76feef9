"""replay's side that needs no Caffe: what is not a bundle, or an incomplete one, is one line;
the report tells what hunt saw fail, kept from the bundle's manifest as the error it was."""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.bundle import copy_weights, find_bundle, open_bundle
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


NET = """\
name: "tiny"
layer { name: "feed" type: "Input" top: "pixels" top: "target" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "pixels" top: "fc" inner_product_param { num_output: 1 } }
layer { name: "cost" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "cost" }
"""
#: The net's params, as pycaffe's net.params shows them: fc's weights (1, 3) and bias (1,).
PARAMS = {"fc": [(1, 3), (1,)]}


def varint(n):
    out = b""
    while True:
        out += bytes([n & 0x7F | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def caffemodel(layers, *, legacy=False):
    """A binary NetParameter as Caffe's net.save writes it: layer name -> its param arrays."""
    out = b""
    for name, arrays in layers.items():
        blobs = b""
        for a in arrays:
            a = np.asarray(a, np.float32)
            if legacy:  # num, channels, height, width
                dims = (1,) * (4 - a.ndim) + a.shape
                shape = b"".join(varint(k << 3) + varint(d) for k, d in enumerate(dims, 1))
            else:
                shape = field(7, field(1, b"".join(varint(d) for d in a.shape)))
            blobs += field(7, shape + field(5, a.astype("<f4").tobytes()))
        out += field(100, field(1, name.encode()) + blobs)
    return out


def good_weights():
    return {"fc": [np.arange(3, dtype=np.float32).reshape(1, 3), np.ones(1, np.float32)]}


def bundle(folder, weights=None, arrays=None, net_text=NET, **manifest):
    """A complete bundle as hunt writes it, with what a test changes."""
    folder.mkdir(parents=True)
    arrays = arrays or {
        "pixels": np.zeros((2, 3), np.float32),
        "target": np.ones((2, 1), np.float32),
    }
    for top, array in arrays.items():
        np.save(folder / f"{top}.npy", array)
    (folder / "net.prototxt").write_text(net_text)
    (folder / "weights.caffemodel").write_bytes(
        caffemodel(weights or good_weights()) if not isinstance(weights, bytes) else weights
    )
    record = {
        "net": "net.prototxt",
        "weights": "weights.caffemodel",
        "inputs": {top: f"{top}.npy" for top in arrays},
        "iteration": 4,
    }
    (folder / "manifest.json").write_text(json.dumps({**record, **manifest}))
    return str(folder)


def net_params(shapes=PARAMS):
    return {
        name: [SimpleNamespace(data=np.zeros(s, np.float32)) for s in blobs]
        for name, blobs in shapes.items()
    }


def refused(folder, capsys, match):
    """The bundle is refused before Caffe: one line, exit 2."""
    with pytest.raises(ReplayError, match=match):
        open_bundle(folder)
    assert main(["replay", folder]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("caffe-nantools replay: error: ")
    return err


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


def test_a_hunt_workdir_is_taken_for_its_replay_folder(tmp_path):
    folder = bundle(tmp_path / "nantools-hunt-1" / "replay")
    assert find_bundle(str(tmp_path / "nantools-hunt-1")) == folder
    assert find_bundle(folder) == folder
    with pytest.raises(ReplayError, match="nor replay/manifest.json as in a hunt workdir"):
        find_bundle(str(tmp_path))


def test_a_complete_bundle_is_read_with_its_weights_and_inputs(tmp_path):
    found = open_bundle(bundle(tmp_path / "b"))
    assert found.iteration == 4 and set(found.inputs) == {"pixels", "target"}
    params = net_params()
    copy_weights(found, params)
    assert params["fc"][0].data.tolist() == [[0, 1, 2]] and params["fc"][1].data.tolist() == [1]


def test_weights_in_caffes_legacy_4d_shape_are_copied_too(tmp_path):
    folder = bundle(tmp_path / "b", weights=caffemodel(good_weights(), legacy=True))
    params = net_params()
    copy_weights(open_bundle(folder), params)
    assert params["fc"][0].data.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize(
    "weights, match",
    [
        (b"", "an empty file, not the weights of a net"),
        (
            caffemodel(good_weights())[:-5],
            "not a binary caffemodel .*cut short, or another kind of file",
        ),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a binary caffemodel"),
    ],
)
def test_weights_that_are_not_a_caffemodel_are_refused(tmp_path, capsys, weights, match):
    refused(bundle(tmp_path / "b", weights=weights), capsys, match)


def test_deleted_weights_are_an_incomplete_bundle(tmp_path, capsys):
    folder = bundle(tmp_path / "b")
    os.unlink(os.path.join(folder, "weights.caffemodel"))
    refused(folder, capsys, r"the bundle is incomplete \(weights.caffemodel is missing\)")


@pytest.mark.parametrize(
    "weights, match",
    [
        # another net's weights: Caffe would keep fc's random fillers and replay another iteration
        ({"conv1": [np.ones((4, 3, 3, 3))]}, "holds none of the net's params \\(layers fc\\)"),
        (
            {"fc": [np.ones((3, 1)), np.ones(1)]},
            "layer 'fc' param 0: shape \\(3, 1\\) with 3 values, the net's is shape \\(1, 3\\)",
        ),
        ({"fc": [np.ones((1, 3))]}, "layer 'fc' has 1 params here, 2 in the net"),
    ],
)
def test_weights_not_of_this_net_are_refused_before_a_value_is_copied(tmp_path, weights, match):
    found = open_bundle(bundle(tmp_path / "b", weights=weights))
    params = net_params()
    with pytest.raises(ReplayError, match=match):
        copy_weights(found, params)
    assert not any(blob.data.any() for blobs in params.values() for blob in blobs)


def test_weights_that_lack_one_layer_are_refused(tmp_path):
    found = open_bundle(bundle(tmp_path / "b"))
    with pytest.raises(ReplayError, match="holds no params for layer 'head'"):
        copy_weights(found, net_params({**PARAMS, "head": [(2, 1)]}))


@pytest.mark.parametrize("shape", [(3, 2), (1, 3), (2, 3, 1)])
def test_an_input_of_another_shape_than_the_nets_is_refused(tmp_path, capsys, shape):
    inputs = {"pixels": np.zeros(shape, np.float32), "target": np.zeros((2, 1), np.float32)}
    err = refused(bundle(tmp_path / "b", arrays=inputs), capsys, "the input of 'pixels' has shape")
    assert f"shape ({', '.join(map(str, shape))}), the net's Input layer (2, 3)" in err


def test_a_manifest_naming_a_top_the_net_lacks_is_refused(tmp_path, capsys):
    inputs = {"pixels": np.zeros((2, 3)), "target": np.zeros((2, 1)), "labels": np.zeros(2)}
    refused(
        bundle(tmp_path / "b", arrays=inputs),
        capsys,
        "input 'labels' is not a top of the net's Input layers",
    )


def test_an_input_top_without_its_batch_is_refused(tmp_path, capsys):
    refused(
        bundle(tmp_path / "b", arrays={"pixels": np.zeros((2, 3))}),
        capsys,
        "no input for the net's Input tops target",
    )


@pytest.mark.parametrize("name", ["/etc/passwd", "../net.prototxt", "sub/net.prototxt", "..", 7])
def test_a_file_named_outside_the_bundle_is_refused(tmp_path, capsys, name):
    (tmp_path / "net.prototxt").write_text(NET)
    err = refused(bundle(tmp_path / "b", net=name), capsys, "not a file of the bundle")
    assert repr(name) in err


def test_an_input_that_is_a_pickle_is_refused_unread(tmp_path, capsys):
    folder = bundle(tmp_path / "b")
    np.save(os.path.join(folder, "target.npy"), np.array([{"x": 1}], dtype=object))
    refused(folder, capsys, "target.npy: not a .npy array")


def test_a_layer_reading_a_blob_nothing_makes_is_refused(tmp_path, capsys):
    net = NET.replace('bottom: "fc" bottom: "target"', 'bottom: "fc2" bottom: "target"')
    refused(
        bundle(tmp_path / "b", net_text=net),
        capsys,
        "layer 'cost' reads 'fc2', which no layer before it makes",
    )


@pytest.mark.parametrize(
    "manifest",
    [
        {"inputs": {"pixels": "gone.npy"}},
        {"inputs": []},
        {"error": {"layer": "ip2"}},  # cut short
        {"error": "nan"},
        {"error": dict(guard_error().to_dict(), bad_samples=7)},
    ],
)
def test_an_incomplete_bundle_is_one_line(tmp_path, capsys, manifest):
    folder = bundle(tmp_path / "replay", **manifest)
    with pytest.raises(
        ReplayError, match="the bundle is incomplete|'inputs' must map each data top"
    ):
        replay(folder)
    assert main(["replay", folder]) == 2
    assert capsys.readouterr().err.count("\n") == 1
