"""lint: each rule fires where it should and stays quiet where it should not."""

import json
import sys

import pytest

from caffe_nantools.cli import main
from caffe_nantools.lint import lint
from corpus import CORPUS, FILES, MISSING, corpus_params, read


def rules_of(tmp_path, text, kind="net"):
    path = tmp_path / f"{kind}.prototxt"
    path.write_text(text)
    found = lint(str(path)) if kind == "net" else lint(None, str(path))
    return [(f.rule, f.severity, f.line) for f in found]


SOLVERS = [
    ('lr_policy: "poly"\npower: 1\n', [("lr-policy", "error", 1)]),
    ('lr_policy: "poly"\nmax_iter: 100\n', [("lr-policy", "warning", 1)]),
    ('lr_policy: "poly"\nmax_iter: 100\npower: 0.5\n', []),
    ('lr_policy: "step"\ngamma: 0.1\n', [("lr-policy", "error", 1)]),
    ('lr_policy: "step"\ngamma: 0.1\nstepsize: 10\n', []),
    (
        'lr_policy: "multistep"\ngamma: 0.1\nstepvalue: 20\nstepvalue: 10\n',
        [("lr-policy", "warning", 3)],
    ),
    ('lr_policy: "multistep"\ngamma: 0.1\nstepvalue: 10\nstepvalue: 20\n', []),
    ('lr_policy: "exp"\ngamma: 1.5\n', [("lr-policy", "error", 2)]),
    ('lr_policy: "exp"\ngamma: 0.99\n', []),
    # Policies whose rate grows: a step's gamma above 1, inv's power below 0.
    ('lr_policy: "step"\nstepsize: 50\ngamma: 2\n', [("lr-policy", "error", 3)]),
    ('lr_policy: "step"\nstepsize: 50\ngamma: 1\n', []),
    (
        'lr_policy: "multistep"\ngamma: 10\nstepvalue: 10\nstepvalue: 20\n',
        [("lr-policy", "error", 2)],
    ),
    ('lr_policy: "inv"\ngamma: 0.001\npower: -0.5\n', [("lr-policy", "error", 3)]),
    ('lr_policy: "inv"\ngamma: 0.001\npower: 0.75\n', []),
    ('lr_policy: "inv"\npower: 0.75\n', [("lr-policy", "warning", 1)]),
    ('lr_policy: "cosine"\n', [("lr-policy", "error", 1)]),
    ('base_lr: 5\nlr_policy: "fixed"\n', [("base-lr", "warning", 1), ("no-clip", "info", 1)]),
    ('base_lr: 5\nclip_gradients: 10\nlr_policy: "fixed"\n', [("base-lr", "warning", 1)]),
    ('type: "Adam"\nbase_lr: 0.001\nlr_policy: "fixed"\n', []),
    ('debug_info: true\nlr_policy: "fixed"\n', [("display-hides-debug", "warning", 1)]),
    ('debug_info: true\ndisplay: 1\nlr_policy: "fixed"\n', []),
    # Caffe has no default policy: without one it stops at the first update.
    ("base_lr: 0.01\nmomentum: 0.9\n", [("lr-policy", "error", 1)]),
    ('type: "Adam"\nbase_lr: 0.001\n', [("lr-policy", "error", 1)]),
]


@pytest.mark.parametrize("text, expected", SOLVERS)
def test_solver_rules(tmp_path, text, expected):
    assert rules_of(tmp_path, text, "solver") == expected


def layer(text):
    return f"layer {{ {text} }}\n"


INPUT_9 = layer(
    'name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 9 dim: 9 } }'
)
INPUT_7 = INPUT_9.replace("dim: 9 dim: 9", "dim: 7 dim: 7")
HDF5 = layer('name: "h" type: "HDF5Data" top: "x" hdf5_data_param { source: "l.txt" }')

NETS = [
    (
        layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 5 }'
        ),
        [("pool-stride", "warning", 1)],
    ),
    (
        layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 2 }'
        ),
        [],
    ),
    (
        layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { kernel_size: 2 pad: 2 }'
        ),
        [("pool-pad", "error", 1)],
    ),
    (
        INPUT_9
        + layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 5 }'
        ),
        [("pool-empty-window", "error", 2)],
    ),
    (
        INPUT_7
        + layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 5 }'
        ),
        [],
    ),
    (
        INPUT_9
        + layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 2 }'
        ),
        [],
    ),
    (
        layer('name: "b" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { eps: 0 }'),
        [("batchnorm-eps", "error", 1)],
    ),
    (
        layer(
            'name: "b" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { use_global_stats: true } include { phase: TRAIN }'
        ),
        [("batchnorm-global-train", "warning", 1)],
    ),
    (
        layer(
            'name: "b" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { use_global_stats: true } include { phase: TEST }'
        ),
        [],
    ),
    (
        layer('name: "s" type: "Softmax" bottom: "x" top: "p"')
        + layer('name: "l" type: "MultinomialLogisticLoss" bottom: "p" bottom: "y"'),
        [("softmax-logloss", "warning", 2)],
    ),
    (
        layer('name: "l" type: "InfogainLoss" bottom: "x" bottom: "y"'),
        [("infogain-unnormalized", "warning", 1)],
    ),
    (
        layer('name: "s" type: "Softmax" bottom: "x" top: "p"')
        + layer('name: "l" type: "InfogainLoss" bottom: "p" bottom: "y"'),
        [],
    ),
    (
        layer('name: "r" type: "ReLU" bottom: "x" top: "r"')
        + layer('name: "g" type: "Log" bottom: "r" top: "g"'),
        [("log-nonpositive", "warning", 2)],
    ),
    (
        layer('name: "e" type: "Sigmoid" bottom: "x" top: "e"')
        + layer('name: "g" type: "Log" bottom: "e" top: "g"'),
        [],
    ),
    (
        layer('name: "q" type: "Power" bottom: "x" top: "q" power_param { power: 0.5 }'),
        [("log-nonpositive", "warning", 1)],
    ),
    (layer('name: "q" type: "Power" bottom: "x" top: "q" power_param { power: 2 }'), []),
    (
        HDF5
        + layer(
            'name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 }'
        ),
        [("no-weight-filler", "warning", 2)],
    ),
    (
        HDF5
        + layer(
            'name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 weight_filler { type: "xavier" } }'
        ),
        [],
    ),
    (
        INPUT_9
        + layer(
            'name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 }'
        ),
        [],
    ),
    (
        layer('name: "d" type: "Data" top: "x" data_param { source: "db" }'),
        [("raw-input", "info", 1)],
    ),
    (
        layer(
            'name: "d" type: "Data" top: "x" data_param { source: "db" } transform_param { scale: 0.0039 }'
        ),
        [],
    ),
    (
        layer(
            'name: "d" type: "HDF5Data" top: "x" hdf5_data_param { source: "l.txt" shuffle: true }'
        ),
        [("hdf5-shuffle", "info", 1)],
    ),
    (
        layer(
            'name: "p" type: "Python" top: "x" python_param { module: "no_such_module_here" layer: "L" }'
        ),
        [("python-module", "error", 1)],
    ),
    (
        layer(
            'name: "p" type: "Python" top: "x" python_param { module: "caffe_nantools.checking" layer: "L" }'
        ),
        [],
    ),
]


@pytest.mark.parametrize("text, expected", NETS)
def test_net_rules(tmp_path, text, expected):
    assert rules_of(tmp_path, text) == expected


def test_a_layer_rule_is_one_function_and_one_entry_of_its_type(tmp_path, monkeypatch):
    from caffe_nantools import layertypes
    from caffe_nantools.layertypes import LayerProblem, LayerType, Rule

    def wide_relu(seen):
        if seen.source is not None:
            yield LayerProblem(
                seen.layer,
                "warning",
                f"ReLU {seen.layer.name!r}",
                f"after {seen.source.name}",
                "narrow it",
            )

    rule = Rule("wide-relu", "a ReLU after another layer", wide_relu)
    monkeypatch.setitem(layertypes.TYPES, "ReLU", LayerType("ReLU", lint=(rule,)))
    path = tmp_path / "relus.prototxt"
    path.write_text(
        INPUT_9
        + layer('name: "first" type: "ReLU" top: "y"')
        + layer('name: "second" type: "ReLU" bottom: "x" top: "x"')
        + layer('name: "l" type: "Log" bottom: "x" top: "z"')
    )
    found = [(f.rule, f.line, f.message, f.layer) for f in lint(str(path))]
    # The new rule checks the layers of its type only, each where it stands in the file.
    assert found == [
        ("wide-relu", 3, "ReLU 'second': after in", "second"),
        ("log-nonpositive", 4, found[1][2], "l"),
    ]


def test_a_solver_rule_is_one_function_and_one_entry(tmp_path, monkeypatch):
    from caffe_nantools.lint import solver_rules
    from caffe_nantools.layertypes import Rule, SettingProblem
    from caffe_nantools.solver_settings import setting

    def long_run(doc):
        if (solver_rules.value_of(doc, "max_iter", solver_rules.INT32) or 0) > 10**6:
            yield SettingProblem("info", setting(doc, "max_iter"), "a long run", "snapshot often")

    rule = Rule("long-run", "max_iter is at most a million", long_run)
    monkeypatch.setattr(solver_rules, "SOLVER_RULES", (rule,) + solver_rules.SOLVER_RULES)
    path = tmp_path / "solver.prototxt"
    path.write_text('base_lr: 0.01\nmax_iter: 2000000\nlr_policy: "fixed"\n')
    assert [(f.rule, f.severity, f.line, f.col) for f in lint(solver=str(path))] == [
        ("long-run", "info", 2, 1)
    ]
    path.write_text('base_lr: 0.01\nmax_iter: 2000\nlr_policy: "fixed"\n')
    assert lint(solver=str(path)) == []


def test_empty_windows_are_named_with_their_input_rows(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(
        INPUT_9
        + layer(
            'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE kernel_size: 3 stride: 5 }'
        )
    )
    (finding,) = lint(str(path))
    assert finding.message == (
        "Pooling 'p' on a 9x9 input: output rows 2 (input 10..12); output columns 2 (input 10..12) lie past the "
        "input: MAX gives -FLT_MAX there (inf downstream), AVE 0"
    )


def test_sizes_follow_caffes_arithmetic_through_the_corpus_caffenet():
    from caffe_nantools.lint.shapes import blob_sizes
    from caffe_nantools.prototxt.net import Net

    path = CORPUS / "caffe" / "deploy.prototxt"
    if not path.exists():
        pytest.skip(MISSING)
    sizes = blob_sizes(Net.parse(read(path)))
    assert (sizes["conv1"], sizes["pool1"], sizes["pool2"], sizes["pool5"], sizes["fc6"]) == (
        (55, 55),
        (27, 27),
        (13, 13),
        (6, 6),
        (1, 1),
    )


@pytest.mark.parametrize("path", corpus_params(FILES))
def test_every_corpus_file_lints_without_error(path, capsys):
    assert main(["lint", str(path)]) in (0, 1)
    assert capsys.readouterr().err == ""


def test_cli_json_and_exit_codes(tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text(
        layer('name: "b" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { eps: 0 }')
    )
    (tmp_path / "solver.prototxt").write_text('base_lr: 0.01\nlr_policy: "fixed"\n')
    assert (
        main(["lint", str(tmp_path / "net.prototxt"), str(tmp_path / "solver.prototxt"), "--json"])
        == 1
    )
    findings = json.loads(capsys.readouterr().out)
    assert [set(f) for f in findings] == [
        {"rule", "severity", "file", "line", "col", "message", "fix", "layer"}
    ]
    assert findings[0]["layer"] == "b"
    assert main(["lint", str(tmp_path / "solver.prototxt")]) == 0
    assert capsys.readouterr().out.strip() == "0 errors, 0 warnings, 0 notes"
    (tmp_path / "bad.prototxt").write_text("layer {")
    assert main(["lint", str(tmp_path / "bad.prototxt")]) == 2


@pytest.mark.parametrize("height, width", [(10**12, 9), (9, 10**15 + 3), (2**62, 2**62)])
def test_pooling_on_huge_inputs_is_checked_at_once(tmp_path, height, width):
    import time

    from caffe_nantools.layertypes import empty_windows, pooled_size

    net = layer(
        f'name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: 1 dim: {height} dim: {width} }} }}'
    )
    net += layer(
        'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 5 }'
    )
    start = time.perf_counter()
    found = rules_of(tmp_path, net)
    assert time.perf_counter() - start < 5
    expected = (
        [("pool-empty-window", "error", 2)]
        if empty_windows(height, 3, 5, 0) or empty_windows(width, 3, 5, 0)
        else []
    )
    assert found == expected
    last = pooled_size(height, 3, 5, 0) - 1
    assert all(p == last and p * 5 >= height for p, _, _ in empty_windows(height, 3, 5, 0))


def brute_force_empty_windows(size, kernel, stride, pad):
    """Every output window of Caffe's pooling, looked at one by one."""
    import math

    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    empty = []
    for p in range(out):
        start = p * stride - pad
        if min(start + kernel, size + pad, size) <= max(start, 0):
            empty.append((p, start, start + kernel - 1))
    return empty


def test_closed_form_empty_windows_match_the_window_by_window_count():
    from caffe_nantools.layertypes import empty_windows

    for size in range(1, 30):
        for kernel in range(1, 7):
            for stride in range(1, 9):
                for pad in range(kernel):
                    assert empty_windows(size, kernel, stride, pad) == brute_force_empty_windows(
                        size, kernel, stride, pad
                    )


NOISY = """\
import os, sys
print("{name} ran at import")
open(os.environ["NOISY_MARK"], "a").write("{name}\\n")
"""


@pytest.fixture
def noisy_modules(tmp_path, monkeypatch):
    """Modules on sys.path that print and leave a mark file when imported."""
    root = tmp_path / "lib"
    (root / "loudpkg" / "inner").mkdir(parents=True)
    for rel, name in [
        ("loudtop.py", "loudtop"),
        ("loudpkg/__init__.py", "loudpkg"),
        ("loudpkg/inner/__init__.py", "inner"),
        ("loudpkg/inner/leaf.py", "leaf"),
        ("loudpkg/sibling.py", "sibling"),
    ]:
        (root / rel).write_text(NOISY.format(name=name))
    mark = tmp_path / "imported.txt"
    monkeypatch.setenv("NOISY_MARK", str(mark))
    monkeypatch.syspath_prepend(str(root))
    yield mark
    for name in [n for n in sys.modules if n.startswith("loud")]:  # a failing run imported them
        del sys.modules[name]


@pytest.mark.parametrize(
    "module, found",
    [
        ("loudtop", True),
        ("loudpkg", True),
        ("loudpkg.sibling", True),
        ("loudpkg.inner.leaf", True),
        ("loudpkg.absent", False),
        ("loudpkg.inner.absent", False),
        ("loudtop.sub", False),
        ("loud_absent", False),
        ("this", True),
        ("loudpkg/sibling.py", False),
        ("", False),
    ],
)
def test_python_modules_are_looked_for_without_running_them(
    tmp_path, capsys, noisy_modules, module, found
):
    path = tmp_path / "net.prototxt"
    path.write_text(
        layer(f'name: "p" type: "Python" top: "x" python_param {{ module: "{module}" layer: "L" }}')
    )
    assert main(["lint", str(path), "--json"]) == (0 if found else 1)
    out = capsys.readouterr().out
    findings = json.loads(out)
    assert [f["rule"] for f in findings] == ([] if found else ["python-module"])
    assert not noisy_modules.exists()
    assert "ran at import" not in out and "Beautiful is better" not in out
