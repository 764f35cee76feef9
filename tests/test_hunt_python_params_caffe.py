"""hunt on a user's Python layer whose param_str leaves its maths undefined, with real Caffe: an
eps or a floor at 0, or a switch to the stable form that is off, is tried at a safe value on
hunt's copies and verified by training the same iterations again; only the value changes, in
the user's format (``key: value``, ``key=value;``, a Python dict, JSON), whatever the key is
called and wherever it stands. A param_str with no such setting leaves the fix to the user's
code: the advice names the class, the method and the guarded line. Names, formats and values
vary."""

import textwrap

import pytest

from caffe_nantools.files import read_text
from caffe_nantools.hunt import hunt
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.fields import STRING
from caffe_nantools.prototxt.net import Net
from hunt_nets import classifier, solver

#: A layer that scales each sample to unit length, dividing by max(norm, floor); ``{read}``:
#: how its setup reads the floor and the scale from param_str.
NORMALIZER = textwrap.dedent("""\
    import ast
    import json

    import caffe
    import numpy as np


    class {cls}(caffe.Layer):
        def setup(self, bottom, top):
            {read}

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            self.norm = np.maximum(np.sqrt((bottom[0].data ** 2).sum(1, keepdims=True)), self.floor)
            top[0].data[...] = self.scale * bottom[0].data / self.norm

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = self.scale * top[0].diff / self.norm
    """)

#: A softmax loss that subtracts the maximum only when its setting ``{read}`` says so.
SOFTMAX = textwrap.dedent("""\
    import json

    import caffe
    import numpy as np


    class {cls}(caffe.Layer):
        def setup(self, bottom, top):
            {read}

        def reshape(self, bottom, top):
            top[0].reshape(1)

        def forward(self, bottom, top):
            x = bottom[0].data
            if self.stable:
                x = x - x.max(1, keepdims=True)
            e = np.exp(x)
            self.p = e / e.sum(1, keepdims=True)
            labels = bottom[1].data.astype(int).ravel()
            top[0].data[0] = -np.log(np.maximum(self.p[np.arange(len(labels)), labels], 1e-30)).mean()

        def backward(self, top, propagate_down, bottom):
            labels = bottom[1].data.astype(int).ravel()
            g = self.p.copy()
            g[np.arange(len(labels)), labels] -= 1
            bottom[0].diff[...] = g / len(labels)
    """)


def zero_data(std=0.0):
    """Samples of 6 values (all 0 where ``std`` is 0) with labels 1."""
    filler = f'type: "gaussian" std: {std}' if std else 'type: "constant" value: 0'
    return (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ dim: 4 dim: 6 }} shape {{ dim: 4 }} data_filler {{ {filler} }} "
        'data_filler { type: "constant" value: 1 } } }\n'
    )


def python_layer(name, module, cls, bottoms, top, param_str, loss=False):
    """A Python layer; ``param_str`` as it stands in the net, quotes and all."""
    wires = "".join(f'bottom: "{b}" ' for b in bottoms) + f'top: "{top}"'
    return (
        f'layer {{ name: "{name}" type: "Python" {wires}{" loss_weight: 1" * loss} '
        f'python_param {{ module: "{module}" layer: "{cls}" param_str: {param_str} }} }}\n'
    )


def param_str_of(fix, name):
    net = Net(parse(read_text(fix.files["net"])))
    layer = next(l for l in net.layers if l.name == name)
    return layer.node.find("python_param").field("param_str", STRING)


@pytest.mark.parametrize(
    "name, param_str, read, fixed",
    [
        (
            "unit",
            '"scale: 2, floor: 0"',
            'p = dict(map(str.strip, kv.split(":")) for kv in self.param_str.split(","))\n'
            '        self.floor, self.scale = float(p["floor"]), float(p["scale"])',
            "scale: 2, floor: 1e-06",
        ),
        (
            "l2n_7",
            '"min_norm=0; scale=3"',
            'p = dict(kv.strip().split("=") for kv in self.param_str.split(";"))\n'
            '        self.floor, self.scale = float(p["min_norm"]), float(p["scale"])',
            "min_norm=1e-06; scale=3",
        ),
        (
            "norm",
            "\"{'scale': 1.5, 'epsilon': 0.0}\"",
            "p = ast.literal_eval(self.param_str)\n"
            '        self.floor, self.scale = p["epsilon"], p["scale"]',
            "{'scale': 1.5, 'epsilon': 1e-06}",
        ),
        (
            "emb_norm",
            '\'{"normEps": 0, "scale": 1}\'',
            "p = json.loads(self.param_str)\n"
            '        self.floor, self.scale = p["normEps"], p["scale"]',
            '{"normEps": 1e-06, "scale": 1}',
        ),
    ],
)
def test_an_eps_at_0_in_param_str_is_set_safe_in_the_users_format_and_verified(
    caffe, here, name, param_str, read, fixed
):
    module = f"{name}_layer"
    (here / f"{module}.py").write_text(NORMALIZER.format(cls="Normalize", read=read))
    layer = python_layer(name, module, "Normalize", ["fc_hidden"], "normed", param_str)
    (here / "net.prototxt").write_text(classifier(zero_data(), extra=layer, into="normed"))
    report = hunt(solver(here, max_iter=8), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("layer_numerics", name)
    assert fix.verified, fix
    assert param_str_of(fix, name) == fixed
    assert "instead of 0" in fix.change
    assert read_text(here / "net.prototxt").count(param_str) == 1  # the user's net as it was


@pytest.mark.parametrize(
    "param_str, read, fixed",
    [
        (
            "'{\"stable\": false}'",
            'self.stable = json.loads(self.param_str)["stable"]',
            '{"stable": true}',
        ),
        (
            '"subtract_max: 0"',
            'self.stable = bool(int(self.param_str.split(":")[1]))',
            "subtract_max: 1",
        ),
        (
            '"temperature: 1, mode_shift: off"',
            'self.stable = self.param_str.split("mode_shift:")[1].strip() in ("max", "on")',
            "temperature: 1, mode_shift: max",
        ),
    ],
)
def test_a_stable_form_switched_off_is_switched_on_with_a_value_the_layer_knows(
    caffe, here, param_str, read, fixed
):
    (here / "my_softmax.py").write_text(SOFTMAX.format(cls="Loss", read=read))
    data = zero_data(std=400.0)  # large but finite scores: exp overflows without the shift
    layer = python_layer("xent", "my_softmax", "Loss", ["data", "label"], "xent", param_str, True)
    (here / "net.prototxt").write_text(data + layer)
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("layer_numerics", "xent")
    assert fix.verified, fix
    assert param_str_of(fix, "xent") == fixed


def test_a_param_str_without_a_stability_setting_leaves_a_patch_naming_class_and_method(
    caffe, here
):
    read = 'self.scale = float(self.param_str.split(":")[1])\n        self.floor = 0.0'
    (here / "scaler.py").write_text(NORMALIZER.format(cls="Unit", read=read))
    layer = python_layer("unit", "scaler", "Unit", ["fc_hidden"], "normed", '"scale: 0"')
    (here / "net.prototxt").write_text(classifier(zero_data(), extra=layer, into="normed"))
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("layer_numerics", "unit")
    assert not fix.verified and not fix.files  # nothing was re-run
    assert "scaler.py:" in fix.change
    assert any(
        "(in Unit.forward); patch: `top[0].data[...] = self.scale * bottom[0].data / "
        "np.maximum(self.norm, 1e-12)`" in a
        for a in report.advice
    ), report.advice
