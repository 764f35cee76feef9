"""lint as a user meets it on real nets: every file given is linted, a rule that fires on many
layers says so once, deploy nets get no filler noise, numbers are compared as Caffe reads them,
severity means "computes NaN/inf or crashes", and forks' settings are known."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.cli import main
from caffe_nantools.lint import lint, lint_files
from caffe_nantools.prototxt.net import Net, NetError


def layer(text):
    return f"layer {{ {text} }}\n"


def conv(name, bottom="x", filler=False):
    fill = ' weight_filler { type: "xavier" }' if filler else ""
    return layer(
        f'name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" convolution_param {{ num_output: 4{fill} }}'
    )


DATA = layer(
    'name: "data" type: "Data" top: "x" top: "label" data_param { source: "db" } transform_param { scale: 0.0039 }'
)
INPUT_LAYER = layer(
    'name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } }'
)
INPUT_HEADER = 'input: "x"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 32\ninput_dim: 32\n'


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def found(tmp_path, text, name="net.prototxt"):
    return lint_files([write(tmp_path, name, text)])


# --- every file given is linted ------------------------------------------------------------


def test_two_nets_and_two_solvers_are_all_linted(tmp_path, capsys):
    nets = [
        write(
            tmp_path,
            f"net{i}.prototxt",
            layer(
                f'name: "bn{i}" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param {{ eps: 0 }}'
            ),
        )
        for i in range(2)
    ]
    solvers = [
        write(tmp_path, "a_solver.prototxt", 'lr_policy: "poly"\npower: 1\n'),
        write(tmp_path, "b_solver.prototxt", 'lr_policy: "step"\ngamma: 0.1\n'),
    ]
    files = [solvers[0], nets[0], solvers[1], nets[1]]
    assert sorted(f.file for f in lint_files(files)) == sorted(files)
    assert main(["lint", *files, "--json"]) == 1
    assert sorted(f["file"] for f in json.loads(capsys.readouterr().out)) == sorted(files)
    assert main(["lint", *files]) == 1
    assert capsys.readouterr().out.rstrip().endswith("4 errors, 0 warnings, 0 notes")


def test_one_file_given_twice_or_alone_is_linted_as_what_it_is(tmp_path):
    net = write(
        tmp_path,
        "n.prototxt",
        layer('name: "q" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { eps: 0 }'),
    )
    assert [f.layer for f in lint_files([net])] == ["q"]
    assert lint_files([net]) == lint(net)


# --- no-weight-filler: only where weights start from the fillers, and once ----------------


@pytest.mark.parametrize(
    "head", [INPUT_LAYER, INPUT_HEADER, ""], ids=["Input layer", "input: header", "no inputs"]
)
def test_deploy_nets_get_no_filler_findings(tmp_path, head):
    text = (
        head
        + conv("c1")
        + conv("c2", "c1")
        + layer(
            'name: "fc" type: "InnerProduct" bottom: "c2" top: "fc" inner_product_param { num_output: 3 }'
        )
    )
    assert [f.rule for f in found(tmp_path, text)] == []


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=2, max_size=40, unique=True
    ),
    filled=st.data(),
)
def test_layers_without_fillers_make_one_finding_that_lists_them(tmp_path_factory, names, filled):
    tmp_path = tmp_path_factory.mktemp("net")
    with_filler = filled.draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
    text, bottom = DATA, "x"
    for name, has in zip(names, with_filler):
        text += conv(name, bottom, filler=has)
        bottom = name
    bare = [n for n, has in zip(names, with_filler) if not has]
    findings = [f for f in found(tmp_path, text) if f.rule == "no-weight-filler"]
    if not bare:
        assert findings == []
        return
    (finding,) = findings
    assert finding.layers == tuple(bare)
    assert finding.line == 2 + names.index(bare[0])
    if len(bare) == 1:
        assert finding.layer == bare[0] and finding.message.startswith(f"Convolution '{bare[0]}': ")
    else:
        assert finding.message.startswith(f"{len(bare)} layers (Convolution '{bare[0]}'")
        assert len(finding.message) < 400  # the JSON lists them all; the line stays readable


def test_grouping_is_per_rule_and_reason(tmp_path):
    text = (
        DATA
        + layer('name: "d2" type: "Data" top: "y" data_param { source: "db2" }')
        + layer('name: "d3" type: "Data" top: "z" data_param { source: "db3" }')
        + layer('name: "bn1" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { eps: 0 }')
        + layer('name: "bn2" type: "BatchNorm" bottom: "y" top: "y" batch_norm_param { eps: -1 }')
        + layer(
            'name: "p1" type: "Python" bottom: "x" top: "p1" python_param { module: "no_such_mod_a" layer: "A" }'
        )
        + layer(
            'name: "p2" type: "Python" bottom: "x" top: "p2" python_param { module: "no_such_mod_b" layer: "B" }'
        )
    )
    by_rule = {f.rule: f for f in found(tmp_path, text)}
    assert by_rule["raw-input"].layer == ("d2", "d3") and by_rule["raw-input"].line == 2
    assert (
        by_rule["batchnorm-eps"].layer == ("bn1", "bn2")
        and "eps 0" in by_rule["batchnorm-eps"].message
    )
    assert by_rule["python-module"].layer == ("p1", "p2")
    assert (
        "no_such_mod_a" in by_rule["python-module"].message
        and "no_such_mod_b" in by_rule["python-module"].message
    )


def test_grouped_layers_are_in_the_json_as_a_list(tmp_path, capsys):
    path = write(tmp_path, "net.prototxt", DATA + conv("k1") + conv("k2", "k1") + conv("k3", "k2"))
    assert main(["lint", path, "--json"]) == 0
    (finding,) = json.loads(capsys.readouterr().out)
    assert finding["layer"] == ["k1", "k2", "k3"]


# --- numbers as Caffe reads them ----------------------------------------------------------


def numbers(message):
    return [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?", message)]


@pytest.mark.parametrize(
    "kind, limit, written",
    [
        ("SGD", 0.1, "0.10000000149"),
        ("SGD", 0.1, "0.100000001"),
        ("Adam", 0.01, "0.0099999998"),
        ("Adam", 0.01, "0.00999999977648"),
        ("RMSProp", 0.01, "1e-2"),
        ("Nesterov", 0.1, "0.1"),
    ],
)
def test_a_float32_rounding_of_the_limit_is_not_above_it(tmp_path, kind, limit, written):
    solver = write(
        tmp_path, "solver.prototxt", f'type: "{kind}"\nbase_lr: {written}\nlr_policy: "fixed"\n'
    )
    assert [f.rule for f in lint(solver=solver)] == []


@pytest.mark.parametrize(
    "kind, written", [("SGD", "0.1000002"), ("SGD", "0.15"), ("Adam", "0.0100001"), ("SGD", "7")]
)
def test_a_rate_above_the_limit_is_said_with_numbers_that_agree(tmp_path, kind, written):
    solver = write(tmp_path, "solver.prototxt", f'type: "{kind}"\nbase_lr: {written}\n')
    finding = next(f for f in lint(solver=solver) if f.rule == "base-lr")
    shown, limit = numbers(finding.message)[:2]
    assert shown > limit and shown == pytest.approx(float(written), rel=1e-6)


@pytest.mark.parametrize(
    "fork",
    ['larc: true\nlarc_policy: "clip"\n', "local_lr_auto: true\n", "larc: true\nlarc_eta: 0.002\n"],
)
def test_layer_wise_rates_make_a_large_base_lr_normal(tmp_path, fork):
    fixed = 'lr_policy: "fixed"\n'
    solver = write(tmp_path, "solver.prototxt", f"base_lr: 9\n{fork}max_iter: 100\n{fixed}")
    assert [f.rule for f in lint(solver=solver)] == []
    plain = write(tmp_path, "plain.prototxt", f"base_lr: 9\nlarc: false\nmax_iter: 100\n{fixed}")
    assert [f.rule for f in lint(solver=plain)] == ["base-lr", "no-clip"]


def test_a_fork_solver_alone_is_known_as_a_solver(tmp_path):
    solver = write(tmp_path, "s.prototxt", 'larc: true\nlarc_policy: "scale"\nlr_policy: "fixed"\n')
    assert lint_files([solver]) == []


# --- severity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, severity",
    [
        ('lr_policy: "multistep"\ngamma: 0.5\n', "warning"),
        ('lr_policy: "multistep"\ngamma: 0.5\nstepvalue: 30\nstepvalue: 5\n', "warning"),
        ('lr_policy: "sigmoid"\nstepsize: 100\n', "warning"),
        ('lr_policy: "inv"\npower: 0.75\n', "warning"),
        ('lr_policy: "poly"\npower: 2\n', "error"),
        ('lr_policy: "step"\ngamma: 0.5\n', "error"),
        ('lr_policy: "exp"\ngamma: 1.01\n', "error"),
        ('lr_policy: "triangular"\n', "error"),
    ],
)
def test_error_means_nan_inf_or_a_crash(tmp_path, text, severity):
    solver = write(tmp_path, "solver.prototxt", text)
    assert {f.severity for f in lint(solver=solver) if f.rule == "lr-policy"} == {severity}


def test_an_empty_pooling_window_is_an_error(tmp_path):
    text = INPUT_LAYER + layer(
        'name: "pool" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 2 stride: 7 }'
    )
    assert [(f.rule, f.severity, f.layer) for f in found(tmp_path, text)] == [
        ("pool-empty-window", "error", "pool")
    ]


# --- V0 nets ------------------------------------------------------------------------------

V0 = """name: "old"
input: "data"
layers {{
  layer {{ name: "{name}" type: "conv" num_output: 8 kernelsize: 3 }}
  bottom: "data"
  top: "{name}"
}}
"""


@pytest.mark.parametrize("name", ["conv1", "c"])
@pytest.mark.parametrize("command", [["lint"], ["inject", "-o", "OUT"]])
def test_a_v0_net_is_named_and_refused(tmp_path, capsys, name, command):
    path = write(tmp_path, "v0.prototxt", "# 2013\n" * len(name) + V0.format(name=name))
    args = [a.replace("OUT", str(tmp_path / "out.prototxt")) for a in command]
    assert main([args[0], path, *args[1:]]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert (
        f"v0.prototxt:{len(name) + 3}:1:" in err
        and "V0 net" in err
        and "upgrade_net_proto_text" in err
    )
    assert not (tmp_path / "out.prototxt").exists()


def test_a_v1_net_is_not_taken_for_v0():
    net = Net.parse('layers { name: "c" type: CONVOLUTION bottom: "x" top: "c" }\n')
    assert net.v1 and [layer.type for layer in net.layers] == ["Convolution"]
    with pytest.raises(NetError, match="V0"):
        Net.parse('layers { layer { name: "c" type: "conv" } top: "c" }\n')


# --- inject --blobs loss on a deploy net -----------------------------------------------------


@pytest.mark.parametrize("count", [3, 300])
def test_inject_loss_on_a_net_without_loss_says_so(tmp_path, capsys, count):
    text = INPUT_LAYER + "".join(
        layer(f'name: "r{i}" type: "ReLU" bottom: "{"x" if i == 0 else f"r{i - 1}"}" top: "r{i}"')
        for i in range(count)
    )
    path = write(tmp_path, "deploy.prototxt", text)
    assert main(["inject", path, "--blobs", "loss", "-o", str(tmp_path / "out.prototxt")]) == 2
    err = capsys.readouterr().err
    assert "no loss layer" in err and "r1" not in err and len(err.strip().splitlines()) == 1


# --- rules for NaN causes of forks and custom layers -----------------------------------------

FP16_LAYER = layer(
    'name: "{name}" type: "Convolution" bottom: "x" top: "{name}" forward_type: FLOAT16 backward_type: {back} '
    'convolution_param { num_output: 2 weight_filler { type: "xavier" } }'
)


@pytest.mark.parametrize("back", ["FLOAT16", "FLOAT"])
def test_fp16_layers_without_loss_scaling_are_named(tmp_path, back):
    text = (
        DATA
        + FP16_LAYER.replace("{name}", "half1").replace("{back}", back)
        + FP16_LAYER.replace("{name}", "half2").replace("{back}", back)
    )
    (finding,) = [f for f in found(tmp_path, text) if f.rule == "fp16-no-loss-scale"]
    assert (
        finding.layer == ("half1", "half2")
        and finding.severity == "warning"
        and "65504" in finding.message
    )


@pytest.mark.parametrize(
    "scaling", ["global_grad_scale: 256\n", "global_grad_scale_adaptive: true\n"]
)
def test_fp16_with_loss_scaling_is_quiet(tmp_path, scaling):
    text = scaling + DATA + FP16_LAYER.replace("{name}", "h").replace("{back}", "FLOAT16")
    assert [f.rule for f in found(tmp_path, text)] == []


def test_a_net_wide_fp16_default_is_one_finding_at_the_setting(tmp_path):
    text = (
        'name: "n"\ndefault_forward_type: FLOAT16\ndefault_backward_type: FLOAT16\n'
        + DATA
        + conv("c", filler=True)
    )
    (finding,) = found(tmp_path, text)
    assert (finding.rule, finding.line, finding.layer) == ("fp16-no-loss-scale", 2, None)
    assert "default_forward_type, default_backward_type" in finding.message
    fp32 = "default_forward_type: FLOAT\n" + DATA + conv("c", filler=True)
    assert found(tmp_path, fp32, "fp32.prototxt") == []


@pytest.mark.parametrize(
    "spec, hider",
    [
        ('type: "NaN2Zero"', True),
        ('type: "RemoveNaN"', True),
        ('type: "nan_to_num"', True),
        ('type: "Python" python_param { module: "layers.replace_nans" layer: "Layer" }', True),
        ('type: "Python" python_param { module: "mylayers" layer: "NanFilterLayer" }', True),
        (
            'type: "Python" python_param { module: "caffe_nantools.checking" layer: "CheckFiniteLayer" }',
            False,
        ),
        (
            'type: "Python" python_param { module: "caffe_nantools.checking" layer: "Banana" }',
            False,
        ),
        ('type: "Normalize"', False),
        ('type: "NanoPooling"', False),
    ],
)
def test_layers_that_hide_nan_are_named(tmp_path, spec, hider):
    text = DATA + layer(f'name: "h" {spec} bottom: "x" top: "y"')
    hiding = [f for f in found(tmp_path, text) if f.rule == "hides-nan"]
    assert [(f.severity, f.layer) for f in hiding] == ([("warning", "h")] if hider else [])


def test_threshold_is_a_note_that_nan_becomes_zero(tmp_path):
    text = DATA + layer(
        'name: "t" type: "Threshold" bottom: "x" top: "t" threshold_param { threshold: 0.5 }'
    )
    assert [(f.rule, f.severity) for f in found(tmp_path, text)] == [("hides-nan", "info")]


@pytest.mark.parametrize(
    "params, rules",
    [
        ("smooth_l1_loss_param { sigma: 0 }", [("smoothl1-sigma", "warning")]),
        ("smooth_l1_loss_param { sigma: 0.0 }", [("smoothl1-sigma", "warning")]),
        ("smooth_l1_loss_param { sigma: 3 }", []),
        ("", []),
    ],
)
def test_smooth_l1_with_sigma_zero(tmp_path, params, rules):
    text = DATA + layer(
        f'name: "box" type: "SmoothL1Loss" bottom: "x" bottom: "label" top: "l" {params}'
    )
    assert [(f.rule, f.severity) for f in found(tmp_path, text)] == rules


@pytest.mark.parametrize(
    "params, fires",
    [
        ("", True),
        ("loss_param { normalization: VALID }", True),
        ("loss_param { normalize: true }", True),
        ("loss_param { normalization: BATCH_SIZE }", False),
        ("loss_param { normalize: false }", False),
        ("loss_param { normalization: FULL normalize: true }", False),
    ],
)
def test_multibox_valid_normalization_is_a_note(tmp_path, params, fires):
    text = DATA + layer(
        f'name: "mbox" type: "MultiBoxLoss" bottom: "x" bottom: "label" top: "l" {params}'
    )
    assert [(f.rule, f.severity, f.layer) for f in found(tmp_path, text)] == (
        [("multibox-valid", "info", "mbox")] if fires else []
    )


@pytest.mark.parametrize(
    "setting",
    [
        "base_lr: nan",
        "momentum: nan",
        "clip_gradients: -inf",
        "weight_decay: inf",
        "gamma: nan",
        "base_lr: 1e400",
    ],
)
def test_a_solver_number_that_is_nan_or_inf_is_an_error(tmp_path, setting):
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "net.prototxt"\n{setting}\n')
    found = [f for f in lint(solver=str(path)) if f.rule == "non-finite-setting"]
    assert len(found) == 1 and found[0].severity == "error" and found[0].line == 2


@pytest.mark.parametrize(
    "setting",
    [
        'weight_decay: "x"',
        'momentum: "x"',
        'random_seed: "x"',
        "max_iter: 1.5",
        "debug_info: 3",
        "solver_mode: TPU",
    ],
)
def test_a_solver_value_of_the_wrong_type_is_bad_input(tmp_path, capsys, setting):
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "net.prototxt"\nbase_lr: 0.01\n{setting}\n')
    assert main(["lint", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "kind, finding", [('"Unknown"', "solver-type"), ('"sgd"', "solver-type"), ('"SGD"', None)]
)
def test_an_unknown_solver_type_is_an_error(tmp_path, kind, finding):
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "net.prototxt"\nbase_lr: 0.01\ntype: {kind}\n')
    assert [f.rule for f in lint(solver=str(path)) if f.rule == "solver-type"] == (
        [finding] if finding else []
    )


@pytest.mark.parametrize(
    "params",
    [
        'data_param { source: "x" batch_size: 0 }',
        'data_param { source: "x" backend: FOO }',
        'data_param { source: "x" batch_size: "many" }',
    ],
)
def test_odd_data_layer_parameters_are_bad_input_for_lint_as_for_scan(tmp_path, capsys, params):
    path = tmp_path / "net.prototxt"
    path.write_text(f'layer {{ name: "in" type: "Data" top: "data" top: "label" {params} }}\n')
    assert main(["lint", str(path)]) == 2 and main(["scan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count(f"{path}:1:") == 2


def test_the_report_gives_its_summary_and_exit_status(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "net.prototxt"\nbase_lr: 0.5\nlr_policy: "poly"\n')
    report = lint(solver=str(path))
    assert str(report) == "1 errors, 2 warnings, 1 notes" and report.return_code == 1
    assert report.format().endswith("1 errors, 2 warnings, 1 notes\n") and json.loads(
        report.to_json()
    )
    path.write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n')
    assert lint(solver=str(path)).return_code == 0
