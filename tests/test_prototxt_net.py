"""The net view: layers, their rules, and where each blob comes from, per phase."""

import pytest

from caffe_nantools.prototxt.net import Net, NetState, representative_states, rules_of_any
from corpus import CORPUS, MISSING, read
from nets import PHASED_NET


def test_layers_in_file_order_with_types_blobs_and_rules():
    net = Net.parse(PHASED_NET)
    assert [(l.name, l.type) for l in net.layers][:4] == [
        ("data", "DummyData"),
        ("data", "DummyData"),
        ("conv1", "Convolution"),
        ("relu1", "ReLU"),
    ]
    drop = net.layers[4]
    assert (drop.bottoms, drop.tops, [r.phase for r in drop.include]) == (
        ["conv1"],
        ["conv1"],
        ["TRAIN"],
    )
    assert drop.in_place("conv1") and not net.layers[2].in_place("conv1")
    assert net.name == "small" and not net.v1


def test_chain_per_phase_is_the_producer_then_its_in_place_modifiers():
    net = Net.parse(PHASED_NET)
    names = lambda layers: [(l.index, l.name) for l in layers]  # noqa: E731
    assert names(net.chain("conv1", NetState("TRAIN"))) == [
        (2, "conv1"),
        (3, "relu1"),
        (4, "drop1"),
    ]
    assert names(net.chain("conv1", NetState("TEST"))) == [(2, "conv1"), (3, "relu1")]
    assert names(net.chain("data", NetState("TRAIN"))) == [(0, "data")]
    assert names(net.chain("data", NetState("TEST"))) == [(1, "data")]
    assert net.chain("accuracy", NetState("TRAIN")) == []


def test_histories_collect_writers_and_readers_over_all_phases():
    history = Net.parse(PHASED_NET).histories()["conv1"]
    assert [w.name for w in history.producers] == ["conv1"]
    assert [w.name for w in history.modifiers] == ["relu1", "drop1"]
    assert [r.name for r in history.readers] == ["ip1"]


def test_loss_and_data_layers():
    net = Net.parse(PHASED_NET)
    assert [l.name for l in net.layers if l.is_loss] == ["loss"]
    assert [l.name for l in net.layers if l.is_data] == ["data", "data"]


@pytest.mark.parametrize(
    "rule, state, expected",
    [
        ("include { phase: TEST }", NetState("TEST"), True),
        ("include { phase: TEST }", NetState("TRAIN"), False),
        ("exclude { phase: TEST }", NetState("TRAIN"), True),
        ("include { stage: 'a' stage: 'b' }", NetState("TRAIN", 0, ("a",)), False),
        ("include { stage: 'a' stage: 'b' }", NetState("TEST", 0, ("b", "a")), True),
        ("include { not_stage: 'a' }", NetState("TRAIN", 0, ("a",)), False),
        ("include { min_level: 1 }", NetState("TRAIN", 0), False),
        ("include { max_level: 1 }", NetState("TRAIN", 1), True),
        ("include { phase: TRAIN } include { phase: TEST }", NetState("TEST"), True),
    ],
)
def test_rules_follow_caffes_state_matching(rule, state, expected):
    layer = Net.parse(f"layer {{ name: 'x' type: 'ReLU' {rule} }}").layers[0]
    assert layer.active(state) is expected


def test_v1_types_map_to_todays_names_and_inputs_are_blobs():
    path = CORPUS / "caffe-history" / "bvlc_reference_caffenet__deploy.prototxt"
    if not path.exists():
        pytest.skip(MISSING)
    net = Net.parse(read(path))
    assert net.v1 and net.inputs == ["data"]
    assert [l.type for l in net.layers][:4] == ["Convolution", "ReLU", "Pooling", "LRN"]
    assert net.blob_names()[0] == "data"


def test_explicit_loss_weight_per_top():
    layer = Net.parse(
        "layer { name: 'l' type: 'X' top: 'a' top: 'b' loss_weight: 0 loss_weight: 0.5 }"
    ).layers[0]
    assert (layer.loss_weight("a"), layer.loss_weight("b")) == (0.0, 0.5)


def _layers(*rules: str):
    text = "".join(
        f'layer {{ name: "l{i}" type: "ReLU" top: "x" {r} }}\n' for i, r in enumerate(rules)
    )
    return Net.parse(text).layers


def _written(rules):
    return None if rules is None else [(kind, r.phase, r.stages, r.not_stages) for kind, r in rules]


@pytest.mark.parametrize(
    "rules, expected",
    [
        # Any producer without rules, or producers that together cover every state: no rule.
        (("", "include { phase: TEST }"), []),
        (("include { phase: TRAIN }", "include { phase: TEST }"), []),
        (('include { stage: "s" }', 'exclude { stage: "s" }'), []),
        # One producer: its own rules, of its own kind.
        (("include { phase: TEST }",), [("include", "TEST", (), ())]),
        (
            ('exclude { phase: TRAIN } exclude { stage: "a" }',),
            [("exclude", "TRAIN", (), ()), ("exclude", None, ("a",), ())],
        ),
        # Several producers with include rules: every one of them.
        (
            ('include { stage: "a" }', 'include { phase: TEST not_stage: "b" }'),
            [("include", None, ("a",), ()), ("include", "TEST", (), ("b",))],
        ),
        # Phase-only rules of both kinds: the phases in which one of them exists.
        (("include { phase: TEST }", "exclude { phase: TRAIN }"), [("include", "TEST", (), ())]),
        # Mixed kinds that name stages cannot be written as one layer's rules.
        (("include { phase: TRAIN }", 'exclude { phase: TEST stage: "t" }'), None),
    ],
)
def test_rules_of_any_give_the_states_in_which_one_of_the_layers_exists(rules, expected):
    layers = _layers(*rules)
    answer = rules_of_any(layers)
    assert _written(answer) == expected
    if answer:  # the answer holds in exactly the states in which one of the layers is built
        for state in representative_states(
            r for layer in layers for r in layer.include + layer.exclude
        ):
            kinds = {kind for kind, _ in answer}
            made = (
                any(r.matches(state) for _, r in answer)
                if kinds == {"include"}
                else not any(r.matches(state) for _, r in answer)
            )
            assert made == any(layer.active(state) for layer in layers), state
