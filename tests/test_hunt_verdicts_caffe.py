"""hunt's verdicts where a quick reading would get them wrong, with real Caffe: a bad record
only a test net reads, a rate that goes inf after the iterations hunt trains, and aborts that
have nothing to do with the data while the scan found a bad record elsewhere (a missing module
or file, a signal, an empty source, a byte-order mark). Names and positions vary."""

import os
import textwrap

import pytest

from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from caffe_nantools.lint.solver_rules import rate_overflows_at
from caffe_nantools.prototxt import parse
from hunt_nets import classifier, dummy_classifier, float_store, lmdb_layer, solver


def phased(layer, source, phase, batch=4):
    return lmdb_layer(layer, source, batch).replace(
        "} }\n", f"}} include {{ phase: {phase} }} }}\n"
    )


@pytest.mark.parametrize(
    "own_test_net, layer_name, bad, batch",
    [(False, "val_in", 6, 4), (True, "held_out", 13, 5), (False, "test_data", 0, 3)],
)
def test_a_bad_record_only_the_test_net_reads_is_named_in_phase_test(
    caffe, here, own_test_net, layer_name, bad, batch
):
    float_store(here / "train_lmdb", n=40)
    float_store(here / "val_lmdb", n=20, bad=(bad,))
    test_layer = phased(layer_name, "val_lmdb", "TEST", batch)
    extra = "test_iter: 3\ntest_interval: 4\n"
    if own_test_net:
        (here / "net.prototxt").write_text(classifier(lmdb_layer("train_in", "train_lmdb")))
        (here / "val.prototxt").write_text(classifier(test_layer))
        extra += 'test_net: "val.prototxt"\n'
    else:
        train_layer = phased("train_in", "train_lmdb", "TRAIN")
        (here / "net.prototxt").write_text(classifier(train_layer + test_layer))
    report = hunt(solver(here, extra=extra), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer, v.phase, v.pass_) == ("bad_input", layer_name, "TEST", "forward")
    assert v.record.to_dict() == {"source": "val_lmdb", "key": f"{bad:08d}"}
    assert "val_lmdb" in report.scan.sources and report.return_code == 1
    assert fix.verified and "val_lmdb without its 1 bad record" in fix.change
    assert (here / "net.prototxt").read_text().count("nancheck") == 0  # the user's net is kept


@pytest.mark.parametrize("base_lr, gamma, iters", [(0.01, 1.5, 10), (0.1, 1.3, 25)])
def test_a_rate_lint_sees_going_inf_past_the_iterations_trained_is_the_lr_policy(
    caffe, here, capsys, base_lr, gamma, iters
):
    (here / "net.prototxt").write_text(dummy_classifier())
    name = solver(here, policy="exp", lr=base_lr, max_iter=iters, extra=f"gamma: {gamma}\n")
    at = rate_overflows_at(parse((here / name).read_text()))
    assert at > iters
    report = hunt(name, workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.iteration) == ("lr_policy", at)
    assert any(f"--iters {at + 1}" in a for a in v.advice)
    assert fix.change == "gamma: 0.9999" and fix.verified  # trained past `at`
    assert main(["hunt", name, "--workdir", "again", "--no-verify"]) == 1
    assert f"iteration {at}" in capsys.readouterr().out


def test_a_rate_going_inf_past_what_hunt_trains_at_most_is_not_called_verified(caffe, here):
    (here / "net.prototxt").write_text(dummy_classifier())
    report = hunt(
        solver(here, policy="exp", lr=0.01, max_iter=5, extra="gamma: 1.01\n"), workdir="hunt"
    )
    v, fix = report.verdict, report.fix
    assert v.cause == "lr_policy" and v.iteration > 1000
    assert not fix.verified and f"iteration {v.iteration}" in fix.unverified


#: A Python layer that passes its bottom on, and at its ``at``-th forward pass does ``act``.
ACTING_LAYER = textwrap.dedent("""\
    import os, signal
    import caffe

    class Passing(caffe.Layer):
        def setup(self, bottom, top):
            self.calls = 0
        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)
        def forward(self, bottom, top):
            self.calls += 1
            top[0].data[...] = bottom[0].data
            if self.calls == {at}:
                {act}
        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = top[0].diff
    """)


def python_layer(module, name="py_pass"):
    return (
        f'layer {{ name: "{name}" type: "Python" bottom: "fc_hidden" top: "passed" '
        f'python_param {{ module: "{module}" layer: "Passing" }} }}'
    )


def with_a_bad_record_elsewhere(here, *, data=None, extra="", bad=37):
    """A classifier whose store holds a NaN record at ``bad`` (batch 4), far from where the
    run ends."""
    float_store(here / "train_lmdb", n=40, bad=(bad,))
    into = "passed" if "Python" in extra else None
    (here / "net.prototxt").write_text(
        classifier(data or lmdb_layer("data", "train_lmdb"), extra=extra, into=into)
    )
    return solver(here)


def assert_blames_no_record(report, first_advice):
    v, fix = report.verdict, report.fix
    assert v.cause == "caffe_abort" and v.record is None and fix is None, v
    assert first_advice in v.advice[0], v.advice
    assert not any("likely reason" in a for a in v.advice)
    assert any("which is not why Caffe stopped" in a or "none in the batch" in a for a in v.advice)
    assert report.return_code == 1


@pytest.mark.parametrize("module", ["no_such_layers", "team.missing_mod"])
def test_a_missing_python_module_is_named_by_the_python_exception(caffe, here, module):
    name = with_a_bad_record_elsewhere(here, extra=python_layer(module))
    report = hunt(name, workdir="hunt")
    assert_blames_no_record(report, f"Python cannot import module {module.split('.')[0]!r}")
    shown = [e for e in report.verdict.evidence if "train.log:" in e]
    assert "ModuleNotFoundError: No module named" in shown[0] and "Boost" not in shown[0]


@pytest.mark.parametrize("mean", ["mean.binaryproto", "stats/mean_image.binaryproto"])
def test_a_file_missing_from_the_current_folder_is_named_not_the_records(caffe, here, mean):
    data = lmdb_layer("data", "train_lmdb").replace(
        "data_param", f'transform_param {{ mean_file: "{mean}" }} data_param'
    )
    report = hunt(with_a_bad_record_elsewhere(here, data=data), workdir="hunt")
    assert_blames_no_record(report, f"{mean} is not there")
    assert str(here) in report.verdict.advice[0]


@pytest.mark.parametrize(
    "at, signal_name, words",
    [
        (4, "SIGKILL", "killed by SIGKILL: out of memory?"),
        (6, "SIGSEGV", "segmentation fault (SIGSEGV)"),
    ],
)
def test_a_process_that_dies_without_a_word_is_a_finding_named_by_its_signal(
    caffe, here, at, signal_name, words
):
    act = f"os.kill(os.getpid(), signal.{signal_name})"
    (here / "dying.py").write_text(ACTING_LAYER.format(at=at, act=act))
    report = hunt(
        with_a_bad_record_elsewhere(here, extra=python_layer("dying", "sudden")), workdir="hunt"
    )
    v, fix = report.verdict, report.fix
    assert v.cause == "caffe_abort" and v.record is None and fix is None
    assert (
        v.evidence[0]
        == f"the training process ended after {at - 1} iterations: {words.split(':')[0]}"
    )
    assert any(words in line for line in v.evidence + v.advice)
    # The last check line of the trace is the one after the layer before the Python layer.
    assert any(
        "nancheck/fc_hidden@fc_hidden_relu (forward)" in e and "in sudden's forward" in e
        for e in v.evidence
    )
    assert report.return_code == 1


def test_a_segfault_in_the_batch_that_holds_a_bad_record_blames_that_record(caffe, here):
    # Caffe has no word for a label two billion past the classes: it reads past the scores.
    float_store(here / "train_lmdb", labels={21: 2_000_000_000})
    (here / "net.prototxt").write_text(classifier(lmdb_layer("digits", "train_lmdb", batch=4)))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "bad_input" and v.record.to_dict() == {
        "source": "train_lmdb",
        "key": "00000021",
    }
    if report.training.aborted:  # placed where Caffe crashed: the loss reading past the scores
        assert v.iteration == 5 and v.layer == "loss"
    assert fix.verified


def test_an_empty_source_is_called_empty(caffe, here):
    float_store(here / "empty_lmdb", n=0)
    (here / "net.prototxt").write_text(classifier(lmdb_layer("data", "empty_lmdb")))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "caffe_abort" and fix is None
    assert v.advice[0].startswith("empty_lmdb holds no records")


@pytest.mark.parametrize("which", ["net.prototxt", "solver.prototxt"])
def test_a_byte_order_mark_names_the_users_file_and_says_to_remove_it(caffe, here, which):
    name = with_a_bad_record_elsewhere(here)
    (here / which).write_bytes(b"\xef\xbb\xbf" + (here / which).read_bytes())
    report = hunt(name, workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "caffe_abort" and v.record is None and fix is None
    assert v.advice[0].startswith(f"{which} starts with a UTF-8 byte-order mark")
    assert "remove the BOM" in v.advice[0]


def test_a_missing_test_net_is_one_line_naming_the_solver_line(caffe, here, capsys):
    name = with_a_bad_record_elsewhere(here)
    with open(name, "a") as f:
        f.write('test_net: "nets/val.prototxt"\ntest_iter: 2\ntest_interval: 5\n')
    assert main(["hunt", name, "--workdir", "hunt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "solver.prototxt:9: test_net 'nets/val.prototxt'" in err
    assert not os.path.exists("hunt")


def test_an_abort_on_the_solver_stays_the_solvers_though_the_batch_held_a_bad_record(caffe, here):
    float_store(here / "train_lmdb", n=40, bad=(2,))
    (here / "net.prototxt").write_text(classifier(lmdb_layer("data", "train_lmdb")))
    (here / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 4\n')
    report = hunt("solver.prototxt", workdir="hunt")
    v, fix = report.verdict, report.fix
    # pycaffe asks for the rate before the first forward pass, so Caffe stops at iteration 0,
    # whose batch holds record 2: the fatal line names the solver, not the record.
    assert (v.cause, v.iteration, v.record) == ("lr_policy", 0, None)
    assert fix.change == 'lr_policy: "fixed"'
