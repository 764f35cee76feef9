"""A Python layer's param_str read as settings, and the numeric-stability settings among them
that hunt tries at a safe value: an eps or a floor at 0, a switch to the stable form that is
off. Only the value changes; the format, the other settings and the quoting stay the user's.
And the Reshape whose scores do not divide: the num_output a loss's declared label calls for."""

import pytest

from caffe_nantools.hunt.abort_rules import fix_net
from caffe_nantools.hunt.python_params import settings, stability_retries
from caffe_nantools.prototxt import dump
from caffe_nantools.prototxt.fields import STRING
from caffe_nantools.prototxt.net import Net


def net_with(param_str):
    return (
        'layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "py" type: "Python" bottom: "x" top: "y" '
        f'python_param {{ module: "m" layer: "L" param_str: {param_str} }} }}\n'
    )


def tried(param_str, compared=()):
    retries = stability_retries(net_with(param_str), "net.prototxt", "py", compared)
    out = []
    for r in retries:
        layer = next(l for l in Net.parse(r.net_text).layers if l.name == "py")
        assert layer.node.find("python_param").field("param_str", STRING) == r.param_str
        out.append(r.param_str)
    return out


@pytest.mark.parametrize(
    "text, keys",
    [
        ("eps: 0", [("eps", "0")]),
        ("scale=2; min_count=0", [("scale", "2"), ("min_count", "0")]),
        ("{'a': 'x:y', \"floor\": 0.0}", [("a", "'x:y'"), ("floor", "0.0")]),
        ('{"stable": false, "n": [1, 2]}', [("stable", "false"), ("n", "[1")]),
        ("3", []),
    ],
)
def test_settings_are_read_in_every_common_format(text, keys):
    assert [(s.key, s.value) for s in settings(text)] == keys


@pytest.mark.parametrize(
    "param_str, first",
    [
        ('"eps: 0"', "eps: 1e-06"),
        ('"scale: 2, norm_epsilon: 0.0, axis: 1"', "scale: 2, norm_epsilon: 1e-06, axis: 1"),
        ('"minCount=0;w=1"', "minCount=1e-06;w=1"),
        ("'{\"smooth\": 0}'", '{"smooth": 1e-06}'),
        ("\"{'least': '0'}\"", "{'least': '1e-06'}"),
        ('"delta: -1e-8"', "delta: 1e-06"),
    ],
)
def test_an_eps_or_floor_at_0_is_tried_at_rising_safe_values_in_the_users_format(param_str, first):
    found = tried(param_str)
    assert found[0] == first and len(found) == 3
    assert found[-1] == first.replace("1e-06", "1")


@pytest.mark.parametrize(
    "param_str, compared, values",
    [
        ('"shift: none"', ["max"], ["shift: max"]),
        ("'{\"stable\": false}'", [], ['{"stable": true}']),
        ("\"{'Stable': False}\"", [], ["{'Stable': True}"]),
        ('"subtract_max: 0"', ["sum", "0"], ["subtract_max: sum", "subtract_max: 1"]),
        ('"safe_mode=off"', [], ["safe_mode=on"]),
    ],
)
def test_a_stable_form_switched_off_is_tried_on_with_the_values_the_code_compares_first(
    param_str, compared, values
):
    assert tried(param_str, compared) == values


@pytest.mark.parametrize(
    "param_str",
    ['"eps: 1e-6"', '"shift: max"', '"scale: 0"', '"min_value: -3"', '"0"', '"eps: abc"'],
)
def test_a_setting_that_is_safe_or_no_stability_setting_is_left_alone(param_str):
    assert tried(param_str, ["max"]) == []


def test_a_single_quoted_param_str_stays_single_quoted():
    retry = stability_retries(net_with("'{\"eps\": 0}'"), "net.prototxt", "py")[0]
    assert "param_str: '{\"eps\": 1e-06}'" in retry.net_text


def rpn(outputs, label_rows, classes_dim=2):
    return Net.parse(
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ dim: 2 dim: 4 dim: 5 dim: 5 }} shape {{ dim: 2 dim: 1 dim: {label_rows} dim: 5 }} }} }}\n"
        'layer { name: "score" type: "Convolution" bottom: "data" top: "score" '
        f"convolution_param {{ num_output: {outputs} kernel_size: 1 }} }}\n"
        'layer { name: "rs" type: "Reshape" bottom: "score" top: "rs" '
        f"reshape_param {{ shape {{ dim: 0 dim: {classes_dim} dim: -1 dim: 0 }} }} }}\n"
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "rs" bottom: "label" top: "l" }\n'
    )


FATAL = (
    "F0101 reshape_layer.cpp:80] Check failed: 0 == bottom[0]->count() % explicit_count "
    "(0 vs. 10) bottom count ({count}) must be divisible by the product of the specified "
    "dimensions ({fixed})"
)


@pytest.mark.parametrize("anchors, wrong", [(3, 7), (5, 3), (9, 21)])
def test_a_reshape_abort_sets_num_output_from_the_declared_label_without_a_log(anchors, wrong):
    net = rpn(wrong * anchors, anchors * 5)
    fatal = FATAL.format(count=2 * wrong * anchors * 25, fixed=2 * 2 * 5)
    change = fix_net(fatal, "rs", net)
    assert change.startswith(f"score: num_output {wrong * anchors} -> {2 * anchors}")
    assert f"num_output: {2 * anchors} " in dump(net.doc)


def test_a_reshape_abort_with_the_class_axis_inferred_has_no_fix():
    net = rpn(21, 15, classes_dim=-1)
    assert fix_net(FATAL.format(count=1050, fixed=20), "rs", net) is None
