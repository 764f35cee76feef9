"""replay's side that needs no Caffe: what is not a bundle, or an incomplete one, is one line;
the report tells what hunt saw fail, kept from the bundle's manifest as the error it was; a
Python layer's module is checked before Caffe imports it; hunt's seal tells its own bundle
from an edited one, which decides whether an abort is a finding or the bundle's fault."""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from caffe_nantools.arguments import ArgumentTypeError
from caffe_nantools.bundle import (
    changed_since_hunt,
    check_python_layers,
    copy_weights,
    find_bundle,
    open_bundle,
    seal,
)
from caffe_nantools.children import fatal_line
from caffe_nantools.cli import main
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.replay import Abort, ReplayError, ReplayReport, Row, layer_being_set_up, replay


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


def test_an_older_hunts_workdir_is_taken_for_its_checked_replay_folder(tmp_path):
    folder = bundle(tmp_path / "hunt-old" / "checked" / "replay")
    assert find_bundle(str(tmp_path / "hunt-old")) == folder
    # the current place wins where a workdir has both
    newer = bundle(tmp_path / "hunt-old" / "replay")
    assert find_bundle(str(tmp_path / "hunt-old")) == newer


def test_the_manifest_itself_names_its_bundle(tmp_path, monkeypatch):
    folder = bundle(tmp_path / "b")
    assert find_bundle(os.path.join(folder, "manifest.json")) == folder
    monkeypatch.chdir(folder)
    assert find_bundle("manifest.json") == os.curdir


@pytest.mark.parametrize(
    "name, match",
    [
        ("gone", "gone: no such folder; give the bundle hunt wrote"),
        ("weights.caffemodel", "weights.caffemodel: not a replay bundle"),
    ],
)
def test_a_path_that_is_no_bundle_folder_is_one_line(tmp_path, capsys, name, match):
    folder = bundle(tmp_path / "b")
    path = os.path.join(folder, name)
    with pytest.raises(ReplayError, match=match):
        replay(path)
    assert main(["replay", path]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: replay(3), "bundle=3: must be a path (a str or os.PathLike)"),
        (lambda: replay(b"bundle"), "bundle=b'bundle': must be a path (a str or os.PathLike)"),
        (lambda: replay("bundle", gpu="1"), "gpu='1': must be an integer (0 or more)"),
        (lambda: replay("bundle", gpu=1.0), "gpu=1.0: must be an integer (0 or more)"),
        (lambda: replay("bundle", gpu=True), "gpu=True: must be an integer (0 or more)"),
    ],
)
def test_replays_arguments_are_checked_as_the_other_commands(call, message):
    with pytest.raises(ArgumentTypeError) as info:
        call()
    assert str(info.value) == message


def test_hunts_seal_tells_its_bundle_from_an_edited_one(tmp_path):
    folder = bundle(tmp_path / "b")
    assert "no sha256 digests" in changed_since_hunt(open_bundle(folder))
    seal(folder)
    assert changed_since_hunt(open_bundle(folder)) is None
    np.save(os.path.join(folder, "target.npy"), np.full((2, 1), 3, np.float32))
    assert changed_since_hunt(open_bundle(folder)) == "target.npy is not the file hunt wrote"
    seal(folder)
    with open(os.path.join(folder, "net.prototxt"), "a") as f:
        f.write("# edited\n")
    assert changed_since_hunt(open_bundle(folder)) == "net.prototxt is not the file hunt wrote"


PYTHON_NET = NET.replace(
    'layer { name: "cost"',
    'layer { name: "gate" type: "Python" bottom: "fc" top: "gated" python_param { module: "MODULE" '
    'layer: "CLASS" } }\nlayer { name: "cost"',
).replace('bottom: "fc" bottom: "target"', 'bottom: "gated" bottom: "target"')


def python_bundle(folder, module="gates_x9", cls="Gate"):
    return open_bundle(
        bundle(folder, net_text=PYTHON_NET.replace("MODULE", module).replace("CLASS", cls))
    )


def test_a_python_layers_module_and_class_are_checked(tmp_path, monkeypatch):
    found = python_bundle(tmp_path / "b", module="gates_x9", cls="Gate")
    with pytest.raises(ReplayError) as info:
        check_python_layers(found)
    assert str(info.value) == (
        f"{found.net_path}:4: Python layer 'gate': module 'gates_x9' is not found here; put the "
        f"folder that holds it on PYTHONPATH (or the module in {found.folder})"
    )
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "gates_x9.py").write_text("class Gate:\n    pass\n\nOther = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    check_python_layers(found)
    other = python_bundle(tmp_path / "c", module="gates_x9", cls="Other")
    with pytest.raises(
        ReplayError, match=r"module 'gates_x9' \(.*gates_x9.py\) has no class 'Other'"
    ):
        check_python_layers(other)


def test_a_python_layers_module_that_fails_to_load_is_named_with_why(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "gates_y4.py").write_text("import missing_dependency_q7\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    with pytest.raises(ReplayError) as info:
        check_python_layers(python_bundle(tmp_path / "b", module="gates_y4"))
    assert "importing module 'gates_y4' failed (ModuleNotFoundError: " in str(info.value)
    assert "missing_dependency_q7" in str(info.value) and "PYTHONPATH" not in str(info.value)


@pytest.mark.parametrize(
    "abort, line",
    [
        (
            Abort(
                "backward",
                "relu3",
                "b/net.prototxt:9",
                "Caffe ended the process: x.hpp:56] Not Implemented Yet",
            ),
            "stopped: the backward of layer 'relu3' (b/net.prototxt:9) failed: Caffe ended the process: "
            "x.hpp:56] Not Implemented Yet (the bundle is as hunt wrote it: the net itself fails here)",
        ),
        (
            Abort("setup", None, None, "the process was killed by SIGSEGV"),
            "stopped: the net's set-up failed: the process was killed by SIGSEGV (the bundle is as "
            "hunt wrote it: the net itself fails here)",
        ),
    ],
)
def test_an_abort_in_a_bundle_as_hunt_wrote_it_is_a_finding(abort, line):
    row = Row("data", "fc: fc", 6, 0, 0, 0, 0, -1.0, 2.0, 0.5)
    report = ReplayReport(5, guard_error(), forward=[row], abort=abort)
    text = report.format().splitlines()
    assert text[:2] == ["iteration 5: every value finite up to there", line]
    assert "the update (its rate, its step)" not in report.format()
    assert report.return_code == 1 and json.loads(report.to_json())["abort"] == abort.to_dict()


def test_caffes_fatal_line_and_the_layer_it_was_setting_up_are_read_from_its_log():
    log = (
        "I0101 10:00:00.000001  77 net.cpp:86] Creating Layer feed\n"
        "I0101 10:00:00.000002  77 net.cpp:122] Setting up feed\n"
        "I0101 10:00:00.000003  77 net.cpp:86] Creating Layer loss 2\n"
        "F0101 10:00:00.000004  77 loss.cpp:12] Check failed: a == b (3 vs. 1) Inputs differ.\n"
        "*** Check failure stack trace: ***\n"
        "F0101 10:00:00.000005  77 other.cpp:1] a second one\n"
    )
    assert fatal_line(log) == "loss.cpp:12] Check failed: a == b (3 vs. 1) Inputs differ."
    assert fatal_line("I0101 10:00:00.000001  77 net.cpp:86] fine\n") is None
    assert layer_being_set_up(log) == "loss 2"
    assert layer_being_set_up(log.split("I0101 10:00:00.000003")[0]) is None  # past feed's set-up
