"""Odd values in a net or solver: every command that reads one says where and what (one line,
exit 2: ``file:line:col: field X: expected ..., got ...``), or makes a lint finding; never a
traceback."""

import pytest

from caffe_nantools.cli import main
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.fields import FLOAT, INT32, PHASE, POSITIVE, STRING, UINT32, FieldError

HUGE = "9" * 5000

DATA = """\
layer {{
  name: "{name}"
  type: "Data"
  top: "pixels"
  top: "label"
  data_param {{
    source: "no-such-db"
    {data}
  }}
  transform_param {{
    {transform}
  }}
}}
"""
SCORES = """\
layer {{
  name: "scores"
  type: "InnerProduct"
  bottom: "pixels"
  top: "scores"
  inner_product_param {{
    {ip}
  }}
}}
layer {{
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "scores"
  bottom: "label"
  top: "loss"
  {loss}
}}
"""
INPUT = """\
layer {{
  name: "in"
  type: "Input"
  top: "x"
  input_param {{ shape {{
    dim: 2 dim: 3
    dim: {height}
    dim: 11 }} }}
}}
"""
POOL = """\
layer {{
  name: "pool"
  type: "Pooling"
  bottom: "x"
  top: "pooled"
  pooling_param {{
    pool: MAX
    {pool}
  }}
}}
"""
RELU = """\
layer {{
  name: "act"
  type: "ReLU"
  bottom: "x"
  top: "x"
  include {{
    {rule}
  }}
}}
"""


def data_net(
    data="batch_size: 2", transform="scale: 0.5", ip="num_output: 3", loss="", name="reader"
):
    return DATA.format(name=name, data=data, transform=transform) + SCORES.format(ip=ip, loss=loss)


def pool_net(pool, height="11"):
    return INPUT.format(height=height) + POOL.format(pool=pool)


def rule_net(rule):
    return INPUT.format(height=9) + RELU.format(rule=rule)


# (net text, the odd value's text, the field named, commands that read that field)
ODD = [
    (data_net(data="backend: FOO"), "FOO", "backend", ["scan"]),
    (data_net(data="batch_size: 0x0", name="zero batch"), "0x0", "batch_size", ["scan"]),
    (data_net(data='backend: "LMDB"'), '"LMDB"', "backend", ["scan"]),
    (data_net(transform='scale: "big"'), '"big"', "scale", ["scan", "lint"]),
    (
        data_net(transform="mean_value: 104\n    mean_value: green"),
        "green",
        "mean_value",
        ["scan", "lint"],
    ),
    (data_net(transform="crop_size: 2.5"), "2.5", "crop_size", ["scan", "lint"]),
    (data_net(transform="crop_size: -4"), "-4", "crop_size", ["scan", "lint"]),
    (data_net(transform=f"crop_size: {HUGE}"), HUGE, "crop_size", ["scan", "lint"]),
    (data_net(ip='num_output: "ten"'), '"ten"', "num_output", ["scan"]),
    (data_net(ip=f"num_output: {HUGE}"), HUGE, "num_output", ["scan"]),
    (
        data_net(loss='loss_weight: "heavy"'),
        '"heavy"',
        "loss_weight",
        ["scan", "inject", "lint", "diagnose"],
    ),
    (
        data_net(loss=f"loss_weight: {HUGE}e"),
        f"{HUGE}e",
        None,
        ["scan", "inject", "lint", "diagnose"],
    ),
    (data_net(loss='loss_param { ignore_label: "none" }'), '"none"', "ignore_label", ["scan"]),
    (pool_net("kernel_size: three\n    stride: 2"), "three", "kernel_size", ["lint", "diagnose"]),
    (pool_net("kernel_size: 3\n    stride: 0"), "0", "stride", ["lint", "diagnose"]),
    (pool_net("kernel_size: 0"), "0", "kernel_size", ["lint"]),
    (pool_net("kernel_h: 3\n    kernel_w: 2\n    stride_h: 0"), "0", "stride_h", ["lint"]),
    (pool_net("kernel_size: 3", height='"nine"'), '"nine"', "dim", ["lint", "diagnose"]),
    (pool_net("kernel_size: 3", height="9.5"), "9.5", "dim", ["lint"]),
    (pool_net("kernel_size: 3", height=HUGE), HUGE, "dim", ["lint"]),
    (pool_net("kernel_size: 3\n    global_pooling: maybe"), "maybe", "global_pooling", ["lint"]),
    (
        INPUT.format(height=9)
        + 'layer {\n  name: "bn"\n  type: "BatchNorm"\n  bottom: "x"\n  top: "x"\n'
        '  batch_norm_param { eps: "tiny" }\n}\n',
        '"tiny"',
        "eps",
        ["lint", "diagnose"],
    ),
    (rule_net('min_level: "high"'), '"high"', "min_level", ["lint", "inject", "scan", "diagnose"]),
    (rule_net(f"max_level: {HUGE}"), HUGE, "max_level", ["lint", "inject", "scan", "diagnose"]),
    (rule_net("phase: VALIDATE"), "VALIDATE", "phase", ["lint", "inject", "scan", "diagnose"]),
    (rule_net('stage: "a"\n    stage: 3'), "3", "stage", ["lint", "inject", "scan", "diagnose"]),
    (rule_net("stage { }"), "stage", "stage", ["lint", "inject"]),
    (
        INPUT.format(height=9)
        + 'layer {\n  name: "py"\n  type: "Python"\n  bottom: "x"\n  top: "y"\n'
        '  python_param { module: 7 layer: "L" }\n}\n',
        "7",
        "module",
        ["lint"],
    ),
]


def where(text, odd):
    """1-based line and column of the odd value (the last line holding it)."""
    lines = text.split("\n")
    line = max(i for i, l in enumerate(lines) if odd in l)
    return line + 1, lines[line].index(odd) + 1


def run(command, path, tmp_path):
    log = tmp_path / "train.log"
    log.write_text("I0101 00:00:00.000000  1 solver.cpp:218] Iteration 0, loss = nan\n")
    argv = {
        "lint": ["lint", path],
        "inject": ["inject", path, "--dry-run"],
        "scan": ["scan", path],
        "diagnose": ["diagnose", str(log), "--net", path],
    }[command]
    return main(argv)


@pytest.mark.parametrize("text, odd, field, commands", ODD)
def test_odd_values_are_one_positioned_line_in_every_command_that_reads_them(
    tmp_path, capsys, text, odd, field, commands
):
    path = str(tmp_path / "odd-net.prototxt")
    with open(path, "w") as f:
        f.write(text)
    line, col = where(text, odd)
    for command in commands:
        assert run(command, path, tmp_path) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1, (command, err)
        assert f"{path}:{line}:{col}: " in err, (command, err)
        if field is not None:
            assert f"field {field}: expected " in err, (command, err)


@pytest.mark.parametrize("text, odd, field, commands", ODD)
def test_commands_that_do_not_read_the_odd_value_still_never_crash(
    tmp_path, capsys, text, odd, field, commands
):
    path = str(tmp_path / "net.prototxt")
    with open(path, "w") as f:
        f.write(text)
    for command in ("lint", "inject", "scan", "diagnose"):
        assert run(command, path, tmp_path) in (0, 1, 2)
        err = capsys.readouterr().err
        assert "Traceback" not in err


SOLVERS = [
    (f"display: {HUGE}\ndebug_info: true\n", HUGE, "display"),
    ('base_lr: 0.01\nlr_policy: "poly"\npower: 1\nmax_iter: ' + HUGE + "\n", HUGE, "max_iter"),
    ('base_lr: "fast"\n', '"fast"', "base_lr"),
    ('lr_policy: "multistep"\ngamma: 0.1\nstepvalue: 10\nstepvalue: ten\n', "ten", "stepvalue"),
    ("debug_info: sure\ndisplay: 1\n", "sure", "debug_info"),
    ("solver_type: QUANTUM\nbase_lr: 0.1\n", "QUANTUM", "solver_type"),
]


@pytest.mark.parametrize("text, odd, field", SOLVERS)
def test_odd_solver_values_in_lint(tmp_path, capsys, text, odd, field):
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    line, col = where(text, odd)
    assert main(["lint", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:{line}:{col}: field {field}: expected " in err


def test_inject_says_where_a_solvers_huge_display_is(tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text(rule_net("phase: TRAIN"))
    (tmp_path / "solver.prototxt").write_text(f'net: "net.prototxt"\ndisplay: {HUGE}\n')
    assert (
        main(
            [
                "inject",
                str(tmp_path / "net.prototxt"),
                "--solver",
                str(tmp_path / "solver.prototxt"),
                "--dry-run",
            ]
        )
        == 2
    )
    assert "solver.prototxt:2:10: field display: expected an integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kind, raw, value",
    [
        (INT32, "-17", -17),
        (INT32, "0x1F", 31),
        (INT32, "017", 15),
        (UINT32, "4294967295", 4294967295),
        (POSITIVE, "3", 3),
        (FLOAT, "-inf", float("-inf")),
        (FLOAT, "7", 7.0),
        (FLOAT, "2.5e-3f", 0.0025),
        (PHASE, "TEST", "TEST"),
        (PHASE, "1", "TEST"),
        (STRING, '"a" "b"', "ab"),
    ],
)
def test_typed_fields_read_what_caffe_reads(kind, raw, value):
    assert parse(f"field: {raw}").field("field", kind) == value


@pytest.mark.parametrize(
    "kind, raw",
    [
        (INT32, "2147483648"),
        (INT32, "1.0"),
        (INT32, '"3"'),
        (UINT32, "-1"),
        (POSITIVE, "0"),
        (FLOAT, '"1"'),
        (FLOAT, "fast"),
        (PHASE, "train"),
        (PHASE, "2"),
        (STRING, "word"),
        (INT32, HUGE),
    ],
)
def test_typed_fields_refuse_what_caffe_refuses_at_the_value(kind, raw):
    with pytest.raises(FieldError) as info:
        parse(f"# a comment\n  width: {raw}\n", "w.prototxt").field("width", kind)
    assert str(info.value).startswith("w.prototxt:2:10: field width: expected ")
    assert len(str(info.value)) < 200


def test_a_leading_zero_with_digits_8_or_9_is_a_positioned_error():
    from caffe_nantools.prototxt import ParseError

    with pytest.raises(ParseError, match=r"^n.prototxt:1:8: invalid number '0129'"):
        parse("value: 0129\n", "n.prototxt").get("value")


@pytest.mark.parametrize(
    "text", ["", "\n# only a comment\n", 'name: "empty"\n', 'name: "x" force_backward: true\n']
)
@pytest.mark.parametrize("command", ["lint", "inject", "scan", "diagnose"])
def test_a_net_without_layers_is_said_to_have_none(tmp_path, capsys, text, command):
    path = tmp_path / "hollow.prototxt"
    path.write_text(text)
    assert run(command, str(path), tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: the net has no layers" in err
