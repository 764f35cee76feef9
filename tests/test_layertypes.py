"""The layer types' table (caffe_nantools.layertypes): one entry per type holds what lint checks
in it, what a loss or metric layer requires of its bottoms, the advice for a layer that made
non-finite values, and the changes hunt tries; lint, scan, diagnose and hunt read it, so a
new type or rule is one entry."""

import inspect

import pytest

from caffe_nantools import layertypes
from caffe_logs import CaffeLog
from caffe_nantools.diagnose import diagnose
from caffe_nantools.hunt.numeric_fixes import layer_edits
from caffe_nantools.layertypes import (
    EVERY_LAYER,
    REQUIRES,
    TYPES,
    UNIT,
    Contract,
    LayerProblem,
    LayerType,
    Rule,
    layer_type,
)
from caffe_nantools.layertypes import checks
from caffe_nantools.lint import lint
from caffe_nantools.prototxt import Net, NetState
from caffe_nantools.scan.contracts import bound_contracts


def layer(text):
    return f"layer {{ {text} }}\n"


INPUT = layer('name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } }')


@pytest.mark.parametrize("name", sorted(TYPES))
def test_each_entry_holds_what_it_claims(name):
    entry = TYPES[name]
    assert entry.name == name
    assert entry.lint or entry.contract or entry.advice or entry.edits
    for rule in entry.lint:
        assert isinstance(rule, Rule) and rule.name and rule.checks and callable(rule.check)
    for contract in entry.contract:
        assert contract.bottom >= 0 and contract.kind in REQUIRES
    if entry.advice:
        assert "'a_layer'" in entry.advice.format(name="a_layer")
    if entry.edits is not None:
        assert list(inspect.signature(entry.edits).parameters) == [
            "net_text",
            "path",
            "layer",
            "nan",
        ]


def test_every_rule_of_a_layer_is_listed_by_an_entry_or_for_every_layer():
    defined = {id(r) for _, r in inspect.getmembers(checks, lambda v: isinstance(v, Rule))}
    listed = {id(r) for t in TYPES.values() for r in t.lint} | {id(r) for r in EVERY_LAYER}
    assert defined == listed


@pytest.mark.parametrize("name", ["ReLU", "MyCustomLoss", ""])
def test_a_type_not_listed_is_known_for_nothing(name):
    assert layer_type(name) == LayerType(name)


def test_a_new_loss_type_is_one_entry_for_lint_and_scan(tmp_path, monkeypatch):
    """The entry's rule fires in lint, its contract binds in scan; nothing else changes."""

    def always(seen):
        yield LayerProblem(seen.layer, "info", f"RankLoss {seen.layer.name!r}", "is new", "none")

    entry = LayerType(
        "RankLoss",
        lint=(Rule("rank-loss", "RankLoss is known", always),),
        contract=(Contract(1, UNIT),),
    )
    monkeypatch.setitem(layertypes.TYPES, "RankLoss", entry)
    path = tmp_path / "net.prototxt"
    path.write_text(
        INPUT
        + layer('name: "t" type: "Input" top: "target" input_param { shape { dim: 2 dim: 3 } }')
        + layer('name: "rank" type: "RankLoss" bottom: "x" bottom: "target" top: "loss"')
    )
    assert [(f.rule, f.layer) for f in lint(str(path))] == [("rank-loss", "rank")]
    (bound,) = bound_contracts(Net.parse(path.read_text()), NetState("TRAIN"))["target"]
    assert (bound.layer, bound.type, bound.kind) == ("rank", "RankLoss", UNIT)


def test_a_new_types_advice_and_edits_reach_diagnose_and_hunt(tmp_path, monkeypatch):
    def halve(net_text, path, layer, nan):
        return [layertypes.Edit(f"halve {layer.name}", net_text)]

    entry = LayerType("Cube", advice="Cube {name!r}: lower its power", edits=halve)
    monkeypatch.setitem(layertypes.TYPES, "Cube", entry)
    text = (
        INPUT.replace('"in"', '"data"').replace('"x"', '"data"')
        + layer('name: "conv1" type: "Convolution" bottom: "data" top: "conv1"')
        + layer('name: "cube" type: "Cube" bottom: "conv1" top: "conv1"')
        + layer('name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"')
    )
    net = tmp_path / "net.prototxt"
    net.write_text(text)
    log = CaffeLog().solving()
    log.forward("data", "data", "0.77").forward("conv1", "conv1", "0.5")
    log.forward("cube", "conv1", "nan").forward("ip1", "ip1", "nan").loss(0, "nan").lr(0, "0.01")
    result = diagnose(log.write(tmp_path / "train.log"), net=str(net))
    assert result.cause == "layer_numerics" and result.first_nonfinite.layer == "cube"
    assert "Cube 'cube': lower its power" in result.advice
    assert layer_edits(text, str(net), "cube", False) == [("halve cube", text)]


@pytest.mark.parametrize(
    "kind, params, changed",
    [
        ("BatchNorm", "batch_norm_param { eps: 0 }", "eps 1e-05"),
        ("Log", "", "log_param shift 1e-06"),
        ("Power", "power_param { power: 0.5 }", "power_param shift 1e-06"),
        ("Exp", "exp_param { scale: 4 }", "exp_param scale 1"),
        ("Pooling", "pooling_param { kernel_size: 2 stride: 3 }", "stride 2"),
    ],
)
def test_the_types_with_edits_get_them_from_their_entry(kind, params, changed):
    text = INPUT + layer(f'name: "n" type: "{kind}" bottom: "x" top: "y" {params}')
    edits = layer_edits(text, "net.prototxt", "n", False)
    assert edits and changed in edits[0].change and edits[0].net_text != text
    assert layer_type(kind).edits is not None
