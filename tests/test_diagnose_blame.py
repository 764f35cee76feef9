"""diagnose: where the trouble began (``origin``) as well as where it showed (``first_nonfinite``),
what the loss lines still tell without a trace, and explosions measured by their updates."""

import json

import pytest

from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.diagnose import diagnose
from needs import need


def forward_pass(log, tops, params=None):
    """Forward lines for ``tops`` [(layer, value)]; ``params`` maps a layer to its param values."""
    params = params or {}
    for layer, value in tops:
        log.forward(layer, layer, value, params.get(layer, ()))
    return log


def write(log, tmp_path, name="train.log"):
    return log.write(tmp_path / name)


# A BatchNorm with all-zero statistics scales values ~300x, layer after layer, until they overflow.
BN_TOPS = [
    ("data", "0.5"),
    ("conv1", "0.4"),
    ("bn1", "126"),
    ("relu1", "63"),
    ("conv2", "51"),
    ("bn2", "1.6e+04"),
    ("conv3", "1.2e+04"),
    ("bn3", "3.8e+06"),
    ("conv4", "3e+06"),
    ("bn4", "9.5e+08"),
    ("ip1", "inf"),
    ("loss", "nan"),
]
ZERO_STATS = {layer: ("0", "0", "0") for layer in ("bn1", "bn2", "bn3", "bn4")}


@pytest.mark.parametrize("first_zero", ["bn1", "bn2"])
def test_a_batchnorm_with_zero_statistics_is_the_origin_not_where_it_overflowed(
    tmp_path, first_zero
):
    stats = {layer: value for layer, value in ZERO_STATS.items() if layer >= first_zero}
    stats.update({layer: ("0.3", "1.2", "1") for layer in ZERO_STATS if layer < first_zero})
    log = forward_pass(CaffeLog().solving(), BN_TOPS, stats).loss(0, "nan")
    result = diagnose(write(log, tmp_path))
    assert result.first_nonfinite.layer == "ip1" and result.first_nonfinite.iteration == 0
    assert result.began.layer in ("bn1", first_zero) and result.began.pass_ == "forward"
    assert "all-zero statistics" in result.began.why and "use_global_stats" in result.began.why
    assert result.cause == "layer_numerics"
    assert any("statistics" in a and "use_global_stats: false" in a for a in result.advice)


def test_growth_within_one_forward_pass_blames_the_layer_where_it_began(tmp_path):
    tops = [
        ("data", "0.8"),
        ("conv_a", "0.6"),
        ("scale_a", "0.7"),
        ("exp_b", "45"),
        ("conv_c", "3e+05"),
        ("conv_d", "8e+12"),
        ("conv_e", "2e+27"),
        ("fc", "inf"),
    ]
    log = forward_pass(CaffeLog().solving(), tops).loss(7, "inf")
    result = diagnose(write(log, tmp_path))
    assert result.first_nonfinite.layer == "fc"
    assert (
        result.began.layer == "exp_b"
        and "orders of magnitude within one forward pass" in result.began.why
    )
    assert any("the trouble began at layer 'exp_b'" in s for s in result.summary)


def test_a_sudden_overflow_without_growth_is_blamed_where_it_happened(tmp_path):
    tops = [("data", "0.8"), ("conv_a", "0.6"), ("log_b", "inf"), ("fc", "nan")]
    result = diagnose(write(forward_pass(CaffeLog().solving(), tops).loss(2, "nan"), tmp_path))
    assert result.began.layer == result.first_nonfinite.layer == "log_b"


@pytest.mark.parametrize(
    "layer, kind",
    [
        ("relu3", "ReLU"),
        ("fc7_split", "Split"),
        ("concat_m", "Concat"),
        ("drop6", "Dropout"),
        ("flatten", "Flatten"),
    ],
)
def test_a_layer_that_only_moves_values_is_never_the_origin(tmp_path, layer, kind):
    net = tmp_path / "net.prototxt"
    net.write_text(
        f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 }} }} }}\n'
        f'layer {{ name: "fc6" type: "InnerProduct" bottom: "data" top: "fc6" }}\n'
        f'layer {{ name: "{layer}" type: "{kind}" bottom: "fc6" top: "{layer}" }}\n'
    )
    tops = [("data", "0.5"), ("fc6", "3.1"), (layer, "nan")]
    log = forward_pass(CaffeLog().solving(), tops).loss(3, "nan")
    for with_net in (str(net), None):  # the type from the net, else from the name
        result = diagnose(write(log, tmp_path), net=with_net)
        assert result.first_nonfinite.layer == layer
        assert (
            result.began.layer == "fc6"
            and "never makes NaN or inf from finite inputs" in result.began.why
        )


def test_an_excerpt_without_its_iteration_line_says_so(tmp_path):
    log = CaffeLog()
    log.forward("conv4", "conv4", "inf").forward("ip1", "ip1", "nan")
    result = diagnose(write(log, tmp_path))
    assert result.first_nonfinite.layer == "conv4" and result.first_nonfinite.iteration is None
    text = result.format()
    assert "iteration None" not in text and "an iteration the log does not name" in text
    assert "its inputs are not in the log" in text and "from finite inputs" not in text


def test_from_finite_inputs_only_when_the_inputs_are_in_the_log(tmp_path):
    log = forward_pass(
        CaffeLog().solving(), [("data", "0.5"), ("conv1", "0.4"), ("sqrt1", "nan")]
    ).loss(2, "nan")
    assert any("from finite inputs" in s for s in diagnose(write(log, tmp_path)).summary)


def test_a_value_near_overflow_is_called_huge_not_non_finite(tmp_path):
    log = forward_pass(
        CaffeLog().solving(), [("data", "0.5"), ("conv5", "1.2317e+37"), ("bn5", "inf")]
    ).loss(2, "nan")
    text = " ".join(diagnose(write(log, tmp_path)).summary)
    assert "conv5 huge, near float32's overflow (mean |x| = 1.2317e+37)" in text
    assert "non-finite (mean |x| = 1.2317e+37)" not in text


# Without a trace, the loss lines still narrow it down.
def losses_only(values, outputs=None, start=0):
    log = CaffeLog().solving()
    for i, value in enumerate(values, start):
        log.glog(f"Iteration {i} (1 iter/s, 1s/1 iters), loss = {value}")
        for k, (name, out) in enumerate((outputs or {}).get(i, [("loss", value)])):
            log.glog(
                f"    Train net output #{k}: {name} = {out} (* 1 = {out} loss)",
                source="solver.cpp:258",
            )
        log.lr(i, "0.001")
    return log


@pytest.mark.parametrize("bad_index", [0, 1, 2])
def test_one_output_non_finite_while_the_others_stay_finite_is_named(tmp_path, bad_index):
    names = ["cls_loss", "bbox_loss", "mbox_conf"]
    outputs = [(name, "nan" if k == bad_index else "1.04") for k, name in enumerate(names)]
    log = losses_only(["2.1", "1.9", "nan"], {2: outputs})
    result = diagnose(write(log, tmp_path))
    assert result.first_nonfinite.blob == names[bad_index] and result.first_nonfinite.iteration == 2
    assert any(
        f"only output {names[bad_index]!r} went non-finite" in s and "branch" in s
        for s in result.summary
    )


def test_several_outputs_non_finite_are_all_named_and_none_is_called_the_only_one(tmp_path):
    outputs = [("a_loss", "nan"), ("b_loss", "2"), ("c_loss", "nan")]
    log = losses_only(["2.1", "nan"], {1: outputs})
    result = diagnose(write(log, tmp_path))
    assert result.first_nonfinite.blob is None  # which went first the outputs do not tell
    assert not any("only output" in s for s in result.summary)
    assert any("outputs 'a_loss', 'c_loss' went non-finite" in s for s in result.summary)
    assert any("--blobs a_loss c_loss" in a for a in result.advice)


def test_a_non_finite_total_with_every_output_finite_is_told(tmp_path):
    log = losses_only(["2.1", "nan"], {1: [("loss_a", "0.7"), ("loss_b", "1.1")]})
    result = diagnose(write(log, tmp_path))
    assert result.first_nonfinite.blob is None
    assert any("every listed output is finite" in s for s in result.summary)


def test_non_finite_before_any_update_is_the_input_or_a_layer(tmp_path):
    result = diagnose(write(losses_only(["nan", "nan"]), tmp_path))
    assert result.first_nonfinite.iteration == 0
    assert any("before any update" in s and "not the learning rate" in s for s in result.summary)
    assert any("caffe-nantools scan" in a for a in result.advice) and any(
        "hunt" in a for a in result.advice
    )
    assert result.began.iteration == 0


@pytest.mark.parametrize(
    "values, code", [(["2.3", "87.3365", "87.3365"], 0), (["2.3", "87.3365", "nan"], 1)]
)
def test_a_loss_pinned_at_87_3365_is_a_warning(tmp_path, capsys, values, code):
    path = write(losses_only(values), tmp_path)
    assert main(["diagnose", path, "--json"]) == code
    report = json.loads(capsys.readouterr().out)
    assert len(report["warnings"]) == 1 and "-log(FLT_MIN)" in report["warnings"][0]
    assert "labels out of range" in report["warnings"][0]


def test_json_has_origin_and_warnings(tmp_path, capsys):
    log = forward_pass(CaffeLog().solving(), BN_TOPS, ZERO_STATS).loss(0, "nan")
    assert main(["diagnose", write(log, tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (
        set(report["origin"]) == {"layer", "pass", "iteration", "why"} and report["warnings"] == []
    )


# Explosions measured by lr * mean|diff| / mean|weight| per learned layer.
def exploding(lr="0.5", growth=(1, 1, 8, 80, 900), slow="ip1", fast="conv2"):
    """A trace in which ``fast``'s gradients grow (its ratio passes 1 first) while ``slow`` stays
    healthy; the loss layer's values grow too, as the sum of what grew before it."""
    log = CaffeLog().solving()
    for i, g in enumerate(growth):
        log.forward("data", "data", "0.5")
        log.forward(fast, fast, f"{0.5 * g:g}", [f"{0.02:g}", "0.001"])
        log.forward(slow, slow, f"{0.4 * g:g}", ["0.05", "0.001"])
        log.forward("loss", "loss", f"{1.3 * g * g:g}")
        log.backward("loss", slow, f"{0.01 * g:g}")
        log.backward(slow, fast, f"{0.002 * g:g}", ["0.0001", "0.00001"])
        log.backward(fast, None, None, [f"{0.0004 * g * g:g}", "0.0001"])
        log.norms("60", f"{3 * g:g}")
        log.loss(i, f"{1.3 * g * g:g}").lr(i, lr)
    log.forward("data", "data", "0.5").forward(fast, fast, "inf", ["nan", "0.001"]).loss(
        len(growth), "nan"
    )
    return log


def test_the_first_layer_whose_updates_passed_the_weights_is_the_origin(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.5\nlr_policy: "fixed"\n')
    result = diagnose(write(exploding(), tmp_path), solver=str(solver))
    assert result.cause == "exploding_gradients"
    assert result.began.layer == "conv2" and result.began.pass_ == "update"
    assert (
        result.began.iteration == 3
    )  # the ratio is 0.5 * 0.0004 g^2 / 0.02 = 0.01 g^2: 0.64, then 64
    assert any("update/weight ratio" in s and "'conv2'" in s for s in result.summary)
    lowered = next(a for a in result.advice if a.startswith("lower base_lr to"))
    # The largest ratio up to where one passed 1 is 64 (conv2 at iteration 3): 0.5 * 1e-2 / 64
    assert (
        lowered.startswith("lower base_lr to 7e-05 (from 0.5) (")
        and "solver.prototxt:2)" in lowered
    )
    assert any(
        a.startswith("set clip_gradients: 6 ") for a in result.advice
    )  # twice the healthy norm, 3


def test_a_loss_layer_is_never_where_the_growth_began(tmp_path):
    result = diagnose(write(exploding(), tmp_path))
    assert result.blowup is not None and result.blowup.layer != "loss"


@pytest.mark.parametrize("with_losses", [True, False])
def test_a_one_iteration_trace_is_drawn_as_a_profile_along_the_net(tmp_path, with_losses):
    need("matplotlib")
    log = CaffeLog().solving()
    if with_losses:
        log.loss(0, "2.3").lr(0, "0.01")
    forward_pass(log, BN_TOPS, ZERO_STATS).loss(1, "nan").lr(1, "0.01")
    out = tmp_path / "profile.png"
    result = diagnose(write(log, tmp_path), plot=str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as image:
        width, height = image.size
    assert (
        width > height
    )  # one wide panel along the net, a loss panel under it only when there are losses
    assert (height > 550) == with_losses
    assert result.began.layer == "bn1"


@pytest.mark.parametrize("factor_zero_in", ["bn1", "bn2"])
def test_a_batchnorm_whose_factor_is_0_is_the_origin_not_the_scale_after_it(
    tmp_path, factor_zero_in
):
    # In-place BatchNorm + Scale pairs; statistics loaded, but a moving-average factor of 0
    # makes Caffe use mean 0 and variance 0: the values grow ~300x at each BatchNorm.
    stats = {"bn1": ("0.3", "1.2", "1"), "bn2": ("0.2", "0.9", "1")}
    stats[factor_zero_in] = stats[factor_zero_in][:2] + ("0",)
    log = CaffeLog().solving()
    log.forward("data", "data", "0.5").forward("conv1", "conv1", "0.4", ("0.2", "0.01"))
    log.forward("bn1", "conv1", "126" if factor_zero_in == "bn1" else "0.4", stats["bn1"])
    log.forward("scale1", "conv1", "130" if factor_zero_in == "bn1" else "0.4", ("1", "0"))
    log.forward("conv2", "conv2", "51", ("0.2", "0.01"))
    log.forward("bn2", "conv2", "1.6e+04", stats["bn2"])
    log.forward("scale2", "conv2", "inf", ("1", "0")).forward("loss", "loss", "nan")
    result = diagnose(write(log.loss(0, "nan"), tmp_path))
    assert result.first_nonfinite.layer == "scale2"
    assert result.began.layer == factor_zero_in and "factor of 0" in result.began.why
    assert any("has no statistics" in a for a in result.advice)
