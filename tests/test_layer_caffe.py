"""CheckFiniteLayer in real Caffe (pycaffe and the `caffe` tool)."""

import textwrap

import numpy as np
import pytest

from caffe_nantools import CheckConfigError, NonFiniteError
from caffe_nantools.templates import check_layer
from caffe_train import caffe_train

BATCH = 6

INPUTS = """\
force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: %d dim: 3 dim: 5 dim: 5 } shape { dim: %d } } }
""" % (BATCH, BATCH)

CONV = """\
layer { name: "conv1" type: "Convolution" bottom: "%s" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
"""
RELU = 'layer { name: "relu1" type: "ReLU" bottom: "%s" top: "%s" }\n'
IP = """\
layer { name: "ip1" type: "InnerProduct" bottom: "%s" top: "ip1"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
"""
LOSS = 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "%s" bottom: "label" top: "loss" }\n'


def copy_check(blob, top, param_str=""):
    return (
        f'layer {{ name: "nancheck/{blob}" type: "Python" bottom: "{blob}" top: "{top}"\n'
        f'  python_param {{ module: "caffe_nantools.layers" layer: "CheckFiniteLayer" '
        f'param_str: "{param_str or "blobs=" + blob}" }} }}\n'
    )


def in_place_check(blob, param_str=""):
    name = f"nancheck/{blob}"
    return check_layer(name=name, blob=blob, param_str=param_str or f"name={name} blobs={blob}")


def small_net(checks):
    """conv1 -> relu1 -> ip1 -> loss, with no checks, in-place checks or copying checks."""
    if checks == "none":
        body = CONV % "data" + RELU % ("conv1", "conv1") + IP % "conv1" + LOSS % "ip1"
    elif checks == "in-place":
        body = (
            in_place_check("data")
            + CONV % "data"
            + in_place_check("conv1")
            + RELU % ("conv1", "conv1")
            + in_place_check("conv1")
            + IP % "conv1"
            + in_place_check("ip1")
            + LOSS % "ip1"
        )
    else:
        body = (
            copy_check("data", "data_c")
            + CONV % "data_c"
            + copy_check("conv1", "conv1_c")
            + RELU % ("conv1_c", "relu1")
            + copy_check("relu1", "relu1_c")
            + IP % "relu1_c"
            + copy_check("ip1", "ip1_c")
            + LOSS % "ip1_c"
        )
    return INPUTS + body


def build(caffe, tmp_path, text, phase=None, name="net.prototxt"):
    path = tmp_path / name
    path.write_text(text)
    return caffe.Net(str(path), caffe.TRAIN if phase is None else phase)


def fill_inputs(net, data):
    net.blobs["data"].data[...] = data
    net.blobs["label"].data[...] = np.arange(BATCH) % 3


def clean_data():
    return np.random.default_rng(1).standard_normal((BATCH, 3, 5, 5)).astype(np.float32)


def test_planted_nan_and_inf_are_reported_with_their_samples_and_counts(caffe, tmp_path):
    net = build(caffe, tmp_path, small_net("in-place"))
    data = clean_data()
    data[1, 0, 0, 0] = np.nan
    data[1, 2, 4, 4] = np.nan
    data[4, 1, 2, 2] = np.inf
    data[5, 0, 3, 1] = -np.inf
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    e = info.value
    assert (e.layer, e.blob, e.pass_, e.phase, e.iteration) == (
        "nancheck/data",
        "data",
        "forward",
        "TRAIN",
        0,
    )
    assert (e.nan, e.posinf, e.neginf, e.count) == (2, 1, 1, BATCH * 75)
    assert e.bad_samples == (1, 4, 5) and e.n_bad_samples == 3


def test_a_layer_that_makes_nan_is_caught_right_after_it(caffe, tmp_path):
    text = (
        INPUTS
        + textwrap.dedent(
            """\
        layer { name: "log" type: "Log" bottom: "data" top: "logx" }
        """
        )
        + in_place_check("logx", "name=after_log blobs=logx")
    )
    net = build(caffe, tmp_path, text)
    data = np.abs(clean_data()) + 1
    data[3, 1, 1, 1] = -2.0  # log of a negative number
    data[0, 0, 0, 0] = 0.0  # log of 0
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    e = info.value
    assert (e.layer, e.blob) == ("after_log", "logx")
    assert (e.nan, e.posinf, e.neginf) == (1, 0, 1)
    assert e.bad_samples == (0, 3)


def test_nan_gradient_of_a_faulty_loss_is_caught_in_backward(caffe, tmp_path):
    text = (
        INPUTS
        + IP % "data"
        + in_place_check("ip1", "name=grad blobs=ip1")
        + textwrap.dedent(
            """\
        layer { name: "loss" type: "Python" bottom: "ip1" top: "loss" loss_weight: 1
          python_param { module: "nan_loss" layer: "NanGradientLoss" param_str: "2,4" } }
        """
        )
    )
    net = build(caffe, tmp_path, text)
    fill_inputs(net, clean_data())
    net.forward()
    with pytest.raises(NonFiniteError) as info:
        net.backward()
    e = info.value
    assert (e.layer, e.blob, e.pass_, e.iteration) == ("grad", "ip1", "backward", 0)
    assert (e.nan, e.count) == (6, BATCH * 3)
    assert e.bad_samples == (2, 4)


def run_step(net, data):
    fill_inputs(net, data)
    for params in net.params.values():
        for p in params:
            p.diff[...] = 0  # param diffs accumulate across backward calls
    net.forward()
    net.backward()


@pytest.mark.parametrize("checks", ["in-place", "copy"])
def test_checked_nets_compute_exactly_what_the_unchecked_net_does(caffe, tmp_path, checks):
    plain = build(caffe, tmp_path, small_net("none"), name="plain.prototxt")
    checked = build(caffe, tmp_path, small_net(checks), name="checked.prototxt")
    for name, params in plain.params.items():
        for mine, theirs in zip(checked.params[name], params):
            mine.data[...] = theirs.data
    for step in range(3):
        data = clean_data() * (step + 1)
        run_step(plain, data)
        run_step(checked, data)
        assert np.array_equal(plain.blobs["loss"].data, checked.blobs["loss"].data)
        assert np.array_equal(plain.blobs["ip1"].data, checked.blobs["ip1"].data)
        assert np.array_equal(plain.blobs["data"].diff, checked.blobs["data"].diff)
        for name, params in plain.params.items():
            for mine, theirs in zip(checked.params[name], params):
                assert np.array_equal(mine.diff, theirs.diff), name
    assert np.any(plain.blobs["data"].diff != 0)


def test_copying_check_catches_bad_diff_and_passes_the_rest_through(caffe, tmp_path):
    text = (
        INPUTS
        + IP % "data"
        + copy_check("ip1", "ip1_c", "blobs=ip1")
        + textwrap.dedent(
            """\
        layer { name: "loss" type: "Python" bottom: "ip1_c" top: "loss" loss_weight: 1
          python_param { module: "nan_loss" layer: "NanGradientLoss" param_str: "5" } }
        """
        )
    )
    net = build(caffe, tmp_path, text)
    fill_inputs(net, clean_data())
    net.forward()
    assert np.array_equal(net.blobs["ip1"].data, net.blobs["ip1_c"].data)
    with pytest.raises(NonFiniteError) as info:
        net.backward()
    assert info.value.bad_samples == (5,) and info.value.pass_ == "backward"


def test_several_bottoms_are_told_apart(caffe, tmp_path):
    text = INPUTS + textwrap.dedent(
        """\
        layer { name: "nancheck/inputs" type: "Python" bottom: "data" bottom: "label"
          top: "data" top: "label"
          python_param { module: "caffe_nantools.layers" layer: "CheckFiniteLayer"
                         param_str: '{"name": "inputs", "blobs": ["data", "label"]}' } }
        """
    )
    net = build(caffe, tmp_path, text)
    fill_inputs(net, clean_data())
    net.blobs["label"].data[3] = np.nan
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    assert (info.value.blob, info.value.bad_samples, info.value.count) == ("label", (3,), BATCH)


def test_test_phase_is_reported(caffe, tmp_path):
    net = build(caffe, tmp_path, small_net("in-place"), phase=caffe.TEST)
    data = clean_data()
    data[0, 0, 0, 0] = np.nan
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    assert (info.value.phase, info.value.blob) == ("TEST", "data")


def test_iteration_counts_forward_passes_and_every_skips_passes(caffe, tmp_path):
    net = build(caffe, tmp_path, INPUTS + in_place_check("data", "blobs=data every=2"))
    data = clean_data()
    data[2, 0, 0, 0] = np.inf
    fill_inputs(net, data)
    checked = []
    for _ in range(5):
        try:
            net.forward()
        except NonFiniteError as e:
            checked.append(e.iteration)
    assert checked == [0, 2, 4]


def test_warn_logs_and_lets_the_net_run(caffe, tmp_path, capfd):
    net = build(caffe, tmp_path, INPUTS + in_place_check("data", "name=w on=warn blobs=data"))
    data = clean_data()
    data[3, 0, 0, 0] = np.nan
    fill_inputs(net, data)
    net.forward()
    assert np.isnan(net.blobs["data"].data[3, 0, 0, 0])
    err = capfd.readouterr().err
    assert (
        "caffe-nantools warning: check 'w': blob 'data' forward data at iteration 0 (TRAIN)" in err
    )


def test_dump_writes_the_bad_blob(caffe, tmp_path):
    dump = tmp_path / "dump"
    net = build(
        caffe,
        tmp_path,
        INPUTS + in_place_check("data", f"name=d on=dump dump_dir={dump} blobs=data"),
    )
    data = clean_data()
    data[1, 1, 1, 1] = -np.inf
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError):
        net.forward()
    saved = np.load(dump / "d-TRAIN-iter0-forward-data.npy")
    assert np.array_equal(saved, data)
    assert (dump / "d-TRAIN-iter0-forward.json").is_file()


@pytest.mark.parametrize("dump_dir", ["nul\x00byte", "a-file/below"])
def test_a_dump_that_cannot_be_written_still_raises_the_finding_and_says_why(
    caffe, tmp_path, capfd, dump_dir
):
    import json

    (tmp_path / "a-file").write_text("not a folder")
    param_str = json.dumps(
        {"name": "d", "on": "dump", "dump_dir": str(tmp_path / dump_dir), "blobs": ["data"]}
    )
    net = build(caffe, tmp_path, INPUTS + in_place_check("data", param_str))
    data = clean_data()
    data[2, 0, 1, 1] = np.nan
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    assert (info.value.blob, info.value.nan, info.value.bad_samples) == ("data", 1, (2,))
    err = capfd.readouterr().err
    assert "caffe-nantools NonFiniteError: check 'd': blob 'data' forward data" in err
    assert "caffe-nantools could not dump the bad blobs to " in err and "\x00" not in err


def test_max_abs_flags_a_blow_up_before_it_is_inf(caffe, tmp_path):
    net = build(caffe, tmp_path, INPUTS + in_place_check("data", "blobs=data max_abs=1000"))
    data = clean_data()
    data[4, 0, 0, 0] = 1e6
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    assert info.value.stats.over_max_abs == 1 and info.value.bad_samples == (4,)


def test_the_original_answers_layer_name_still_works(caffe, tmp_path):
    text = INPUTS + check_layer(name="c", blob="data", param_str="prefix-check").replace(
        '"CheckFiniteLayer"', '"checkFiniteLayer"'
    )
    net = build(caffe, tmp_path, text)
    data = clean_data()
    data[0, 0, 0, 0] = np.nan
    fill_inputs(net, data)
    with pytest.raises(NonFiniteError) as info:
        net.forward()
    assert info.value.layer == "prefix-check"


@pytest.mark.parametrize(
    "param_str, message",
    [
        ("on=sometimes", "on='sometimes' is not allowed (allowed values: raise, warn, dump)"),
        ("colour=red", "unknown key 'colour'"),
        ("blobs=a,b", "names 2 blobs (a, b) but the layer has 1 bottoms"),
        ('{"name": ' * 5000 + '"x"' + "}" * 5000, "JSON nested too deeply"),
        ("every=" + "7" * 5000, "must be an integer >= 1"),
    ],
)
def test_bad_param_str_fails_when_the_net_is_built(caffe, tmp_path, param_str, message):
    with pytest.raises(CheckConfigError) as info:
        build(caffe, tmp_path, INPUTS + in_place_check("data", param_str))
    assert message in str(info.value)


def test_tops_must_match_bottoms(caffe, tmp_path):
    text = INPUTS + textwrap.dedent(
        """\
        layer { name: "c" type: "Python" bottom: "data" bottom: "label" top: "x"
          python_param { module: "caffe_nantools.layers" layer: "CheckFiniteLayer" } }
        """
    )
    with pytest.raises(CheckConfigError, match="as many tops as bottoms"):
        build(caffe, tmp_path, text)


def test_caffe_train_stops_with_the_message_in_its_log(caffe, tmp_path):
    net = tmp_path / "train.prototxt"
    net.write_text(
        textwrap.dedent(
            """\
            layer { name: "data" type: "DummyData" top: "data" top: "label"
              dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 }
                data_filler { type: "constant" value: -1 } } }
            layer { name: "log" type: "Log" bottom: "data" top: "logx" }
            """
        )
        + in_place_check("logx", "name=after_log blobs=logx")
        + textwrap.dedent(
            """\
            layer { name: "ip" type: "InnerProduct" bottom: "logx" top: "ip"
              inner_product_param { num_output: 2 } }
            layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
            """
        )
    )
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        'net: "train.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 5\n'
        'display: 1\nsolver_mode: CPU\nsnapshot_prefix: "snap"\n'
    )
    run = caffe_train(tmp_path, solver=str(solver), fails=True)
    assert run.returncode != 0
    assert (
        "caffe-nantools NonFiniteError: check 'after_log': blob 'logx' forward data at "
        "iteration 0 (TRAIN): 12 NaN, 0 +inf, 0 -inf in 12 values; bad samples [0, 1, 2, 3] (4 of 4)"
    ) in run.log
    assert "Optimization Done" not in run.log


def test_installing_kept_caffes_numpy_and_protobuf(caffe):
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2

    assert int(np.__version__.split(".")[0]) < 2
    net = text_format.Parse('layer { name: "x" type: "Python" }', caffe_pb2.NetParameter())
    assert net.layer[0].type == "Python"
