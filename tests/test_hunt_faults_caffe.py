"""hunt on the faults a Caffe user brings, with real Caffe: a bad LevelDB record, an image list
naming an image that is broken or gone, class labels the classifier cannot have, a NaN
regression target, solvers written the ways users write them, and a square root at 0 in the
backward pass. Layer names and fault positions vary as a user's nets would."""

import os
import textwrap

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from hunt_nets import (
    assert_names_the_record,
    classifier,
    dummy_classifier,
    float_store,
    lmdb_layer,
    solver,
)
from needs import need


@pytest.mark.parametrize(
    "layer_name, bad, value, batch",
    [("ldb_in", 9, np.inf, 4), ("pixels", 26, np.nan, 6), ("data", 0, -np.inf, 5)],
)
def test_a_non_finite_record_in_a_leveldb_is_named_by_its_key(
    caffe, here, layer_name, bad, value, batch
):
    float_store(here / "train_leveldb", "leveldb", bad=(bad,), value=value)
    (here / "net.prototxt").write_text(
        classifier(lmdb_layer(layer_name, "train_leveldb", batch, backend="LEVELDB"))
    )
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert_names_the_record(v, layer_name, "train_leveldb", bad, batch)
    assert fix.verified and "without its 1 bad record" in fix.change


def image_list(folder, *, count=12, root="imgs", kind="png"):
    """``count`` small images under ``root`` and list.txt naming them (label ``i % 3``)."""
    Image = need("PIL.Image")
    (folder / root).mkdir()
    names = []
    for i in range(count):
        pixels = (np.random.RandomState(i).rand(6, 6, 3) * 255).astype(np.uint8)
        names.append(f"pic_{i}.{kind}")
        Image.fromarray(pixels).save(str(folder / root / names[-1]))
    (folder / "list.txt").write_text("".join(f"{n} {i % 3}\n" for i, n in enumerate(names)))
    return names


def image_net(layer_name, root="imgs", batch=4):
    return classifier(
        f'layer {{ name: "{layer_name}" type: "ImageData" top: "data" top: "label" '
        f'image_data_param {{ source: "list.txt" root_folder: "{root}/" batch_size: {batch} }} }}\n'
    )


@pytest.mark.parametrize(
    "damage, kind, bad, layer_name",
    [
        ("truncated", "png", 5, "pics"),
        ("truncated", "jpg", 9, "photos"),
        ("missing", "png", 2, "images_in"),
    ],
)
def test_an_image_that_does_not_decode_or_is_gone_is_named_by_its_list_line(
    caffe, here, damage, kind, bad, layer_name
):
    names = image_list(here, kind=kind)
    path = here / "imgs" / names[bad]
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    (here / "net.prototxt").write_text(image_net(layer_name))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    # Caffe stops on the image (a failed CHECK: "Could not load"), or decodes what is left of
    # it; either way the verdict names the line's image.
    assert (v.cause, v.layer) == ("bad_input", layer_name)
    assert v.record.to_dict() == {"source": "list.txt", "key": names[bad]}
    if report.training.aborted:
        assert any(f"Could not load {names[bad]}" in e for e in v.evidence)
    assert fix.verified
    assert (here / "list.txt").read_text().count("\n") == 12  # the user's list is kept


@pytest.mark.parametrize(
    "labels, classes, layer_name",
    [({6: 3, 17: -1}, 3, "digits"), ({3: 5}, 5, "data"), ({0: -2, 39: 9}, 4, "train_in")],
)
def test_class_labels_out_of_range_are_named_whatever_caffe_makes_of_them(
    caffe, here, labels, classes, layer_name
):
    float_store(here / "train_lmdb", labels=labels)
    (here / "net.prototxt").write_text(
        classifier(lmdb_layer(layer_name, "train_lmdb"), classes=classes)
    )
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    bad = {f"{i:08d}" for i in labels}
    assert v.cause == "bad_input" and {r.key for r in v.records} == bad
    assert v.record.key in bad and v.record.source == "train_lmdb"
    assert f"without its {len(bad)} bad record" in fix.change and fix.verified
    assert report.return_code == 1


def test_a_label_far_past_the_classes_that_crashes_caffe_is_named(caffe, here):
    float_store(here / "train_lmdb", labels={10: 2_000_000_000})
    (here / "net.prototxt").write_text(classifier(lmdb_layer("digits", "train_lmdb")))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause in ("caffe_abort", "bad_input") and v.record.key == "00000010"
    assert fix.verified


REGRESSION = textwrap.dedent("""\
    layer {{ name: "{layer}" type: "HDF5Data" top: "data" top: "target" hdf5_data_param {{ source: "files.txt" batch_size: 4 }} }}
    layer {{ name: "fit" type: "InnerProduct" bottom: "data" top: "fit" inner_product_param {{ num_output: 1 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "l2" type: "EuclideanLoss" bottom: "fit" bottom: "target" top: "l2" }}
    """)


@pytest.mark.parametrize("layer_name, bad_row", [("rows", 5), ("targets_in", 14)])
def test_a_nan_regression_target_is_bad_input_and_the_fix_keeps_negative_targets(
    caffe, here, layer_name, bad_row
):
    import h5py

    x = np.random.RandomState(0).randn(16, 4).astype(np.float32)
    y = x.sum(1, keepdims=True)  # negative and fractional targets are fine for a regression
    y[bad_row, 0] = np.nan
    with h5py.File(str(here / "reg.h5"), "w") as f:
        f["data"], f["target"] = x, y
    (here / "files.txt").write_text("reg.h5\n")
    (here / "net.prototxt").write_text(REGRESSION.format(layer=layer_name))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, v.blob, v.iteration) == (
        "bad_input",
        layer_name,
        "target",
        bad_row // 4,
    )
    assert v.record.to_dict() == {"source": "files.txt", "key": f"reg.h5:{bad_row}"}
    assert "without its 1 bad record:" in fix.change and fix.verified


def test_train_net_and_test_net_instead_of_net(caffe, here):
    extra = 'layer { name: "ln" type: "Log" bottom: "fc_hidden" top: "logs" }'
    (here / "train.prototxt").write_text(dummy_classifier(extra, "logs"))
    (here / "test.prototxt").write_text(dummy_classifier(""))
    (here / "solver.prototxt").write_text(
        'train_net: "train.prototxt"\ntest_net: "test.prototxt"\ntest_iter: 2\n'
        'test_interval: 2\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 4\n'
    )
    report = hunt("solver.prototxt", workdir="hunt")
    v = report.verdict
    assert (v.cause, v.layer, v.pass_, v.phase) == ("layer_numerics", "ln", "forward", "TRAIN")


def test_a_relative_net_path_from_another_folder_is_one_line_naming_where_to_run(
    caffe, here, capsys
):
    (here / "models").mkdir()
    (here / "models" / "net.prototxt").write_text(dummy_classifier(""))
    (here / "models" / "solver.prototxt").write_text(
        'net: "models/net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 4\n'
    )
    (here / "runs").mkdir()
    os.chdir(here / "runs")
    assert main(["hunt", "../models/solver.prototxt", "--workdir", "hunt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models/net.prototxt" in err
    assert f"it is there from {here}: run hunt in that folder" in err
    os.chdir(here)
    assert main(["hunt", "models/solver.prototxt", "--workdir", "hunt"]) == 0


def test_an_inline_net_param_is_hunted_like_a_net_file(caffe, here):
    extra = 'layer { name: "root_feat" type: "Power" bottom: "fc_hidden" top: "r" power_param { power: 0.5 } }'
    (here / "solver.prototxt").write_text(
        "net_param {\n"
        + dummy_classifier(extra, "r")
        + '}\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 4\n'
    )
    report = hunt("solver.prototxt", workdir="hunt")
    v = report.verdict
    assert (v.cause, v.layer, v.pass_) == ("layer_numerics", "root_feat", "backward")


def test_solver_mode_gpu_on_a_cpu_only_caffe_trains_on_the_cpu_and_says_so(caffe, here):
    (here / "net.prototxt").write_text(dummy_classifier(""))
    (here / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 6\nsolver_mode: GPU\ndevice_id: 0\n'
    )
    report = hunt("solver.prototxt", workdir="hunt")
    assert report.verdict.cause == "none" and report.training.iterations == 6
    assert any("solver_mode: GPU; hunt trained on the CPU" in n for n in report.notes)


@pytest.mark.parametrize("gpu", [0, 3])
def test_asking_a_cpu_only_caffe_for_a_gpu_is_one_line_in_each_ones_terms(caffe, here, capsys, gpu):
    from caffe_nantools.hunt import HuntError

    (here / "net.prototxt").write_text(dummy_classifier(""))
    (here / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 4\n'
    )
    with pytest.raises(HuntError) as info:
        hunt("solver.prototxt", workdir="first", gpu=gpu)
    assert str(info.value) == f"gpu={gpu}: this Caffe is built for the CPU only; leave out gpu"
    assert main(["hunt", "solver.prototxt", "--workdir", "second", "--gpu", str(gpu)]) == 2
    assert capsys.readouterr().err == (
        f"caffe-nantools hunt: error: --gpu {gpu}: this Caffe is built for the CPU only; "
        "leave out --gpu\n"
    )


def test_a_snapshot_prefix_in_a_missing_folder_is_a_note_and_nothing_is_written_there(caffe, here):
    (here / "net.prototxt").write_text(dummy_classifier(""))
    (here / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 6\nsnapshot: 5\n'
        'snapshot_prefix: "out/models/snap"\n'
    )
    report = hunt("solver.prototxt", workdir="hunt")
    assert report.verdict.cause == "none" and not os.path.exists("out")
    assert any("the folder out/models does not exist" in n for n in report.notes)


ROOT = 'layer {{ name: "{name}" type: "Power" bottom: "{bottom}" top: "rooted" power_param {{ power: 0.5 }} }}'
DEEPER = (
    'layer { name: "fc_more" type: "InnerProduct" bottom: "fc_hidden" top: "fc_more" '
    'inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }\n'
    'layer { name: "more_relu" type: "ReLU" bottom: "fc_more" top: "fc_more" }\n'
)


@pytest.mark.parametrize(
    "name, before, bottom", [("sqrt_feat", "", "fc_hidden"), ("rt", DEEPER, "fc_more")]
)
def test_a_square_root_at_zero_is_the_power_layer_in_the_backward_pass(
    caffe, here, name, before, bottom
):
    extra = before + ROOT.format(name=name, bottom=bottom)
    (here / "net.prototxt").write_text(dummy_classifier(extra, "rooted"))
    report = hunt(solver(here), workdir="hunt", iters=3)
    v = report.verdict
    assert (v.cause, v.layer, v.blob, v.pass_, v.iteration) == (
        "layer_numerics",
        name,
        bottom,
        "backward",
        0,
    )
    assert any("power_param { shift" in a for a in v.advice)


def test_a_solver_without_lr_policy_is_the_lr_policy_and_fixed_is_verified(caffe, here):
    (here / "net.prototxt").write_text(dummy_classifier())
    (here / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 4\n')
    report = hunt("solver.prototxt", workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "lr_policy" and any("Unknown learning rate policy" in e for e in v.evidence)
    assert fix.change == 'lr_policy: "fixed"' and fix.verified
