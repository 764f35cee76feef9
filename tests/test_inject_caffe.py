"""inject against real Caffe: checked nets still build in every phase, and train."""

import os
import subprocess
import sys

import numpy as np
import pytest

import caffe_nantools
from caffe_nantools.inject import inject, inject_text, remove, remove_text
from caffe_nantools.prototxt import dump, parse
from caffe_nantools.prototxt.net import Net, NetState
from caffe_nantools.prototxt.upgrade import upgrade_v1
from caffe_nantools.solver_edits import enable_debug_info
from caffe_train import caffe_train
from corpus import CORPUS, MISSING, V2_NETS, corpus_params, read
from nets import INLINE_SOLVERS, PHASED_NET

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(caffe_nantools.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_ROOT, HERE]), GLOG_minloglevel="3")


def build(phase, *paths):
    """{path: python layer count} for the nets Caffe could build (it aborts on the first it cannot)."""
    run = subprocess.run(
        [sys.executable, os.path.join(HERE, "build_net.py"), phase, *map(str, paths)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in run.stdout.splitlines()}


def blobs_in(net: Net, phase: str):
    return {t for layer in net.active_layers(NetState(phase)) for t in layer.tops} | set(net.inputs)


DATA_TYPES = {"Data", "ImageData", "HDF5Data", "WindowData", "AnnotatedData"}


def with_dummy_data(text: str, channels: int = 3, size: int = 227) -> str:
    """The net with its file-reading data layers swapped for DummyData of the same tops and
    rules (batch 2, images channels x crop x crop, or x size without a crop), so Caffe can
    build it without the data files."""
    net = Net.parse(text)
    for layer in net.layers:
        if layer.type not in DATA_TYPES:
            continue
        crop = layer.node.find("transform_param") and layer.node.find("transform_param").get(
            "crop_size"
        )
        side = crop or size
        shapes = [f"shape {{ dim: 2 dim: {channels} dim: {side} dim: {side} }}"] + [
            "shape { dim: 2 }"
        ] * (len(layer.tops) - 1)
        rules = " ".join(dump(r.node).strip() for r in layer.include + layer.exclude)
        tops = " ".join(f'top: "{t}"' for t in layer.tops)
        replacement = parse(
            f'\nlayer {{ name: "{layer.name}" type: "DummyData" {tops} {rules} '
            f"dummy_data_param {{ {' '.join(shapes)} }} }}"
        ).children[0]
        net.doc.insert_after(layer.node, replacement)
        net.doc.remove(layer.node)
    return dump(net.doc)


PHASES = ("TRAIN", "TEST")


@pytest.fixture(scope="module")
def corpus_builds(caffe, tmp_path_factory):
    """{net: (its text with DummyData, {phase: python layer count})} for every V2 corpus net, with
    the phases in which Caffe builds it as it is (not all: fork-only layers, missing modules).
    Built here once, so that the tests below do not depend on each other's order."""
    folder = tmp_path_factory.mktemp("corpus")
    builds = {}
    for path in V2_NETS:
        text = with_dummy_data(read(path))
        original = folder / f"{path.parent.name}-{path.name}"
        original.write_text(text)
        counts = {phase: build(phase, original).get(str(original)) for phase in PHASES}
        builds[path] = text, {phase: n for phase, n in counts.items() if n is not None}
    return builds


@pytest.mark.parametrize("path", corpus_params(V2_NETS))
def test_corpus_nets_that_caffe_builds_still_build_with_a_check_per_blob(
    corpus_builds, tmp_path, path
):
    text, before = corpus_builds[path]
    result = inject_text(text, str(path))
    checked = tmp_path / "checked.prototxt"
    checked.write_text(result.text)
    skipped = {entry.split(" ")[0] for entry in result.skipped}
    for phase, count in before.items():
        expected = count + len(blobs_in(Net.parse(text), phase) - skipped)
        assert build(phase, checked) == {str(checked): expected}, phase


def test_most_corpus_nets_build_in_caffe_in_both_phases(corpus_builds):
    """The test above checks only the phases Caffe builds: it must not pass by building nothing."""
    if not V2_NETS:
        pytest.skip(MISSING)
    both = [path.name for path, (_, before) in corpus_builds.items() if set(before) == set(PHASES)]
    assert len(both) >= 15, both


@pytest.mark.parametrize("each", [False, True])
def test_phase_rules_let_the_checked_net_build_in_both_phases(caffe, tmp_path, each):
    path = tmp_path / "checked.prototxt"
    path.write_text(inject_text(PHASED_NET, each=each).text)
    for phase, expected in (
        (("TRAIN", 4), ("TEST", 5)) if not each else (("TRAIN", 6), ("TEST", 6))
    ):  # no check on the loss
        net = caffe.Net(str(path), getattr(caffe, phase))
        assert sum(1 for layer in net.layers if layer.type == "Python") == expected, phase
        net.forward()


@pytest.mark.parametrize("each", [False, True])
def test_a_checked_net_still_learns(caffe, tmp_path, each):
    """Every layer needs backward as in the plain net (a check on the loss top would stop it)."""
    for name, text in (("plain", PHASED_NET), ("checked", inject_text(PHASED_NET, each=each).text)):
        (tmp_path / f"{name}.prototxt").write_text(text)
        net = caffe.Net(str(tmp_path / f"{name}.prototxt"), caffe.TRAIN)
        before = {layer: [b.data.copy() for b in blobs] for layer, blobs in net.params.items()}
        net.forward()
        net.backward()
        grads = {
            layer: float(sum(abs(b.diff).sum() for b in blobs))
            for layer, blobs in net.params.items()
        }
        assert before and all(g > 0 for g in grads.values()), (name, grads)


def test_caffe_train_runs_with_checks_and_debug_info(caffe, tmp_path):
    net = tmp_path / "train_val.prototxt"
    net.write_text(PHASED_NET)
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        '# a short run\nnet: "train_val.prototxt"\ntest_iter: 1\ntest_interval: 2\nbase_lr: 0.01\n'
        'lr_policy: "fixed"\ndisplay: 10\nmax_iter: 4\nsnapshot_prefix: "snap"\nsolver_mode: CPU\n'
    )
    checked = tmp_path / "checked.prototxt"
    checked.write_text(inject_text(PHASED_NET).text)
    edited = enable_debug_info(solver.read_text(), net_path="checked.prototxt", display=1)
    (tmp_path / "solver_checked.prototxt").write_text(edited.text)
    log = caffe_train(tmp_path, solver="solver_checked.prototxt").log
    assert "Optimization Done." in log, log[-3000:]
    assert "NonFiniteError" not in log
    assert "[Forward] Layer nancheck/conv1, top blob conv1 data:" in log
    assert "Iteration 4, loss = " in log
    assert remove_text(edited.text)[0] == solver.read_text()


def test_caffe_train_runs_the_corpus_lenet_with_checks_and_its_solver_edited(caffe, tmp_path):
    net_path = CORPUS / "caffe" / "lenet_train_test.prototxt"
    if not net_path.exists():
        pytest.skip(MISSING)
    net = with_dummy_data(read(net_path), channels=1, size=28)
    (tmp_path / "checked.prototxt").write_text(inject_text(net).text)
    solver = read(CORPUS / "caffe" / "lenet_solver.prototxt")
    for old, new in (
        ("max_iter: 10000", "max_iter: 3"),
        ("test_interval: 500", "test_interval: 2"),
        ("test_iter: 100", "test_iter: 1"),
        ("solver_mode: GPU", "solver_mode: CPU"),
        ('snapshot_prefix: "examples/mnist/lenet"', 'snapshot_prefix: "snap"'),
    ):
        assert old in solver
        solver = solver.replace(old, new)
    edited = enable_debug_info(solver, net_path="checked.prototxt", display=1)
    (tmp_path / "solver.prototxt").write_text(edited.text)
    log = caffe_train(tmp_path).log
    assert "Optimization Done." in log, log[-3000:]
    assert "[Forward] Layer nancheck/ip2, top blob ip2 data:" in log
    assert "Test net output #0: accuracy" in log


def test_checks_injected_by_inject_catch_a_planted_nan(caffe, tmp_path):
    path = tmp_path / "checked.prototxt"
    path.write_text(inject_text(PHASED_NET, blobs=["conv1"]).text)
    net = caffe.Net(str(path), caffe.TRAIN)
    net.params["conv1"][0].data[2, 0, 1, 1] = np.nan
    from caffe_nantools import NonFiniteError

    with pytest.raises(NonFiniteError) as info:
        net.forward()
    assert (info.value.layer, info.value.blob) == ("nancheck/conv1", "conv1")
    assert info.value.n_bad_samples == 8


def test_caffes_parser_reads_odd_blob_names_and_net_paths_back_as_written(caffe):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from caffe_nantools.templates import escape
    from test_inject import ODD_NAMES, odd_name_net

    for name in ODD_NAMES:
        result = inject_text(
            odd_name_net(name, "stage " + name), "odd.prototxt", blobs=[name], each=True
        )
        net = text_format.Parse(result.text, caffe_pb2.NetParameter())
        checks = [layer for layer in net.layer if layer.type == "Python"]
        assert checks and all(list(l.bottom) == list(l.top) == [name] for l in checks)
        assert [s for l in checks for r in l.include for s in r.stage] == ["stage " + name]
        solver = enable_debug_info(
            'base_lr: 0.1\nnet: "x"\n', "s.prototxt", net_path=f"dir {name}/net.prototxt"
        )
        assert (
            text_format.Parse(solver.text, caffe_pb2.SolverParameter()).net
            == f"dir {name}/net.prototxt"
        )
    assert escape("a\nb") == "a\\nb"


@pytest.mark.parametrize("layout", sorted(INLINE_SOLVERS))
def test_an_inline_solver_trains_with_its_checks_and_remove_gives_its_bytes_back(
    caffe, tmp_path, layout
):
    solver = tmp_path / "solver.prototxt"
    solver.write_bytes(INLINE_SOLVERS[layout].encode())
    checked = tmp_path / "checked.prototxt"
    report = inject(str(solver), str(checked), display=1)
    assert report.written == [str(checked)] and report.net.inline_nets
    log = caffe_train(tmp_path, solver="checked.prototxt").log
    assert "NonFiniteError" not in log and "Iteration 4, loss = " in log
    # Caffe loaded the check layers (debug_info prints each layer's output) in every net.
    assert "[Forward] Layer nancheck/conv1, top blob conv1 data:" in log
    tests = len(report.net.inline_nets) - ("train_net_param" in report.net.inline_nets)
    for i in range(tests):
        assert "Test net output #0: accuracy" in log.split(f"Testing net (#{i})")[1]
    remove([str(checked)], in_place=True)
    assert checked.read_bytes() == solver.read_bytes()


def test_caffes_consolidated_lenet_solver_trains_once_upgraded_and_checked(caffe, here):
    """Caffe 1.0 itself builds no layers from its V1 inline nets; upgraded, they train."""
    from datums import datum
    from needs import need
    from stores import write_store

    need("lmdb")
    path = CORPUS / "caffe" / "lenet_consolidated_solver.prototxt"
    if not path.exists():
        pytest.skip(MISSING)
    rng = np.random.default_rng(5)
    (here / "examples" / "mnist").mkdir(parents=True)
    for name in ("mnist_train_lmdb", "mnist_test_lmdb"):
        digits = rng.integers(0, 256, (120, 1, 28, 28), dtype=np.uint8)
        records = [(b"%08d" % i, datum(d, label=i % 10)) for i, d in enumerate(digits)]
        write_store(here / "examples" / "mnist" / name, "lmdb", records)
    text = read(path)
    for old, new in (
        ("max_iter: 10000", "max_iter: 3"),
        ("test_interval: 500", "test_interval: 2"),
        ("test_iter: 100", "test_iter: 1"),
        ("test_iter: 600", "test_iter: 1"),
        ("solver_mode: GPU", "solver_mode: CPU"),
    ):
        assert old in text
        text = text.replace(old, new)
    (here / "solver.prototxt").write_text(text)
    inject("solver.prototxt", "checked.prototxt", display=1, upgrade=True)
    log = caffe_train(here, solver="checked.prototxt").log
    assert "[Forward] Layer nancheck/ip2, top blob ip2 data:" in log
    assert log.count("Test net output #0: accuracy") >= 2  # the test-on-train and test-on-test nets
    remove(["checked.prototxt"], "restored.prototxt")
    assert (here / "restored.prototxt").read_text() == upgrade_v1(text)[0]
