"""hunt on Caffe's aborts, with real Caffe: the layer Caffe was setting up or running when it
stopped is named (from the log's lines before the fatal one and the fatal line's source file,
even where a data layer's prefetch thread stopped it while the main thread was elsewhere), and
where the fatal line names a setting, that setting is changed on hunt's copies and a re-run
verifies it; where records are behind it, they are named; an abort no rule knows stays
``caffe_abort`` with its layer. Names, sizes and positions vary."""

import numpy as np
import pytest

from caffe_nantools.files import read_text
from caffe_nantools.hunt import hunt
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.net import Net
from datums import datum, mean_file
from hunt_nets import classifier, solver
from stores import write_store


def dummy(batch, data_dims, label_dims, name="data"):
    dims = lambda shape: " ".join(f"dim: {d}" for d in shape)  # noqa: E731
    return (
        f'layer {{ name: "{name}" type: "DummyData" top: "data" top: "label" dummy_data_param {{ '
        f"shape {{ {dims((batch,) + data_dims)} }} shape {{ {dims((batch,) + label_dims)} }} "
        'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }\n'
    )


def picture_store(path, shapes, seed=0):
    """uint8 Datums keyed 00000000.. of the given (channels, height, width) shapes."""
    rng = np.random.RandomState(seed)
    write_store(
        path,
        "lmdb",
        [
            (f"{i:08d}".encode(), datum(rng.randint(0, 256, size=s).astype(np.uint8), label=i % 3))
            for i, s in enumerate(shapes)
        ],
    )


def picture_layer(name, transform, batch=4):
    return (
        f'layer {{ name: "{name}" type: "Data" top: "data" top: "label" '
        f"transform_param {{ {transform} scale: 0.00390625 }} "
        f'data_param {{ source: "pics" backend: LMDB batch_size: {batch} }} }}\n'
    )


def fixed_layer(fix, name):
    net = Net(parse(read_text(fix.files["net"])))
    return next(l for l in net.layers if l.name == name)


@pytest.mark.parametrize("name, rates", [("bn_a", (1, 1)), ("norm7", (0.5,))])
def test_batchnorm_with_a_rate_on_its_statistics_is_config_fixed_by_lr_mult_0(
    # Caffe's upgrade zeroes the rates of exactly three param blocks: one or two reach the check.
    caffe,
    here,
    name,
    rates,
):
    params = " ".join(f"param {{ lr_mult: {r} }}" for r in rates)
    bn = f'layer {{ name: "{name}" type: "BatchNorm" bottom: "fc_hidden" top: "fc_hidden" {params} }}'
    (here / "net.prototxt").write_text(classifier(dummy(4, (6,), ()), extra=bn))
    report = hunt(solver(here, max_iter=8), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", name)
    assert "lr_mult: 0" in v.advice[0] and fix.verified, fix
    assert fixed_layer(fix, name).node.find("param").get("lr_mult") == 0
    assert [p.get("lr_mult") for p in fixed_layer(fix, name).node.find_all("param")] == [0] * len(
        rates
    )


@pytest.mark.parametrize("layer, size, mean_size", [("pixels", 6, 9), ("in", 8, 5)])
def test_a_mean_file_of_another_shape_is_config_fixed_by_its_mean_per_channel(
    caffe, here, layer, size, mean_size
):
    picture_store(here / "pics", [(3, size, size)] * 24)
    mean = np.stack([np.full((mean_size, mean_size), v, np.float32) for v in (100, 120, 140)])
    mean_file(here / "mean.binaryproto", mean)
    (here / "net.prototxt").write_text(
        classifier(picture_layer(layer, 'mean_file: "mean.binaryproto"'))
    )
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", layer)
    assert f"3x{mean_size}x{mean_size}" in v.advice[0] and v.records == []
    assert fix.verified, fix
    transform = fixed_layer(fix, layer).node.find("transform_param")
    assert transform.get("mean_file") is None
    assert transform.get_all("mean_value") == [100, 120, 140]


@pytest.mark.parametrize("outputs, targets", [(3, 1), (2, 5)])
def test_a_regression_head_of_other_width_than_its_target_is_fixed_at_num_output(
    caffe, here, outputs, targets
):
    net = dummy(4, (6,), (targets,)) + (
        'layer { name: "head" type: "InnerProduct" bottom: "data" top: "pred" '
        f'inner_product_param {{ num_output: {outputs} weight_filler {{ type: "xavier" }} }} }}\n'
        'layer { name: "l2" type: "EuclideanLoss" bottom: "pred" bottom: "label" top: "l2" }\n'
    )
    (here / "net.prototxt").write_text(net)
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", "l2")
    assert fix.verified and f"num_output {outputs} -> {targets}" in fix.change
    assert fixed_layer(fix, "head").node.find("inner_product_param").get("num_output") == targets


@pytest.mark.parametrize("small, batch", [((5,), 4), ((9, 14), 3)])
def test_records_smaller_than_the_crop_are_the_bad_input_wherever_prefetch_stops(
    caffe, here, small, batch
):
    picture_store(here / "pics", [(3, 5, 6) if i in small else (3, 9, 9) for i in range(24)])
    (here / "net.prototxt").write_text(classifier(picture_layer("frames", "crop_size: 7", batch)))
    report = hunt(solver(here, max_iter=10), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("bad_input", "frames")
    assert sorted(r.key for r in v.records) == [f"{i:08d}" for i in small]
    assert "smaller than frames's crop_size 7" in v.advice[0]
    assert fix.verified and f"without its {len(small)} bad record" in fix.change


def test_pictures_written_height_first_are_named_as_transposed_without_a_fix(caffe, here):
    picture_store(here / "pics", [(10, 12, 3)] * 16)  # H x W x C arrays taken as C x H x W
    (here / "net.prototxt").write_text(classifier(picture_layer("rgb", "crop_size: 8")))
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, fix) == ("bad_input", "rgb", None)
    assert "transpose" in v.advice[0] and len(v.records) == 16


@pytest.mark.parametrize("size", [7, 13])
def test_a_concat_of_a_pooled_and_upsampled_branch_names_both_shapes_and_fits_the_input(
    caffe, here, size
):
    net = dummy(2, (2, size, size), ()) + (
        'layer { name: "down" type: "Pooling" bottom: "data" top: "half" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "back_up" type: "Deconvolution" bottom: "half" top: "up" '
        'convolution_param { num_output: 2 kernel_size: 2 stride: 2 weight_filler { type: "xavier" } } }\n'
        'layer { name: "join" type: "Concat" bottom: "data" bottom: "up" top: "both" }\n'
        'layer { name: "scores" type: "InnerProduct" bottom: "both" top: "scores" '
        'inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" }\n'
    )
    (here / "net.prototxt").write_text(net)
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", "join")
    assert f"data (2 2 {size} {size}) and up (2 2 {size + 1} {size + 1})" in v.advice[0]
    assert fix.verified and f"{size} -> {size + 1}" in fix.change


def reshaped_scores(producer, dims, loss="SoftmaxWithLoss"):
    """``producer``'s scores reshaped to ``dims`` for ``loss`` against the DummyData's label."""
    return (
        producer
        + 'layer { name: "scores_reshape" type: "Reshape" bottom: "scores" top: "reshaped" '
        f"reshape_param {{ shape {{ {' '.join(f'dim: {d}' for d in dims)} }} }} }}\n"
        f'layer {{ name: "cls_loss" type: "{loss}" bottom: "reshaped" bottom: "label" top: "l" }}\n'
    )


def score_conv(outputs):
    return (
        'layer { name: "score_conv" type: "Convolution" bottom: "data" top: "scores" '
        f'convolution_param {{ num_output: {outputs} kernel_size: 1 weight_filler {{ type: "xavier" }} }} }}\n'
    )


@pytest.mark.parametrize(
    "anchors, classes, wrong, size", [(3, 2, 7, 5), (5, 2, 3, 3), (2, 3, 5, 4)]
)
def test_a_reshape_its_scores_do_not_divide_is_fixed_at_the_num_output_the_labels_call_for(
    # An RPN's score conv: classes x anchors outputs per position, the label one class per
    # anchor and position; a num_output of another multiple (one that leaves the count
    # indivisible: Caffe's check) aborts the Reshape's setup.
    caffe,
    here,
    anchors,
    classes,
    wrong,
    size,
):
    net = dummy(2, (4, size, size), (1, anchors * size, size))
    net += reshaped_scores(score_conv(wrong * anchors), (0, classes, -1, 0))
    (here / "net.prototxt").write_text(net)
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", "scores_reshape")
    assert f"num_output must be {classes * anchors} for cls_loss's labels" in v.advice[0]
    assert fix.verified, fix
    assert f"num_output {wrong * anchors} -> {classes * anchors}" in fix.change
    conv = fixed_layer(fix, "score_conv").node.find("convolution_param")
    assert conv.get("num_output") == classes * anchors


def test_a_reshape_of_an_inner_products_scores_is_fixed_at_its_num_output(caffe, here):
    head = (
        'layer { name: "head" type: "InnerProduct" bottom: "data" top: "scores" '
        'inner_product_param { num_output: 7 weight_filler { type: "xavier" } } }\n'
    )
    net = dummy(2, (5,), (4,)) + reshaped_scores(head, (0, 3, -1))
    (here / "net.prototxt").write_text(net)
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", "scores_reshape")
    assert fix.verified and "head: num_output 7 -> 12" in fix.change, fix


@pytest.mark.parametrize("dims", [(0, -1, 3), (0, -1, 4, 1)])
def test_a_reshape_that_leaves_the_class_axis_open_gets_advice_only(caffe, here, dims):
    head = (
        'layer { name: "head" type: "InnerProduct" bottom: "data" top: "scores" '
        'inner_product_param { num_output: 7 weight_filler { type: "xavier" } } }\n'
    )
    net = dummy(2, (5,), (4,)) + reshaped_scores(head, dims)
    (here / "net.prototxt").write_text(net)
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, fix) == ("config", "scores_reshape", None)
    assert "must be a multiple of the channels the Reshape asks for" in v.advice[0]


@pytest.mark.parametrize("classes", [3, 5])
def test_one_hot_labels_are_bad_input_at_the_loss_and_the_fix_is_left_to_the_user(
    caffe, here, classes
):
    (here / "net.prototxt").write_text(classifier(dummy(4, (6,), (classes,)), classes=classes))
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, fix) == ("bad_input", "loss", None)
    assert f"gives {classes} label values" in v.advice[0] and "yours to make" in v.advice[0]


def test_an_abort_no_rule_knows_stays_caffe_abort_with_the_layer_set_up(caffe, here):
    bad = (
        'layer { name: "odd_axis" type: "InnerProduct" bottom: "fc_hidden" top: "wide" '
        "inner_product_param { num_output: 3 axis: 4 } }"
    )
    (here / "net.prototxt").write_text(classifier(dummy(4, (6,), ()), extra=bad))
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, fix) == ("caffe_abort", "odd_axis", None)
