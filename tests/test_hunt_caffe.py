"""hunt on real trainings that go wrong in known ways: the cause, the place, the record, the
replay of the failing iteration, and a fix shown to work. Layer names and fault positions vary
as a user's nets would."""

import json
import os
import textwrap

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from caffe_nantools.replay import replay
from hunt_nets import (
    assert_names_the_record,
    classifier,
    dummy_classifier,
    float_lmdb,
    lmdb_layer,
    solver,
)


@pytest.mark.parametrize("layer_name, bad, batch", [("data", 13, 4), ("mnist_in", 22, 5)])
def test_a_nan_record_in_an_lmdb_is_named_by_its_key(caffe, here, layer_name, bad, batch):
    float_lmdb(here / "train_lmdb", bad=(bad,))
    (here / "net.prototxt").write_text(classifier(lmdb_layer(layer_name, "train_lmdb", batch)))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert_names_the_record(v, layer_name, "train_lmdb", bad, batch)
    assert fix.verified and os.path.isdir(fix.files["net"].rsplit("/fix/", 1)[0] + "/clean")
    first = replay(report.training.replay).first_bad
    assert first.name == f"{layer_name}: data" and first.what == "data"
    assert report.return_code == 1


@pytest.mark.parametrize("bad_row", [2, 9])
def test_a_nan_row_in_hdf5_is_named_file_and_row(caffe, here, bad_row):
    import h5py

    x = np.random.RandomState(1).randn(16, 4).astype(np.float32)
    x[bad_row, 1] = np.nan
    with h5py.File(str(here / "part.h5"), "w") as f:
        f["data"], f["label"] = x, (np.arange(16) % 3).astype(np.float32)
    (here / "list.txt").write_text("part.h5\n")
    data = 'layer { name: "rows" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "list.txt" batch_size: 4 } }\n'
    (here / "net.prototxt").write_text(classifier(data))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, v.iteration) == ("bad_input", "rows", bad_row // 4)
    assert (
        v.record.to_dict() == {"source": "list.txt", "key": f"part.h5:{bad_row}"} and fix.verified
    )


REGRESSION = textwrap.dedent("""\
    layer { name: "data" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "train.txt" batch_size: 4 } }
    layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
    layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
    layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }
    """)


def regression_data(folder):
    import h5py

    rng = np.random.RandomState(0)
    x = rng.randn(32, 16).astype(np.float32)
    with h5py.File(str(folder / "train.h5"), "w") as f:
        f["data"], f["label"] = x, (x.sum(1, keepdims=True) * 3).astype(np.float32)
    (folder / "train.txt").write_text("train.h5\n")
    (folder / "net.prototxt").write_text(REGRESSION)


def test_a_rate_far_too_high_is_exploding_gradients_and_a_lower_one_is_verified(caffe, here):
    regression_data(here)
    report = hunt(solver(here, lr=0.3), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "exploding_gradients" and v.pass_ in ("forward", "backward", "update")
    assert fix.verified and fix.tries[-1]["finite"]
    assert all(t["base_lr"] < 0.3 for t in fix.tries) and "clip_gradients" in fix.change
    assert replay(report.training.replay).first_bad is not None


def test_poly_without_max_iter_is_the_lr_policy_and_max_iter_fixes_it(caffe, here):
    regression_data(here)
    (here / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "poly"\npower: 1\nsolver_mode: CPU\n'
    )
    report = hunt("solver.prototxt", workdir="hunt", iters=10)
    v, fix = report.verdict, report.fix
    assert (v.cause, v.iteration, v.pass_) == ("lr_policy", 0, "update")
    assert fix.change == "max_iter: 10" and fix.verified
    replayed = replay(report.training.replay)
    assert replayed.first_bad is None and "the update" in replayed.format()  # the rate, not the net


@pytest.mark.parametrize("name", ["log_feat", "take_log"])
def test_log_of_a_relu_output_is_the_log_layer_in_the_forward_pass(caffe, here, name):
    extra = f'layer {{ name: "{name}" type: "Log" bottom: "fc_hidden" top: "logged" }}'
    (here / "net.prototxt").write_text(dummy_classifier(extra, "logged"))
    report = hunt(solver(here), workdir="hunt", iters=5)
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, v.pass_, v.iteration) == ("layer_numerics", name, "forward", 0)
    assert f"Log '{name}': log_param shift" in fix.change and fix.verified
    assert replay(report.training.replay).first_bad.name == f"{name}: logged"


def test_a_square_root_after_a_relu_is_the_power_layer_in_the_backward_pass(caffe, here):
    extra = 'layer { name: "root" type: "Power" bottom: "fc_hidden" top: "rooted" power_param { power: 0.5 } }'
    (here / "net.prototxt").write_text(dummy_classifier(extra, "rooted"))
    report = hunt(solver(here), workdir="hunt", iters=5)
    v = report.verdict
    assert (v.layer, v.pass_, v.iteration) == ("root", "backward", 0)
    first = replay(report.training.replay).first_bad
    assert (first.what, first.name) == ("diff", "root: fc_hidden")


def test_a_max_pooling_window_past_the_input_is_the_pooling_layer(caffe, here):
    (here / "net.prototxt").write_text(
        textwrap.dedent("""\
        layer { name: "data" type: "DummyData" top: "data" top: "label"
                dummy_data_param { shape { dim: 4 dim: 1 dim: 9 dim: 9 } shape { dim: 4 }
                                   data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 } } }
        layer { name: "squeeze" type: "Pooling" bottom: "data" top: "squeezed" pooling_param { pool: MAX kernel_size: 3 stride: 5 } }
        layer { name: "ip1" type: "InnerProduct" bottom: "squeezed" top: "ip1" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
        """)
    )
    report = hunt(solver(here), workdir="hunt", iters=3)
    v = report.verdict
    assert (v.cause, v.layer, v.pass_) == ("config", "squeeze", "forward")
    first = replay(report.training.replay).first_bad
    assert first.name == "squeeze: squeezed" and first.huge and not first.nan


def test_a_batchnorm_without_eps_on_an_all_zero_feature_after_a_reshape_is_the_batchnorm(
    caffe, here
):
    (here / "net.prototxt").write_text(
        textwrap.dedent("""\
        layer { name: "data" type: "DummyData" top: "data" top: "label"
                dummy_data_param { shape { dim: 4 dim: 2 dim: 3 } shape { dim: 4 }
                                   data_filler { type: "constant" value: 0 } data_filler { type: "constant" value: 1 } } }
        layer { name: "flat" type: "Reshape" bottom: "data" top: "flat" reshape_param { shape { dim: 0 dim: -1 } } }
        layer { name: "norm" type: "BatchNorm" bottom: "flat" top: "normed" batch_norm_param { eps: 0 } }
        layer { name: "ip1" type: "InnerProduct" bottom: "normed" top: "ip1" inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
        """)
    )
    report = hunt(solver(here), workdir="hunt", iters=3)
    v = report.verdict
    assert v.cause in ("layer_numerics", "config") and (v.layer, v.pass_) == ("norm", "forward")
    assert replay(report.training.replay).first_bad.name == "norm: normed"


def test_a_caffe_abort_on_a_net_setting_is_config_with_the_fatal_line_and_a_fix(caffe, here):
    data = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        "shape { dim: 4 dim: 6 } shape { dim: 4 dim: 1 } } }\n"
    )
    (here / "net.prototxt").write_text(
        data
        + textwrap.dedent("""\
        layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 2 } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }
        """)
    )
    report = hunt(solver(here), workdir="hunt", iters=3)
    v, fix = report.verdict, report.fix
    assert v.cause == "config" and any("Check failed" in e for e in v.evidence)
    assert "num_output" in fix.change and fix.verified


def test_a_healthy_run_is_none_and_exit_0(caffe, here, capsys):
    float_lmdb(here / "train_lmdb")
    (here / "net.prototxt").write_text(classifier(lmdb_layer("data", "train_lmdb")))
    assert main(["hunt", solver(here), "--workdir", "hunt", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"]["cause"] == "none"
    # The stages in the order they ran, each with how it ended, as a pre-commit run lists them.
    stages = {s["name"]: s for s in report["stages"]}
    assert [s["name"] for s in report["stages"]] == [
        "read",
        "lint",
        "scan",
        "checked copies",
        "train",
        "reproducible",
        "verify the fix",
    ]
    assert (
        stages["scan"]["status"] == "ok"
        and "40 records of train_lmdb: none bad" in stages["scan"]["summary"]
    )
    assert stages["train"]["status"] == "ok" and stages["train"]["detail"]["iterations"] == 20
    assert stages["reproducible"]["status"] == "skipped" and report["reproducible"] is None
    assert stages["verify the fix"]["status"] == "skipped"
    assert report["workdir"] == "hunt" and not os.path.exists("snap_iter_20.caffemodel")
    assert sorted(os.listdir(here)) == ["hunt", "net.prototxt", "solver.prototxt", "train_lmdb"]


def test_the_demo_hunts_the_planted_record(caffe, tmp_path, capsys):
    from caffe_nantools import demo

    result = demo.run(bad_record=30, folder=str(tmp_path))
    assert (
        result.found
        and result.report.verdict.layer == "data"
        and result.report.verdict.iteration == 30 // demo.BATCH
    )
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert (
        "cause: bad_input" in out and "record: 00000021 of demo_lmdb" in out and "(verified:" in out
    )


def test_hunt_reads_the_users_net_and_solver_once(caffe, here, monkeypatch):
    # Every stage (lint, scan, the checked training, the verdict, the records, the fix) takes
    # the facts hunt read at the start. The user's text is parsed again only to start a copy:
    # each solver copy, the fix's tree, the checked net made from the text unchanged, the fix's
    # diff of the user's solver.
    import builtins

    from caffe_nantools.prototxt import syntax

    float_lmdb(here / "train_lmdb", bad=(6,))
    data = "".join(
        lmdb_layer(name, "train_lmdb").replace(
            "layer {", f"layer {{ include {{ phase: {phase} }}", 1
        )
        for name, phase in (("train_in", "TRAIN"), ("test_in", "TEST"))
    )
    (here / "net.prototxt").write_text(classifier(data))
    solver(here, extra="test_iter: 2\ntest_interval: 5\n")
    texts = {name: (here / name).read_text() for name in ("net.prototxt", "solver.prototxt")}
    opened, parsed = [], []
    real_open, real_parse = builtins.open, syntax._Parser.parse

    def counting_open(file, *args, **kwargs):
        opened.append(os.path.relpath(os.path.abspath(file), here))
        return real_open(file, *args, **kwargs)

    def counting_parse(parser):
        parsed.extend(n for n, t in texts.items() if parser.text == t and parser.path == n)
        return real_parse(parser)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(syntax._Parser, "parse", counting_parse)
    report = hunt("solver.prototxt", workdir="hunt")
    v, fix = report.verdict, report.fix
    # The bad record reaches the test pass too: the fix points both data layers at the clean copy.
    assert v.cause == "bad_input" and fix.verified
    assert fix.change.startswith("train_in's and test_in's source train_lmdb without")
    assert opened.count("net.prototxt") == 1 and opened.count("solver.prototxt") == 1
    copies = [p for p in opened if os.path.basename(p).startswith(".solver.prototxt.")]
    assert len(copies) == 3  # checked, fix, the fix on another seed
    # ... and once more for the fix's diff against the user's own solver.
    assert parsed.count("solver.prototxt") == 1 + len(copies) + 1
    assert parsed.count("net.prototxt") == 1 + 1 + 1
