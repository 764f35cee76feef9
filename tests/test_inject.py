"""inject and remove: check layers in, the user's file otherwise untouched, and back out."""

import os
import textwrap

import pytest

from caffe_nantools.cli import main
from caffe_nantools.inject import CheckOptions, InjectError, inject_text, remove_text, select_blobs
from caffe_nantools.prototxt.edits import EditError
from caffe_nantools.prototxt import ParseError
from caffe_nantools.prototxt.net import Net, NetError, inline_nets
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.upgrade import upgrade_v1
from caffe_nantools.templates import escape
from corpus import CORPUS, MISSING, V1_NETS, V2_NETS, corpus_params, read
from nets import INLINE_SOLVERS, PHASED_NET


NET = PHASED_NET


def checks(text):
    return [
        (l.name, l.bottoms, [r.phase for r in l.include])
        for l in Net.parse(text).layers
        if l.type == "Python"
    ]


def layer_order(text):
    return [l.name for l in Net.parse(text).layers]


@pytest.mark.parametrize("path", corpus_params(V2_NETS))
def test_corpus_inject_all_then_remove_gives_the_bytes_back(path):
    text = read(path)
    result = inject_text(text, str(path))
    net = Net.parse(text)
    assert len(result.added) == len(net.blob_names()) - len(result.skipped)
    checked = Net.parse(result.text)
    assert len([l for l in checked.layers if l.type == "Python"]) == len(
        [l for l in net.layers if l.type == "Python"]
    ) + len(result.added)
    assert remove_text(result.text)[0] == text
    again = inject_text(result.text, str(path))
    assert again.text == result.text and again.added == []


@pytest.mark.parametrize("path", corpus_params(V1_NETS))
def test_v1_nets_are_refused_with_how_to_upgrade(path):
    with pytest.raises(InjectError) as info:
        inject_text(read(path), "old.prototxt")
    message = str(info.value)
    assert (
        message.startswith("old.prototxt:")
        and "upgrade_net_proto_text" in message
        and "pass upgrade=True" in message  # the library's terms; the CLI says --upgrade
    )
    assert "\n" not in message


def test_check_goes_after_the_last_in_place_modifier_and_before_the_reader():
    result = inject_text(NET, blobs=["conv1"])
    order = layer_order(result.text)
    assert order.index("nancheck/conv1") == order.index("drop1") + 1
    assert order.index("nancheck/conv1") < order.index("ip1")


def test_each_checks_after_producer_and_every_modifier_under_their_rules():
    result = inject_text(NET, blobs=["conv1"], each=True)
    assert checks(result.text) == [
        ("nancheck/conv1@conv1", ["conv1"], []),
        ("nancheck/conv1@relu1", ["conv1"], []),
        ("nancheck/conv1@drop1", ["conv1"], ["TRAIN"]),
    ]
    order = layer_order(result.text)
    assert order[order.index("conv1") + 1] == "nancheck/conv1@conv1"


def test_blobs_of_one_phase_get_checks_of_that_phase():
    result = inject_text(NET)
    found = {name: phases for name, _, phases in checks(result.text)}
    assert found["nancheck/accuracy"] == ["TEST"]
    assert found["nancheck/data"] == []  # a TRAIN producer and a TEST producer: both phases
    assert "nancheck/loss" not in found  # a loss top: a check there would stop Caffe's backward


def test_data_checks_come_after_the_last_data_layer():
    order = layer_order(inject_text(NET, blobs=["data"]).text)
    assert order[:3] == ["data", "data", "nancheck/data"]


def test_several_tops_of_one_layer_keep_their_order():
    order = layer_order(inject_text(NET, blobs=["label", "data"]).text)
    assert order[2:4] == ["nancheck/data", "nancheck/label"]


@pytest.mark.parametrize(
    "specs, expected",
    [
        (["all"], ["data", "label", "conv1", "ip1", "loss", "accuracy"]),
        (["conv*", "ip1"], ["conv1", "ip1"]),
        (["re:(ip1|loss)"], ["ip1", "loss"]),
        (["type:Convolution", "type:Accuracy"], ["conv1", "accuracy"]),
        (["loss"], ["label", "ip1"]),
        (["data"], ["data", "label"]),
        (["ip1", "ip1", "i*"], ["ip1"]),
    ],
)
def test_blob_selection(specs, expected):
    assert select_blobs(Net.parse(NET), specs) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "conv2",
            "blobs='conv2': no such blob in the net (blobs: data, label, conv1, ip1, loss, accuracy)",
        ),
        ("x*", "blobs='x*': no such blob"),
        ("re:(", "blobs='re:(': not a regular expression"),
        (
            "type:LSTM",
            "blobs='type:LSTM': no layer of type 'LSTM' (types in the net: Accuracy, Convolution, Dropout, DummyData, InnerProduct",
        ),
    ],
)
def test_blob_selection_errors_name_what_exists(spec, message):
    with pytest.raises(InjectError) as info:
        select_blobs(Net.parse(NET), [spec])
    assert str(info.value).startswith(message)


def test_net_inputs_are_checked_before_the_first_layer():
    text = 'input: "data"\ninput_dim: 1\ninput_dim: 3\nlayer {\n  name: "ip"\n  type: "InnerProduct"\n  bottom: "data"\n  top: "ip"\n}\n'
    result = inject_text(text)
    assert layer_order(result.text) == ["nancheck/data", "ip", "nancheck/ip"]
    assert remove_text(result.text)[0] == text


def test_inserted_layers_follow_indentation_quotes_and_line_breaks():
    text = "name: 'n'\r\nlayer {\r\n\tname: 'a'\r\n\ttype: 'Input'\r\n\ttop: 'a'\r\n}\r\n"
    result = inject_text(text)
    added = result.text[len(text) - 2 :]
    assert added == (
        "\r\nlayer {  # added by caffe-nantools inject; `caffe-nantools remove` takes it out\r\n"
        "\tname: 'nancheck/a'\r\n\ttype: 'Python'\r\n\tbottom: 'a'\r\n\ttop: 'a'\r\n"
        "\tpython_param {\r\n\t\tmodule: 'caffe_nantools.layers'\r\n\t\tlayer: 'CheckFiniteLayer'\r\n"
        "\t\tparam_str: 'name=nancheck/a blobs=a writer=a'\r\n\t}\r\n}\r\n"
    )
    assert remove_text(result.text)[0] == text


def test_trailing_comments_stay_on_their_line():
    text = 'layer { name: "a" type: "Input" top: "a" }  # the input\nlayer { name: "b" type: "ReLU" bottom: "a" top: "b" }\n'
    result = inject_text(text, blobs=["a"])
    assert result.text.startswith(
        'layer { name: "a" type: "Input" top: "a" }  # the input\nlayer {  # added'
    )
    assert remove_text(result.text)[0] == text


def test_check_options_go_into_param_str():
    result = inject_text(NET, blobs=["ip1"], options=CheckOptions(on="warn", max_abs=1e6, every=10))
    assert (
        'param_str: "name=nancheck/ip1 blobs=ip1 writer=ip1 on=warn max_abs=1e+06 every=10"'
        in result.text
    )


def test_odd_blob_names_use_json_param_str():
    text = 'layer { name: "a" type: "Input" top: "x,y z" }\n'
    result = inject_text(text)
    from caffe_nantools.checking import parse_param_str

    node = Net.parse(result.text).layers[1].node.find("python_param")
    assert parse_param_str(node.get("param_str")).blobs == ("x,y z",)


def test_remove_leaves_hand_written_check_layers_alone():
    text = NET + textwrap.dedent(
        """\
        layer {
          name: "nancheck/ip1"
          type: "Python"
          bottom: "ip1"
          top: "ip1"
          python_param { module: "caffe_nantools.layers" layer: "CheckFiniteLayer" }
        }
        """
    )
    assert remove_text(text) == (text, [])


@pytest.mark.parametrize("weight", ["", " loss_weight: 0.5"])
def test_loss_tops_are_left_out_with_the_reason(weight):
    result = inject_text(NET.replace('top: "loss" }', f'top: "loss"{weight} }}'))
    assert "nancheck/loss" not in result.text and "nancheck/ip1" in result.text
    assert result.skipped == [
        "loss (the loss of loss: a check in place would stop Caffe's backward; its value is in the log)"
    ]


def test_a_second_top_of_a_loss_layer_without_loss_weight_is_checked():
    text = NET.replace('top: "loss" }', 'top: "loss" top: "probs" }')
    assert "nancheck/probs" in inject_text(text).text


def test_parse_errors_have_the_position():
    with pytest.raises(ParseError, match=r"^net.prototxt:2:2: expected a field name, found '}'"):
        inject_text("layer {\n}}", "net.prototxt")


def test_rules_that_cannot_be_combined_are_refused_with_advice():
    text = textwrap.dedent(
        """\
        layer { name: "a" type: "Input" top: "x" include { stage: "s" } }
        layer { name: "b" type: "Input" top: "x" exclude { phase: TEST stage: "t" } }
        """
    )
    with pytest.raises(InjectError, match="cannot be combined into one; check it with each=True"):
        inject_text(text)
    assert checks(inject_text(text, each=True).text) == [
        ("nancheck/x@a", ["x"], [None]),
        ("nancheck/x@b", ["x"], []),
    ]


# --- the command -------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    net = tmp_path / "train_val.prototxt"
    net.write_text(NET)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "train_val.prototxt"  # the net\nbase_lr: 0.01\ndisplay: 0\n')
    return tmp_path, net, solver


def test_cli_inject_and_remove_round_trip(files, capsys):
    tmp, net, solver = files
    out, solver_out = tmp / "checked.prototxt", tmp / "solver_checked.prototxt"
    code = main(
        [
            "inject",
            str(net),
            "-o",
            str(out),
            "--blobs",
            "ip1",
            "re:loss",
            "--solver",
            str(solver),
            "--solver-out",
            str(solver_out),
            "--net-path",
            "checked.prototxt",
            "--display",
            "1",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert f"{out}: added 1 check layers" in captured.out
    assert solver_out.read_text() == (
        'net: "checked.prototxt"  # the net  # changed by caffe-nantools, was: "train_val.prototxt"\n'
        "base_lr: 0.01\n"
        "display: 1  # changed by caffe-nantools, was: 0\n"
        "debug_info: true  # added by caffe-nantools\n"
    )
    assert net.read_text() == NET and solver.read_text().startswith('net: "train_val')
    assert main(["remove", str(out), str(solver_out), "--in-place"]) == 0
    assert out.read_text() == NET
    assert solver_out.read_text() == solver.read_text()


def test_cli_in_place_keeps_a_backup(files, capsys):
    tmp, net, _ = files
    assert main(["inject", str(net), "--in-place", "--blobs", "ip1"]) == 0
    assert (tmp / "train_val.prototxt.orig").read_text() == NET
    assert "nancheck/ip1" in net.read_text()
    assert f"kept the original as {net}.orig" in capsys.readouterr().err


def test_cli_dry_run_prints_a_diff_and_writes_nothing(files, capsys):
    tmp, net, _ = files
    assert main(["inject", str(net), "--dry-run", "--blobs", "ip1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {net}\n+++ {net}\n@@ ")
    assert '+  name: "nancheck/ip1"\n' in out
    assert os.listdir(tmp) == ["train_val.prototxt", "solver.prototxt"] or sorted(
        os.listdir(tmp)
    ) == ["solver.prototxt", "train_val.prototxt"]


def test_cli_warns_when_display_hides_debug_info(files, capsys):
    tmp, net, solver = files
    assert main(["inject", str(net), "--dry-run", "--solver", str(solver)]) == 0
    assert (
        "never prints the debug_info trace; set display to 1 while hunting a NaN"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["{net}"], "say where the result goes: --output, --in-place or --dry-run"),
        (["{net}", "-o", "{net}"], "is the input NET; give a new path"),
        (["{net}", "-o", "x", "--in-place"], "--output x and --in-place exclude each other"),
        (["{tmp}/missing.prototxt", "-o", "x"], "missing.prototxt: no such file"),
        (["{tmp}", "-o", "x"], "is a folder, not a file"),
        (["{net}", "-o", "x", "--blobs", "nope"], "--blobs nope: no such blob"),
        (
            ["{net}", "-o", "x", "--net-path", "y"],
            "--solver-out, --net-path and --display need --solver",
        ),
        (
            ["{net}", "-o", "x", "--solver", "{solver}"],
            "say where the result goes: --solver-out, --in-place or --dry-run",
        ),
        (["{bad}", "-o", "x"], "bad.prototxt:1:10: expected a field name, found '}'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(files, capsys, args, message):
    tmp, net, solver = files
    (tmp / "bad.prototxt").write_text("layer { }}")
    before = sorted(os.listdir(tmp))
    args = [a.format(net=net, solver=solver, tmp=tmp, bad=tmp / "bad.prototxt") for a in args]
    assert main(["inject"] + args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(os.listdir(tmp)) == before


def test_cli_bad_numbers_are_usage_errors(files, capsys):
    _, net, _ = files
    for flag, value in (("--every", "0"), ("--max-abs", "-1"), ("--on", "never")):
        with pytest.raises(SystemExit) as info:
            main(["inject", str(net), "--dry-run", flag, value])
        assert info.value.code == 2


def in_place_net(layers):
    head = 'layer { name: "in" type: "Input" top: "blob" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }\n'
    return head + "".join(
        f'layer {{ name: "act{i}" type: "TanH" bottom: "blob" top: "blob" }}\n'
        for i in range(layers)
    )


def test_inject_time_grows_linearly_with_in_place_layers_on_one_blob():
    import time

    def seconds(layers):
        text = in_place_net(layers)
        times = []
        for _ in range(2):
            start = time.perf_counter()
            result = inject_text(text, each=True)
            times.append(time.perf_counter() - start)
        assert len(result.added) == layers + 1
        return min(times)

    small, large = seconds(1500), seconds(6000)
    assert large / small < 8, (
        f"4x the layers took {large / small:.1f}x the time (linear: ~4x, quadratic: ~16x)"
    )


ODD_NAMES = [
    "two\nlines",
    'say "hi"',
    "back\\slash",
    "tab\there",
    "cr\rlf",
    "bell\x07",
    "del\x7f",
    "ünïcode",
    "it's",
]


def odd_name_net(name, stage):
    return (
        f'layer {{ name: "in" type: "Input" top: "{escape(name)}" input_param {{ shape {{ dim: 1 dim: 2 }} }} }}\n'
        f'layer {{ name: "act" type: "ReLU" bottom: "{escape(name)}" top: "{escape(name)}" '
        f'include {{ stage: "{escape(stage)}" }} }}\n'
        f'layer {{ name: "out" type: "TanH" bottom: "{escape(name)}" top: "y" }}\n'
    )


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("each", [False, True])
def test_blob_names_that_need_escapes_read_back_as_written(name, each):
    from caffe_nantools.checking import parse_param_str

    stage = name[::-1]
    result = inject_text(odd_name_net(name, stage), "odd.prototxt", blobs=[name], each=each)
    assert result.added
    checked = Net.parse(result.text)
    for layer in checked.layers:
        if layer.type == "Python":
            assert layer.bottoms == layer.tops == [name]
            assert layer.name.startswith(f"nancheck/{name}")
            config = parse_param_str(layer.node.find("python_param").get("param_str"))
            assert config.blobs == (name,) and config.name == layer.name
            assert config.writer == (layer.name.rpartition("@")[2] if each else "act")
            assert all(rule.stages in ((), (stage,)) for rule in layer.include)
    assert remove_text(result.text)[0] == odd_name_net(name, stage)


@pytest.mark.parametrize(
    "net_path",
    [
        "dir\nwith newline/net.prototxt",
        'say "net".prototxt',
        "C:\\nets\\train.prototxt",
        "tab\t.prototxt",
    ],
)
def test_net_paths_that_need_escapes_read_back_as_given(net_path):
    from caffe_nantools.solver_edits import enable_debug_info

    for solver in ('net: "old.prototxt"\nbase_lr: 0.01\n', "base_lr: 0.01\n"):
        edited = enable_debug_info(solver, "s.prototxt", net_path=net_path)
        assert parse(edited.text).get("net") == net_path
        assert remove_text(edited.text)[0] == solver


def test_parse_errors_of_inserted_layers_could_only_name_the_users_file(monkeypatch):
    import caffe_nantools.inject as inject_module

    monkeypatch.setattr(inject_module, "check_layer", lambda **kw: 'layer {\n  name: "broken\n}')
    with pytest.raises(ParseError) as info:
        inject_text(NET, "users-net.prototxt", blobs=["conv1"])
    assert str(info.value).startswith("users-net.prototxt:") and "template" not in str(info.value)


def lines_of(text):
    return text.split("\n")


STYLES = [
    ("spaces", lambda t: t),
    (
        "tabs, single quotes, CRLF",
        lambda t: t.replace("  ", "\t").replace('"', "'").replace("\n", "\r\n"),
    ),
    ("four spaces", lambda t: t.replace("  ", "    ")),
]


@pytest.mark.parametrize("style, restyle", STYLES)
@pytest.mark.parametrize("each", [False, True])
def test_remove_recognises_every_block_inject_wrote_in_every_style(style, restyle, each):
    text = restyle(NET)
    result = inject_text(text, each=each, options=CheckOptions(on="warn", every=3))
    assert len(result.added) > 3
    assert remove_text(result.text)[0] == text


def edited(text, after_line_containing, new_line):
    lines = lines_of(text)
    at = next(i for i, l in enumerate(lines) if after_line_containing in l)
    return "\n".join(lines[: at + 1] + [new_line] + lines[at + 1 :]), at + 2


@pytest.mark.parametrize(
    "blob, anchor, new_line",
    [
        ("conv1", 'bottom: "conv1"', "  propagate_down: false"),
        ("ip1", 'layer: "CheckFiniteLayer"', "    share_in_parallel: false"),
        ("accuracy", "python_param {", "    # my note on this check"),
        ("data", "takes it out", '  exclude { stage: "deploy" }'),
    ],
)
def test_remove_refuses_a_check_block_with_a_line_the_user_wrote_and_changes_nothing(
    tmp_path, capsys, blob, anchor, new_line
):
    checked = inject_text(NET, blobs=[blob]).text
    start = checked.rindex("layer {  # added", 0, checked.index(f'name: "nancheck/{blob}"'))
    head, tail = checked[:start], checked[start:]
    tail, _ = edited(tail, anchor, new_line)
    text = head + tail
    line = text[: text.index(new_line)].count("\n") + 1
    path = tmp_path / "edited.prototxt"
    path.write_text(text)
    with pytest.raises(EditError) as info:
        remove_text(text, str(path))
    message = str(info.value)
    assert (
        message.startswith(f"{path}:{line}: ")
        and new_line.strip() in message
        and "\n" not in message
    )
    assert main(["remove", str(path), "--in-place"]) == 2
    assert path.read_text() == text and not (tmp_path / "edited.prototxt.orig").exists()
    assert f"{path}:{line}:" in capsys.readouterr().err


def test_remove_refuses_a_comment_the_user_wrote_above_a_check_block():
    checked = inject_text(NET, blobs=["ip1"]).text
    at = checked.index("layer {  # added by")
    text = checked[:at] + "# keep an eye on ip1\n" + checked[at:]
    with pytest.raises(EditError, match=r"^<string>:\d+: .*# keep an eye on ip1"):
        remove_text(text)


@pytest.mark.parametrize(
    "body",
    [
        '  name: "mine"\n  type: "ReLU"\n  bottom: "ip1"\n  top: "ip1"\n',
        '  name: "nancheck/ip1"\n  type: "Python"\n  bottom: "ip1"\n  top: "ip1"\n  python_param { module: "my.checks" layer: "Check" }\n',
    ],
)
def test_a_users_layer_that_carries_the_mark_is_never_deleted(body):
    text = NET + "layer {  # added by caffe-nantools, by hand\n" + body + "}\n"
    line = lines_of(text).index("layer {  # added by caffe-nantools, by hand") + 1
    with pytest.raises(EditError) as info:
        remove_text(text, "mine.prototxt")
    assert str(info.value).startswith(f"mine.prototxt:{line}: the layer ")
    result = inject_text(text, blobs=["ip1"])  # not inject's, so not a check: ip1 gets one
    assert "nancheck/ip1" in result.already_checked or any(c.blob == "ip1" for c in result.added)


@pytest.mark.parametrize(
    "line",
    [
        "base_lr: 0.5  # added by caffe-nantools",
        "debug_info: false  # added by caffe-nantools",
        "display: 10  # added by caffe-nantools, and tuned by me",
    ],
)
def test_remove_refuses_solver_lines_inject_never_writes(line):
    text = 'net: "n.prototxt"\n' + line + "\nmax_iter: 10\n"
    with pytest.raises(EditError, match=r"^s.prototxt:2: the field "):
        remove_text(text, "s.prototxt")


def test_remove_takes_out_the_solver_lines_inject_wrote():
    from caffe_nantools.solver_edits import enable_debug_info

    solver = "base_lr: 0.01\nmax_iter: 10\n"
    edited_solver = enable_debug_info(solver, net_path="x.prototxt", display=7).text
    assert "display: 7  # added by caffe-nantools" in edited_solver
    assert remove_text(edited_solver)[0] == solver


def test_consecutive_check_blocks_have_no_blank_line_between_them():
    text = inject_text(NET, blobs=["conv1", "ip1", "loss"]).text
    assert "\n\n" not in text


@pytest.mark.parametrize(
    "options", [dict(every=10**5000), dict(every=0), dict(max_abs=10**400), dict(on="explode")]
)
def test_check_options_the_layer_would_refuse_are_refused_at_once(options):
    from caffe_nantools import CheckConfigError

    with pytest.raises(CheckConfigError) as info:
        CheckOptions(**options)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "mark",
    [
        "debug_info: true  # changed by caffe-nantools, was: \n",
        'display: 5  # changed by caffe-nantools, was: "unterminated\n',
        "display: 5  # changed by caffe-nantools, was: 1 2\n",
    ],
)
def test_a_changed_mark_whose_old_value_cannot_be_written_back_is_refused(tmp_path, capsys, mark):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "net.prototxt"\n' + mark)
    assert main(["remove", str(path), "-o", str(tmp_path / "out.prototxt")]) == 2
    err = capsys.readouterr().err
    assert "solver.prototxt:2:" in err and "not ours" in err and err.count("\n") == 1
    assert not (tmp_path / "out.prototxt").exists()


@pytest.mark.parametrize("layout", sorted(INLINE_SOLVERS))
@pytest.mark.parametrize("blobs", [["all"], ["conv1", "accuracy"], ["loss"]])
def test_a_solver_with_inline_nets_gets_checks_in_each_and_remove_gives_its_bytes_back(
    layout, blobs
):
    text = INLINE_SOLVERS[layout]
    result = inject_text(text, "solver.prototxt", blobs=blobs)
    doc = parse(result.text)
    nets = inline_nets(doc)
    assert result.inline_nets == [n.name for n in nets] and nets
    expected = select_blobs(Net.parse(NET), blobs)
    for node in nets:
        checked = [l.bottoms[0] for l in Net(node).layers if l.type == "Python"]
        assert checked == [b for b in expected if b != "loss"]
    assert len(result.added) == len(nets) * len([b for b in expected if b != "loss"])
    assert remove_text(result.text, "solver.prototxt")[0] == text
    assert inject_text(result.text, blobs=blobs).added == []


def test_a_spec_needs_to_match_in_one_inline_net_only():
    train_only = NET.replace('type: "Accuracy"', 'type: "ArgMax"')
    text = f"train_net_param {{\n{NET}}}\ntest_net_param {{\n{train_only}}}\n"
    result = inject_text(text, blobs=["type:Accuracy"])
    assert [(c.name, c.blob) for c in result.added] == [("nancheck/accuracy", "accuracy")]
    with pytest.raises(
        InjectError, match=r"blobs='conv9': no such blob in the net \(blobs: data, label, conv1"
    ):
        inject_text(text, blobs=["conv9"])


def test_the_consolidated_lenet_solver_is_upgraded_checked_and_given_back():
    path = CORPUS / "caffe" / "lenet_consolidated_solver.prototxt"
    if not path.exists():
        pytest.skip(MISSING)
    text = read(path)
    with pytest.raises(InjectError) as info:
        inject_text(text, "consolidated.prototxt")
    message = str(info.value)
    assert message.startswith(
        "consolidated.prototxt:47:3: this is an old V1 net"
    ) and message.endswith("or pass upgrade=True")
    result = inject_text(text, "consolidated.prototxt", upgrade=True)
    assert result.inline_nets == ["net_param"] and len(result.upgraded) == 12
    assert {c.blob for c in result.added} == {
        "data",
        "label",
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "ip1",
        "ip2",
        "accuracy",
    }
    assert remove_text(result.text)[0] == upgrade_v1(text)[0]


def test_a_v1_inline_net_gets_the_v1_message_at_its_first_v1_layer():
    text = 'base_lr: 0.1\ntest_net_param {\n  layers { name: "x" type: RELU bottom: "a" top: "a" }\n}\n'
    with pytest.raises(
        InjectError, match=r"^s.prototxt:3:3: this is an old V1 net .* such as RELU\)"
    ):
        inject_text(text, "s.prototxt")


def test_a_solver_that_names_its_net_files_says_to_inject_the_net():
    with pytest.raises(InjectError) as info:
        inject_text('net: "models/train_val.prototxt"\nbase_lr: 0.1\n', "solver.prototxt")
    assert str(info.value) == (
        'solver.prototxt: this is a solver; its nets are files (net: "models/train_val.prototxt"): '
        "inject into the net file and give this solver as solver"
    )


def test_an_inline_net_without_layers_is_named_with_its_line():
    with pytest.raises(NetError, match=r"^s.prototxt:2: net_param: the net has no layers"):
        inject_text('base_lr: 0.1\nnet_param { name: "empty" }\n', "s.prototxt")


@pytest.mark.parametrize("layout", ["one line", "train and two test nets"])
def test_cli_inject_into_an_inline_solver_edits_one_file_and_remove_restores_it(
    tmp_path, capsys, layout
):
    solver = tmp_path / "solver.prototxt"
    solver.write_bytes(INLINE_SOLVERS[layout].encode())
    out = tmp_path / "checked.prototxt"
    assert main(["inject", str(solver), "-o", str(out), "--blobs", "ip1", "--display", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    nets = len(inline_nets(parse(INLINE_SOLVERS[layout])))
    assert lines == [
        f"{out}: added {nets} check layers",
        f"{out}: added debug_info: true; changed display: 10 -> 1",
    ]
    doc = parse(out.read_text())
    assert str(doc.get("debug_info")) == "true" and doc.get("display") == 1
    assert main(["remove", str(out), "--in-place"]) == 0
    assert out.read_bytes() == solver.read_bytes()
    assert (tmp_path / "checked.prototxt.orig").exists()


@pytest.mark.parametrize("flag", [["--solver", "{solver}"], ["--net-path", "n.prototxt"]])
def test_cli_solver_flags_with_an_inline_solver_are_one_line_and_write_nothing(
    tmp_path, capsys, flag
):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(INLINE_SOLVERS["net_param"])
    args = [a.format(solver=solver) for a in flag]
    assert main(["inject", str(solver), "-o", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this solver holds its nets (net_param)" in err
    assert "leave out --solver, --solver-out and --net-path" in err
    assert os.listdir(tmp_path) == ["solver.prototxt"]


def test_inject_and_remove_return_reports_like_the_other_commands(tmp_path):
    import json

    from caffe_nantools.inject import inject, remove

    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "act" type: "ReLU" bottom: "x" top: "y" }\n'
    )
    report = inject(str(net), dry_run=True)
    assert report.return_code == 0 and report.written == []
    assert report.format() == f"{net}: would add 2 check layers\n"
    assert report.diff().startswith(f"--- {net}\n+++ {net}\n")
    as_json = json.loads(report.to_json())
    assert as_json["added"] == [check.name for check in report.net.added] and as_json["dry_run"]

    report = inject(str(net), in_place=True)
    assert report.format() == f"{net}: added 2 check layers\n"
    assert report.messages() == [f"kept the original as {net}.orig"]
    undone = remove([str(net)], in_place=True)
    assert undone.return_code == 0 and undone.format().startswith(f"{net}: ")
    assert json.loads(undone.to_json())["files"][0]["path"] == str(net)
    assert net.read_text() == (tmp_path / "net.prototxt.orig").read_text()


@pytest.mark.parametrize("each", [False, True])
def test_the_param_str_names_the_checked_blob_and_its_writer_even_where_the_label_cannot(each):
    from caffe_nantools.checking import parse_param_str

    # "nancheck/a@b@c@d" could be blob a@b after c@d or blob a after b@c@d: the keys say which.
    text = (
        'layer { name: "c@d" type: "Input" top: "a@b" input_param { shape { dim: 2 } } }\n'
        'layer { name: "e@f" type: "ReLU" bottom: "a@b" top: "a@b" }\n'
        'layer { name: "g" type: "TanH" bottom: "a@b" top: "y" }\n'
    )
    checked = Net.parse(inject_text(text, blobs=["a@b"], each=each).text)
    configs = [
        parse_param_str(l.node.find("python_param").get("param_str"))
        for l in checked.layers
        if l.type == "Python"
    ]
    places = [(c.blobs, c.writer) for c in configs]
    assert places == ([(("a@b",), "c@d"), (("a@b",), "e@f")] if each else [(("a@b",), "e@f")])
