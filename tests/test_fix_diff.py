"""The fix as a diff of the user's own files: only the lines the fix changed, never hunt's check
layers nor the settings its copies need (debug_info, display, snapshots, the seed, absolute
paths); it applies with ``patch -p0`` where hunt ran."""

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from caffe_nantools.hunt import fixes
from caffe_nantools.hunt.inputs import read_inputs
from caffe_nantools.textdiff import unified
from hunt_nets import classifier, dummy_classifier, float_lmdb, lmdb_layer, solver
from needs import need
from nets import INLINE_SOLVERS


@pytest.fixture
def trains_finite(monkeypatch):
    """Every training of a fix stays finite (no Caffe here: the diff is what is tested)."""
    monkeypatch.setattr(fixes, "train", lambda *a, **k: SimpleNamespace(finite=True))


def changed(diff):
    """The diff's removed and added lines, without its headers, and without the comment that
    marks a solver line the fix changed (``# changed by caffe-nantools, was: 0.5``)."""
    lines = [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("---", "+++"))
    ]
    return [line.split("  # ")[0] for line in lines]


@pytest.mark.parametrize("lr", [0.5, 3])
def test_a_lower_rate_where_clipping_is_set_changes_one_base_lr_line(here, trains_finite, lr):
    (here / "net.prototxt").write_text(dummy_classifier())
    path = solver(here, lr=lr, extra="clip_gradients: 10.0\nweight_decay: 0.0005\n")
    fix = fixes._lower_rate(read_inputs(path, "hunt"), None, iters=5, gpu=None, folder="hunt")
    assert changed(fix.diff) == [f"-base_lr: {lr}", f"+base_lr: {lr / 10:g}"]
    assert fix.diff.startswith("--- solver.prototxt\tyours\n+++ solver.prototxt\tfixed\n")
    # The copy hunt trained carries its own settings; none of them is in the diff.
    copy = Path(fix.files["solver"]).read_text()
    assert "debug_info: true" in copy and "debug_info" not in fix.diff
    assert "random_seed" in copy and "random_seed" not in fix.diff


def test_clipping_the_fix_adds_is_one_added_line(here, trains_finite):
    (here / "net.prototxt").write_text(dummy_classifier())
    path = solver(here, lr=0.2)
    fix = fixes._lower_rate(read_inputs(path, "hunt"), None, iters=5, gpu=None, folder="hunt")
    assert changed(fix.diff) == ["-base_lr: 0.2", "+base_lr: 0.02", "+clip_gradients: 10"]


@pytest.mark.parametrize(
    "fields, lines",
    [
        ({"stepsize": "6"}, ["+stepsize: 6"]),
        ({"lr_policy": '"fixed"'}, ['-lr_policy: "step"', '+lr_policy: "fixed"']),
    ],
)
def test_a_policy_fix_is_the_field_it_sets(here, fields, lines):
    (here / "net.prototxt").write_text(dummy_classifier())
    inputs = read_inputs(solver(here, policy="step"), "hunt")
    assert changed(fixes.user_diff(inputs, solver_fields=fields)) == lines


@pytest.mark.parametrize("bad", [(3,), (0, 17)])
def test_a_clean_copy_changes_the_one_source_line(here, trains_finite, bad):
    need("lmdb")
    float_lmdb(here / "pixels_lmdb", bad=bad)
    (here / "net.prototxt").write_text(classifier(lmdb_layer("pixels", "pixels_lmdb", 4)))
    inputs = read_inputs(solver(here), "hunt")
    fix = fixes._clean_copy(inputs, "pixels_lmdb", iters=5, gpu=None, folder="hunt")
    removed, added = changed(fix.diff)
    assert removed.startswith('-layer { name: "pixels"') and 'source: "pixels_lmdb"' in removed
    clean = str(here / "hunt" / "clean" / "pixels_lmdb")
    assert added == removed.replace("-", "+", 1).replace('"pixels_lmdb"', f'"{clean}"')
    assert fix.diff.startswith("--- net.prototxt\tyours\n")
    assert "nancheck" in Path(fix.files["net"]).read_text() and "nancheck" not in fix.diff
    if shutil.which("patch"):
        subprocess.run(["patch", "-p0", "-s"], input=fix.diff, text=True, check=True)
        assert f'source: "{clean}"' in (here / "net.prototxt").read_text()


def test_a_file_without_a_last_newline_diffs_as_patch_reads_it():
    diff = unified("s.prototxt", "a: 1\nb: 2", "a: 1\nb: 3")
    assert diff.endswith(
        "-b: 2\n\\ No newline at end of file\n+b: 3\n\\ No newline at end of file\n"
    )
    assert unified("s.prototxt", "a: 1\n", "a: 1\n") == ""


def edited(text, old, new):
    assert text.count(old) >= 1
    return text.replace(old, new, 1)


@pytest.mark.parametrize("layout", sorted(INLINE_SOLVERS))
@pytest.mark.parametrize(
    "old, new", [("num_output: 4", "num_output: 6"), ('name: "relu1"', 'name: "relu_a"')]
)
def test_the_fix_of_an_inline_net_is_its_edit_inside_the_solver_file(here, layout, old, new):
    (here / "solver.prototxt").write_bytes(INLINE_SOLVERS[layout].encode())
    inputs = read_inputs("solver.prototxt", "hunt")
    net_text = edited(inputs.net_text, old, new)
    diff = fixes.user_diff(inputs, net_text=net_text, solver_fields={"base_lr": "0.002"})
    # One file, the user's; nothing of the copy hunt writes the net out to.
    assert re.findall(r"^--- (\S+)", diff, re.M) == ["solver.prototxt"]
    assert "inline_net" not in diff
    lines = [line.rstrip("\r") for line in changed(diff)]
    rates = [line for line in lines if "base_lr" in line]
    assert rates == ["-base_lr: 0.01", "+base_lr: 0.002"]
    removed, added = [line for line in lines if line not in rates]
    assert old in removed and added == "+" + removed[1:].replace(old, new, 1)
    apply(here, diff, inputs, net_text=net_text, solver_fields={"base_lr": "0.002"})
    again = read_inputs("solver.prototxt", "hunt")
    assert again.net_text == net_text and again.number("base_lr") == 0.002
    assert again.test_nets == inputs.test_nets


@pytest.mark.parametrize("which", [0, 1])
def test_the_fix_of_an_inline_test_net_edits_that_one_only(here, which):
    (here / "solver.prototxt").write_text(INLINE_SOLVERS["train and two test nets"])
    inputs = read_inputs("solver.prototxt", "hunt")
    path, text = inputs.test_nets[which]
    fixed = edited(text, "value: 2", "value: 0.5")
    diff = fixes.user_diff(inputs, test_texts={path: fixed})
    assert re.findall(r"^--- (\S+)", diff, re.M) == ["solver.prototxt"]
    removed, added = changed(diff)
    assert "value: 2" in removed and added == "+" + removed[1:].replace("value: 2", "value: 0.5", 1)
    apply(here, diff, inputs, test_texts={path: fixed})
    again = read_inputs("solver.prototxt", "hunt")
    tests = list(inputs.test_nets)
    tests[which] = (path, fixed)
    assert again.test_nets == tests and again.net_text == inputs.net_text


def test_a_clean_copy_of_an_inline_nets_source_is_one_line_of_the_solver(here, trains_finite):
    need("lmdb")
    float_lmdb(here / "digits_lmdb", bad=(2,))
    net = classifier(lmdb_layer("digits", "digits_lmdb", 4), hidden="hid")
    (here / "solver.prototxt").write_text(
        'base_lr: 0.01\nnet_param {\n  name: "inline"\n'
        + "".join(f"  {line}\n" for line in net.splitlines())
        + '}\nlr_policy: "fixed"\nmax_iter: 4\n'
    )
    inputs = read_inputs("solver.prototxt", "hunt")
    fix = fixes._clean_copy(inputs, "digits_lmdb", iters=5, gpu=None, folder="hunt")
    assert fix.diff.startswith("--- solver.prototxt\tyours\n+++ solver.prototxt\tfixed\n")
    removed, added = changed(fix.diff)
    clean = str(here / "hunt" / "clean" / "digits_lmdb")
    assert 'source: "digits_lmdb"' in removed
    assert added == "+" + removed[1:].replace('"digits_lmdb"', f'"{clean}"')


def apply(folder, diff, inputs, **edits):
    """The fix applied to the user's solver: by ``patch -p0`` in ``folder`` as the report tells
    the user, where patch is installed; else the fixed text the diff is made of written."""
    if shutil.which("patch"):
        subprocess.run(["patch", "-p0", "-s"], input=diff, text=True, check=True, cwd=folder)
    else:
        fixed = fixes.fixed_texts(inputs, **edits)[0][2]
        (folder / inputs.solver).write_bytes(fixed.encode())
