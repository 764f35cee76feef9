"""hunt on explosions, policies that grow the rate and one layer's numerics, with real Caffe:
each named as what it is (an explosion by the weights that grew before it, wherever the overflow
shows; a growing rate by its policy) and fixed by the change to that setting or layer, verified
by training the same iterations from hunt's seed and from another. Names, positions and values
vary."""

import textwrap

import pytest

from caffe_nantools.hunt import hunt
from hunt_nets import dummy_classifier, float_store, lmdb_layer, solver


def dense(name, bottom, outputs, relu=True):
    text = (
        f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
        f'inner_product_param {{ num_output: {outputs} weight_filler {{ type: "xavier" }} }} }}\n'
    )
    if relu:
        text += f'layer {{ name: "{name}_r" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'
    return text


def deep_net(here, width, layers):
    """Records of 3 x ``width`` x ``width`` values with labels 0..2 through ``layers`` InnerProducts: nothing in
    it divides, takes a log or a root."""
    float_store(here / "train_lmdb", n=120, shape=(3, width, width))
    net, bottom = lmdb_layer("data", "train_lmdb", 12), "data"
    for k in range(layers):
        net += dense(f"fc{k}", bottom, 16)
        bottom = f"fc{k}"
    net += dense("scores", bottom, 3, relu=False)
    net += 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" }\n'
    (here / "net.prototxt").write_text(net)


@pytest.mark.parametrize("lr, width, layers", [(20.0, 4, 2), (40.0, 5, 3)])
def test_a_rate_far_too_high_is_an_explosion_wherever_it_overflows(caffe, here, lr, width, layers):
    deep_net(here, width, layers)
    report = hunt(solver(here, lr=lr, max_iter=30, extra="random_seed: 3\n"), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "exploding_gradients"
    assert any("L2 norm of all weights grew" in e for e in v.evidence)
    assert fix.verified and fix.change.startswith(f"base_lr {lr:g} -> ")
    assert fix.seeds == [3, 4]  # hunt's seed, then another


@pytest.mark.parametrize(
    "policy, settings, name, value",
    [
        ("step", "gamma: 10\nstepsize: 4\n", "gamma", 0.1),
        ("multistep", "gamma: 20\nstepvalue: 3\nstepvalue: 6\nstepvalue: 9\n", "gamma", 0.05),
        ("inv", "gamma: 1\npower: -3\n", "power", 3),
        ("exp", "gamma: 2\n", "gamma", 0.9999),
    ],
)
def test_a_policy_that_grows_the_rate_is_the_lr_policy_and_its_setting_is_the_fix(
    caffe, here, policy, settings, name, value
):
    deep_net(here, 5, 1)
    report = hunt(solver(here, policy=policy, max_iter=60, extra=settings), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "lr_policy" and v.iteration > 0
    assert any(f"lr_policy {policy}" in a and "only delays" in a for a in v.advice)
    assert fix.change == f"{name}: {value:g}" and fix.verified
    assert "base_lr" not in fix.change


def test_a_growing_policy_is_not_blamed_for_a_log_of_zero_before_the_rate_grew(caffe, here):
    log = 'layer { name: "logged" type: "Log" bottom: "fc_hidden" top: "lg" }\n'
    (here / "net.prototxt").write_text(dummy_classifier(log, "lg"))
    v = hunt(
        solver(here, policy="step", max_iter=20, extra="gamma: 10\nstepsize: 5\n"), workdir="hunt"
    ).verdict
    assert (v.cause, v.layer, v.iteration) == ("layer_numerics", "logged", 0)


@pytest.mark.parametrize(
    "layer, fixed",
    [
        (
            'layer {{ name: "{n}" type: "Log" bottom: "fc_hidden" top: "out" }}',
            "log_param shift 1e-06",
        ),
        (
            'layer {{ name: "{n}" type: "Power" bottom: "fc_hidden" top: "out" power_param {{ power: 0.5 }} }}',
            "power_param shift 1e-06",
        ),
        (
            'layer {{ name: "{n}" type: "Exp" bottom: "fc_hidden" top: "out" exp_param {{ scale: 300 }} }}',
            "exp_param scale 1 instead of 300",
        ),
    ],
)
@pytest.mark.parametrize("name", ["num_a", "feat/b"])
def test_a_layer_that_makes_non_finite_values_is_fixed_in_that_layer(
    caffe, here, layer, fixed, name
):
    (here / "net.prototxt").write_text(dummy_classifier(layer.format(n=name) + "\n", "out"))
    report = hunt(solver(here, max_iter=8), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("layer_numerics", name)
    assert fixed in fix.change and fix.verified
    assert name in (here / fix.files["net"]).read_text()


@pytest.mark.parametrize("power, fixed", [(1.5, 2), (0.25, 1)])
def test_a_fractional_power_of_a_signed_value_is_fixed_by_a_whole_power(caffe, here, power, fixed):
    signed = dense("proj", "fc_hidden", 5, relu=False) + (
        f'layer {{ name: "pw" type: "Power" bottom: "proj" top: "out" power_param {{ power: {power} }} }}\n'
    )
    (here / "net.prototxt").write_text(dummy_classifier(signed, "out"))
    report = hunt(solver(here, max_iter=8), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, v.pass_) == ("layer_numerics", "pw", "forward")
    assert f"power {fixed} instead of {power:g}" in fix.change and fix.verified


def batch_norm_net(here, stats, names):
    data = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        "shape { dim: 8 dim: 3 dim: 5 dim: 5 } shape { dim: 8 } "
        'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }\n'
    )
    net, bottom = data, "data"
    for k, name in enumerate(names):
        net += (
            f'layer {{ name: "c{k}" type: "Convolution" bottom: "{bottom}" top: "c{k}" '
            'convolution_param { num_output: 6 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }\n'
            f'layer {{ name: "{name}" type: "BatchNorm" bottom: "c{k}" top: "c{k}" {stats} }}\n'
            f'layer {{ name: "s{k}" type: "Scale" bottom: "c{k}" top: "c{k}" scale_param {{ bias_term: true }} }}\n'
        )
        bottom = f"c{k}"
    (here / "net.prototxt").write_text(
        net
        + dense("scores", bottom, 3, relu=False)
        + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" }\n'
    )


@pytest.mark.parametrize("names", [("bn_a", "bn_b"), ("x/bn", "y/bn", "z/bn")])
def test_global_stats_while_training_from_scratch_is_the_batchnorm_and_turned_off(
    caffe, here, names
):
    batch_norm_net(here, "batch_norm_param { use_global_stats: true }", names)
    report = hunt(solver(here, lr=0.05, max_iter=20), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", names[0])
    assert fix.verified and all(n in fix.change for n in names)
    fixed = (here / fix.files["net"]).read_text()
    assert "use_global_stats" not in fixed and fixed.count("BatchNorm") == len(names)


def test_a_pooling_stride_past_its_kernel_is_set_to_the_kernel(caffe, here):
    net = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        "shape { dim: 4 dim: 2 dim: 11 dim: 11 } shape { dim: 4 } "
        'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }\n'
        'layer { name: "wide" type: "Pooling" bottom: "data" top: "p" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 4 } }\n"
        + dense("scores", "p", 3, relu=False)
        + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" }\n'
    )
    (here / "net.prototxt").write_text(net)
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("config", "wide")
    assert "stride 2 instead of 4" in fix.change and fix.verified


DIVIDING_LAYER = textwrap.dedent("""\
    import caffe
    import numpy as np


    class Ratio(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            self.total = (bottom[0].data > 1e9).sum(1, keepdims=True)  # none are
            top[0].data[...] = bottom[0].data / self.total

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = top[0].diff / self.total / len(top)
    """)


def test_a_python_layer_is_named_by_its_line_and_its_patch_is_advice_never_verified(caffe, here):
    (here / "ratio_layer.py").write_text(DIVIDING_LAYER)
    layer = (
        'layer { name: "share" type: "Python" bottom: "fc_hidden" top: "out" '
        'python_param { module: "ratio_layer" layer: "Ratio" } }\n'
    )
    (here / "net.prototxt").write_text(dummy_classifier(layer, "out"))
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("layer_numerics", "share")
    assert not fix.verified and "hunt does not change" in fix.state
    assert "ratio_layer.py:14" in fix.change  # the division in forward
    assert any(
        "ratio_layer.py:14: `top[0].data[...] = bottom[0].data / self.total`" in a
        for a in report.advice  # the verdict's, then the fix's: the lines to patch
    )
    assert not any("cannot be imported" in a for a in report.advice)  # it was, the net ran
