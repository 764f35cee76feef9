"""hunt without Caffe: what it reads from the solver, its checked copies, the verdict's places,
and one-line errors for bad input."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from caffe_nantools.cause import Cause
from caffe_nantools.children import fatal_line
from caffe_nantools.cli import main
from caffe_nantools.diagnose import Abort, Blame, CheckedGrounds, RecordRef, Verdict, judge
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.hunt import HuntReport
from caffe_nantools.diagnose.reading import Valued
from caffe_nantools.hunt.ending import crash_place, read_ending
from caffe_nantools.hunt.fixes import policy_fix
from caffe_nantools.errors import NanToolsError
from caffe_nantools.lint.solver_rules import rate_overflows_at
from caffe_nantools.hunt.inputs import HuntError, make_copies, read_inputs
from caffe_nantools.hunt.space import check_room
from caffe_nantools.hunt.stores import private_sources, remove_copies
from caffe_nantools.hunt import workdir as workdir_module
from caffe_nantools.hunt.workdir import CLAIM, claim_workdir
from caffe_nantools.hunt.training import Training
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.net import Net
from caffe_nantools.scan.report import Finding, ScanReport
from needs import need
from nets import PHASED_NET


@pytest.fixture
def net_folder(here):
    """The test's folder as the current one, with PHASED_NET in it as net.prototxt."""
    (here / "net.prototxt").write_text(PHASED_NET)
    return here


@pytest.mark.parametrize("field", ["net", "train_net"])
def test_the_train_net_is_read_as_caffe_reads_it(net_folder, field):
    (net_folder / "solver.prototxt").write_text(
        f'{field}: "net.prototxt"\nbase_lr: 0.1\nmax_iter: 5000\n'
    )
    inputs = read_inputs("solver.prototxt", "work")
    assert (inputs.net, inputs.net_field, inputs.net_text) == ("net.prototxt", field, PHASED_NET)
    assert inputs.default_iters() == 1000 and inputs.number("base_lr") == 0.1


def test_an_inline_net_param_is_written_out(net_folder):
    (net_folder / "solver.prototxt").write_text(
        'base_lr: 0.1\nnet_param {\n  name: "inline"\n  layer { name: "a" type: "Input" top: "a" }\n}\n'
    )
    inputs = read_inputs("solver.prototxt", "work")
    assert inputs.net == os.path.join("work", "inline_net.prototxt") and inputs.net_field == "net"
    assert Net.parse(inputs.net_text).name == "inline" and inputs.default_iters() == 100


def test_the_copies_check_every_blob_and_keep_snapshots_in_the_workdir(net_folder):
    (net_folder / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\ndisplay: 100\nsnapshot_prefix: "models/x"\n'
    )
    copies = make_copies(
        read_inputs("solver.prototxt", "work"), "work/checked", solver_fields={"base_lr": "0.01"}
    )
    doc = parse(Path(copies.solver).read_text())
    assert (
        doc.get("net") == os.path.abspath(copies.net)
        and doc.get("display") == 1
        and str(doc.get("debug_info")) == "true"
    )
    assert (
        doc.get("snapshot_prefix").startswith(os.path.abspath("work/checked"))
        and doc.get("base_lr") == 0.01
    )
    assert doc.get("random_seed") is not None
    assert "nancheck/conv1@relu1" in Path(copies.net).read_text()
    assert (net_folder / "net.prototxt").read_text() == PHASED_NET  # the user's files untouched


@pytest.mark.parametrize(
    "label, layer", [("nancheck/conv1@relu1", "relu1"), ("nancheck/a@b@c", "c"), ("mine", None)]
)
def test_a_forward_failure_is_the_layer_the_check_follows(label, layer):
    error = non_finite(label, "conv1", "forward", [2], iteration=3)
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, 3))
    assert verdict.cause == Cause.LAYER_NUMERICS and verdict.layer == layer


@pytest.mark.parametrize(
    "label, writer, pass_, layer",
    [
        ("checked-here", "relu1", "forward", "relu1"),  # a label that names no place
        ("nancheck/conv1@drop1", "relu1", "forward", "relu1"),  # the field, not the label
        ("nancheck/x@y@z", "conv1", "backward", "relu1"),
        ("w", "drop1", "backward", "ip1"),
    ],
)
def test_the_verdict_places_a_check_by_its_blob_and_writer_not_its_label(
    label, writer, pass_, layer
):
    error = non_finite(label, "conv1", pass_, [1], iteration=2, writer=writer)
    error = through_the_child(error)
    assert error.writer == writer
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, 2))
    assert (verdict.layer, verdict.pass_) == (layer, pass_)


def test_a_record_of_an_older_version_has_no_writer_and_is_placed_by_its_label():
    record = non_finite("nancheck/conv1@relu1", "conv1", "forward", [3]).to_dict()
    del record["writer"]
    error = NonFiniteError.from_dict(json.loads(json.dumps(record, default=str)))
    assert error.writer is None
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, 2))
    assert verdict.layer == "relu1"


@pytest.mark.parametrize(
    "label, layer",
    [
        ("nancheck/conv1@conv1", "relu1"),  # the next in-place modifier
        ("nancheck/conv1@relu1", "drop1"),
        ("nancheck/conv1@drop1", "ip1"),  # else the reader
        ("nancheck/conv1", "ip1"),
    ],
)
def test_a_backward_value_belongs_to_the_layer_whose_backward_wrote_it(label, layer):
    error = non_finite(label, "conv1", "backward", [0], iteration=1)
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, 1))
    assert (verdict.layer, verdict.pass_) == (layer, "backward")


@pytest.mark.parametrize(
    "solver, fix",
    [
        ('lr_policy: "poly"\npower: 1\n', {"max_iter": "40"}),
        ('lr_policy: "step"\ngamma: 0.1\n', {"stepsize": "13"}),
        ('lr_policy: "inv"\npower: 0.75\n', {"gamma": "0.0001"}),
        ('lr_policy: "exp"\ngamma: 1.5\n', {"gamma": "0.9999"}),
        ('lr_policy: "cosine"\n', {"lr_policy": '"fixed"'}),
        ('lr_policy: "fixed"\n', {}),
        ("max_iter: 10\n", {"lr_policy": '"fixed"'}),  # Caffe has no default policy
    ],
)
def test_the_lr_policy_fix_supplies_what_is_missing(net_folder, solver, fix):
    (net_folder / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\n' + solver)
    assert policy_fix(read_inputs("solver.prototxt", "work"), 40) == fix


@pytest.mark.parametrize(
    "text, words",
    [
        ("base_lr: 0.1\n", ["names no train net"]),
        ('net: "missing.prototxt"\n', ["missing.prototxt", "no such file"]),
        ("layer {", ["solver.prototxt:1"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_makes_no_workdir(net_folder, capsys, text, words):
    (net_folder / "solver.prototxt").write_text(text)
    assert main(["hunt", "solver.prototxt", "--workdir", "work"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err
    assert not os.path.exists("work")


def test_a_workdir_that_is_not_empty_is_refused(net_folder, capsys):
    (net_folder / "solver.prototxt").write_text('net: "net.prototxt"\n')
    (net_folder / "work").mkdir()
    (net_folder / "work" / "mine.txt").write_text("keep")
    assert main(["hunt", "solver.prototxt", "--workdir", "work"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert os.listdir(net_folder / "work") == ["mine.txt"]


@pytest.mark.parametrize(
    "made, args, where",
    [
        ("ro", ["--workdir", "ro/work"], "is read-only"),
        ("ro", ["--workdir", "ro"], "ro: is read-only"),
        (".", [], "is read-only, hunt cannot make its workdir there"),
    ],
    ids=["in a read-only folder", "a read-only empty workdir", "the default in a read-only folder"],
)
def test_a_workdir_that_cannot_be_written_is_one_line_and_nothing_is_made(
    here, capsys, made, args, where
):
    (here / "solver.prototxt").write_text('net: "net.prototxt"\n')
    folder = here / made
    folder.mkdir(exist_ok=True)
    before = sorted(p.name for p in here.rglob("*"))
    os.chmod(folder, 0o555)  # root writes anyway: hunt goes by the mode, as the other outputs
    try:
        assert main(["hunt", "solver.prototxt", *args]) == 2
    finally:
        os.chmod(folder, 0o755)
    assert sorted(p.name for p in here.rglob("*")) == before
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and where in err and "Traceback" not in err


def test_a_workdir_is_claimed_once_and_default_ones_differ_within_a_second(here, monkeypatch):
    second_ = "nantools-hunt-20240229-235959"
    monkeypatch.setattr(workdir_module.time, "strftime", lambda pattern: second_)
    first, second = claim_workdir(None), claim_workdir(None)
    assert first != second and first.startswith(second_ + "-") and second.startswith(second_ + "-")
    assert os.listdir(first) == os.listdir(second) == [CLAIM]
    assert claim_workdir("mine") == "mine"
    with pytest.raises(HuntError, match="mine': exists and is not empty"):
        claim_workdir("mine")
    # Two hunts that both looked at an empty folder before either claimed it: one goes on.
    monkeypatch.setattr(workdir_module, "check_workdir", lambda workdir: None)
    os.mkdir("both")
    assert claim_workdir("both") == "both"
    with pytest.raises(HuntError, match="both': another hunt is using it"):
        claim_workdir("both")


def test_more_iterations_than_the_disk_holds_are_refused_with_the_estimate(tmp_path):
    with pytest.raises(NanToolsError, match=r"10000000000 iterations would write about .* GB"):
        check_room(str(tmp_path), 20, 10**10)
    check_room(str(tmp_path), 20, 10)


LEVELDB_NET = """\
layer { name: "a" type: "Data" top: "x" include { phase: TRAIN } data_param { source: "db" batch_size: 2 } }
layer { name: "b" type: "Data" top: "x" include { phase: TEST } data_param { source: "db" backend: LEVELDB batch_size: 2 } }
layer { name: "c" type: "Data" top: "y" data_param { source: "lmdb" backend: LMDB batch_size: 2 } }
layer { name: "d" type: "Data" top: "z" data_param { source: "other_db" batch_size: 2 } }
"""


def test_every_leveldb_a_net_reads_is_a_private_copy_one_a_store(here):
    for name in ("db", "other_db", "lmdb"):
        os.mkdir(name)
        (here / name / "CURRENT").write_text("MANIFEST-000001\n")
    doc = parse(LEVELDB_NET)
    made = {}
    assert private_sources(doc, str(here), made)
    sources = [layer.find("data_param").get("source") for layer in doc.find_all("layer")]
    assert sources[2] == "lmdb" and sources[0] == sources[1] == made["db"] != made["other_db"]
    assert sources[3] == made["other_db"] and sorted(made) == ["db", "other_db"]
    assert os.listdir(made["db"]) == ["CURRENT"]
    remove_copies(made)
    assert made == {} and not [n for n in os.listdir(here) if "leveldb" in n]


def non_finite(
    layer, blob, pass_, samples, *, iteration=2, by="check", lr=None, max_abs=None, writer=None
):
    x = np.ones((8, 3), np.float32)
    x[list(samples), 1] = np.nan
    return NonFiniteError(
        layer=layer,
        blob=blob,
        writer=writer,
        pass_=pass_,
        phase="TRAIN",
        iteration=iteration,
        stats=finite_stats(x, max_abs),
        max_abs=max_abs,
        lr=lr,
        by=by,
    )


def through_the_child(error):
    """The error as hunt's training child writes it (``result.json``) and hunt reads it back."""
    return NonFiniteError.from_dict(json.loads(json.dumps(error.to_dict(), indent=2, default=str)))


def judged(net, training, told=None, scan=None, run=None, **gathered):
    """The verdict on a checked training, with what hunt would have gathered for it."""
    return judge(CheckedGrounds(net, training, told=told, run=run, scan=scan, **gathered))


def failed_training(error, iteration):
    return Training(iteration + 1, 0.5, "train.log", through_the_child(error), iteration)


@pytest.mark.parametrize(
    "error",
    [
        non_finite("nancheck/data@data", "data", "forward", [0, 6]),
        non_finite("conv1", "param 0", "update", [3], by="guard", lr=float("nan"), iteration=9),
        non_finite("ip1", "top ip1", "forward", range(8), by="guard", lr=0.01, max_abs=1e6),
    ],
)
def test_the_childs_error_comes_back_as_the_error_it_raised(error):
    back = through_the_child(error)
    assert isinstance(back, NonFiniteError) and str(back) == str(error)
    assert (back.layer, back.blob, back.pass_, back.phase, back.iteration, back.by) == (
        error.layer,
        error.blob,
        error.pass_,
        error.phase,
        error.iteration,
        error.by,
    )
    assert back.stats == error.stats and back.bad_samples == error.bad_samples
    assert json.dumps(back.to_dict()) == json.dumps(error.to_dict())


@pytest.mark.parametrize("samples, iteration", [([1], 0), ([0, 5, 7], 3), ([2, 3], 11)])
def test_a_bad_batch_at_the_data_layer_is_bad_input_naming_its_samples(samples, iteration):
    error = non_finite("nancheck/data@data", "data", "forward", samples, iteration=iteration)
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, iteration))
    assert verdict.cause == Cause.BAD_INPUT and verdict.layer == "data"
    assert (verdict.blob, verdict.pass_, verdict.phase, verdict.iteration) == (
        "data",
        "forward",
        "TRAIN",
        iteration,
    )
    assert verdict.evidence == [str(error)]
    assert (
        f"iteration {iteration} held non-finite values in samples {samples}:" in verdict.advice[0]
    )


@pytest.mark.parametrize("layer, iteration", [("conv1", 4), ("ip1", 0)])
def test_a_guard_error_at_a_non_finite_rate_is_the_lr_policy(layer, iteration):
    error = non_finite(
        layer, "param 0", "update", [1], by="guard", lr=float("inf"), iteration=iteration
    )
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, iteration))
    assert verdict.cause == Cause.LR_POLICY and verdict.layer == layer
    assert verdict.advice[0].startswith(f"the learning rate is inf at iteration {iteration}:")


def test_where_the_trace_says_it_began_is_the_verdicts_origin_with_the_same_json():
    began = Blame("conv1", "forward", 2, "values grew 7 orders of magnitude")
    told = Verdict(Cause.LAYER_NUMERICS, origin=began, summary=["a story"])
    error = non_finite("nancheck/ip1@ip1", "ip1", "forward", [4], iteration=2)
    verdict = judged(Net.parse(PHASED_NET), failed_training(error, 2), told)
    assert verdict.layer == "ip1" and verdict.origin is began
    out = HuntReport(verdict, "work").to_dict()["verdict"]
    assert list(out) == [
        "cause",
        "layer",
        "blob",
        "pass",
        "iteration",
        "phase",
        "origin",
        "record",
        "records",
        "evidence",
        "advice",
        "fix",
        "breach",
    ]
    assert list(out["origin"].items()) == [
        ("layer", "conv1"),
        ("pass", "forward"),
        ("iteration", 2),
        ("why", "values grew 7 orders of magnitude"),
    ]
    shown = HuntReport(verdict, "work").format()
    assert (
        "  began: layer conv1, forward of iteration 2: values grew 7 orders of magnitude\n" in shown
    )


def scan_found(*bad):
    """A scan report with findings ``(source, index, key, detail)``."""
    report = ScanReport()
    report.findings = [Finding(s, i, k, "data", "decode", d) for s, i, k, d in bad]
    return report


def aborted(text):
    """A training Caffe stopped, and its log's run and verdict, for ``judged``."""
    training = Training(0, 0.1, "train.log", aborted=True, exit_code=-6)
    run = SimpleNamespace(abort=Abort(40, text), first_bad_test=None)
    return training, Verdict(Cause.CAFFE_ABORT, advice=["look there"]), run


@pytest.mark.parametrize("key", ["pic_5.png", "sub dir/cat 7.jpg", "00000012"])
def test_an_abort_that_names_a_record_the_scan_found_bad_is_that_record(key):
    scan = scan_found(
        ("list.txt", 1, "other.png", "no such file"), ("list.txt", 4, key, "does not decode")
    )
    training, told, run = aborted(f"Check failed: cv_img.data Could not load {key}")
    v = judged(Net.parse(PHASED_NET), training, told, scan, run)
    assert v.cause == Cause.BAD_INPUT and v.record == RecordRef("list.txt", key)
    assert v.advice[0] == f"Caffe stopped on record {key} of list.txt: does not decode"
    assert "train.log:40: Check failed: cv_img.data Could not load " + key in v.evidence


@pytest.mark.parametrize("text", ["Segmentation fault", "Could not load xpic_5.png"])
def test_an_abort_that_names_no_bad_record_blames_none_by_itself(text):
    # Only a record the failing batch read, which hunt gathers from the stores, is blamed.
    scan = scan_found(("train_lmdb", 3, "pic_5.png", "label 9 >= 3, the number of classes"))
    training, told, run = aborted(text)
    v = judged(Net.parse(PHASED_NET), training, told, scan, run)
    assert v.cause == Cause.CAFFE_ABORT and v.record is None
    assert "scan: train_lmdb record pic_5.png: label 9 >= 3, the number of classes" in v.evidence
    assert not any("likely reason" in a for a in v.advice)


def ending_of(tmp_path, log_text, exit_code, fatal=None, files=()):
    log = tmp_path / "train.log"
    log.write_text(log_text)
    return read_ending(str(log), exit_code, 7, fatal=fatal, user_files=files)


@pytest.mark.parametrize(
    "fatal, words",
    [
        (
            "F0101 io.cpp:57] Check failed: fd != -1 (-1 vs. -1) File not found: means/m.binaryproto",
            "means/m.binaryproto is not there (Caffe opens relative paths from the folder",
        ),
        (
            "F0101 db_lmdb.hpp:15] Check failed: mdb_status == 0 (13 vs. 0) Permission denied",
            "permission denied: Caffe cannot open a file it needs, or lock a store",
        ),
        (
            "F0101 db_lmdb.hpp:15] Check failed: mdb_status == 0 (2 vs. 0) No such file or directory",
            "a file or folder Caffe opens is not there",
        ),
    ],
)
def test_a_fatal_line_that_names_its_reason_is_the_cause(tmp_path, fatal, words):
    ending = ending_of(tmp_path, f"I0101 net.cpp:86] Creating Layer data\n{fatal}\n", -6, fatal)
    assert ending.cause.startswith(words) and ending.how == "aborted (SIGABRT)"
    assert ending.last_layer == ("setup", "data")


@pytest.mark.parametrize("date", ["0512", "20240512"])  # glog 0.5 and later: the year first
def test_a_childs_fatal_line_is_found_with_or_without_the_year(date):
    log = f"I{date} 10:11:12.000001  4242 net.cpp:86] Creating Layer data\n"
    log += f"F{date} 10:11:12.123456  4242 net.cpp:90] Check failed: x == y\n"
    assert fatal_line(log) == "net.cpp:90] Check failed: x == y"


def test_the_python_exception_is_taken_over_boost_pythons_line(tmp_path):
    log = (
        "I0101 layer_factory.hpp:77] Creating layer py\n"
        "ModuleNotFoundError: No module named 'my_layers'\n"
        "Traceback (most recent call last):\n"
        '  File "child.py", line 84, in train\n'
        "SystemError: <Boost.Python.function object at 0x1> returned NULL without setting an error\n"
    )
    ending = ending_of(tmp_path, log, 1, fatal="SystemError: <Boost.Python.function object>")
    assert ending.python_error == (2, "ModuleNotFoundError: No module named 'my_layers'")
    assert ending.cause.startswith("Python cannot import module 'my_layers'")
    assert ending.how == "exit code 1"


@pytest.mark.parametrize(
    "code, how, cause",
    [(-9, "killed by SIGKILL", "out of memory?"), (-11, "segmentation fault (SIGSEGV)", None)],
)
def test_a_signal_is_named_and_the_last_check_line_places_it(tmp_path, code, how, cause):
    log = (
        "I0101 net.cpp:593]     [Forward] Layer conv1, top blob conv1 data: 0.5\n"
        "I0101 net.cpp:593]     [Forward] Layer nancheck/conv1@relu1, top blob conv1 data: 0.2\n"
    )
    ending = ending_of(tmp_path, log, code)
    assert ending.how == how and (cause is None) == (ending.cause is None)
    assert cause is None or cause in ending.cause
    place = crash_place(ending, Net.parse(PHASED_NET))
    assert place.startswith("the last check line in the log is nancheck/conv1@relu1 (forward)")
    assert "after layer relu1, in " in place


def test_a_bom_in_the_users_file_is_named_with_the_fix(tmp_path):
    (tmp_path / "mine.prototxt").write_bytes(b"\xef\xbb\xbfname: 'x'\n")
    (tmp_path / "plain.prototxt").write_text("name: 'y'\n")
    fatal = "F0101 upgrade_proto.cpp:90] Failed to parse NetParameter file: /w/checked/net.prototxt"
    files = [str(tmp_path / "plain.prototxt"), str(tmp_path / "mine.prototxt")]
    ending = ending_of(tmp_path, fatal + "\n", -6, fatal, files)
    assert ending.cause.startswith(f"{files[1]} starts with a UTF-8 byte-order mark")
    assert "remove the BOM" in ending.cause
    assert ending_of(tmp_path, fatal + "\n", -6, fatal, files[:1]).cause is None


def test_a_test_output_that_went_non_finite_in_the_log_is_a_finding():
    net = Net.parse(PHASED_NET)
    bad_test = Valued(
        812, "I0101 solver.cpp:418]     Test net output #0: loss = nan", 40, float("nan"), "loss"
    )
    run = SimpleNamespace(first_bad_test=bad_test, abort=None)
    v = judged(net, Training(60, 0.1, "train.log"), run=run)
    assert (v.cause, v.phase, v.iteration, v.blob) == (Cause.LAYER_NUMERICS, "TEST", 40, "loss")
    assert v.evidence == ["train.log:812: I0101 solver.cpp:418]     Test net output #0: loss = nan"]


@pytest.mark.parametrize("trained, at, cause", [(20, 231, Cause.LR_POLICY), (300, 231, Cause.NONE)])
def test_a_rate_lint_computes_going_inf_past_the_iterations_trained_is_a_finding(
    trained, at, cause
):
    v = judged(Net.parse(PHASED_NET), Training(trained, 0.1, "train.log"), rate_fails_at=at)
    assert v.cause == cause
    if cause == Cause.LR_POLICY:
        assert v.iteration == at and f"confirm with `--iters {at + 1}`" in v.advice[0]


@pytest.mark.parametrize(
    "base_lr, gamma, at", [(0.01, 1.5, 231), (1, 2, 128), (0.1, 1.01, 9148), (0.1, 0.99, None)]
)
def test_lint_computes_the_iteration_an_exp_rate_is_inf(base_lr, gamma, at):
    doc = parse(f'lr_policy: "exp"\nbase_lr: {base_lr}\ngamma: {gamma}\n')
    assert rate_overflows_at(doc) == at
    if at is not None:
        rate = np.float64(np.float32(base_lr)) * np.float64(np.float32(gamma)) ** (at - 1)
        assert np.isfinite(np.float32(rate))


def test_a_process_that_reported_and_then_died_is_not_a_healthy_run():
    training = Training(5, 0.1, "train.log", aborted=True, exit_code=-9)
    assert not training.finite


def test_a_finite_training_over_bad_records_names_them_all_first_one_first():
    scan = scan_found(
        ("a_lmdb", 2, "00000002", "label 3 >= 3, the number of classes"),
        ("a_lmdb", 2, "00000002", "NaN too"),
        ("b_lmdb", 0, "k0", "label -1 is negative"),
        ("a_lmdb", 9, "00000009", "label -1 is negative"),
    )
    v = judged(Net.parse(PHASED_NET), Training(20, 0.1, "train.log"), scan=scan)
    assert v.cause == Cause.BAD_INPUT and v.record == RecordRef("a_lmdb", "00000002")
    assert "3 bad records wait in the data: the fix below drops those of a_lmdb" in v.advice[0]
    assert v.records == [RecordRef("a_lmdb", "00000002", 2), RecordRef("a_lmdb", "00000009", 9)]
    assert "  record: 00000002 of a_lmdb (and 1 more: 00000009)\n" in HuntReport(v, "w").format()


@pytest.mark.parametrize("field, depth", [("net", 1), ("train_net", 2)])
def test_a_net_found_only_from_an_enclosing_folder_says_where_to_run_hunt(
    tmp_path, monkeypatch, field, depth
):
    models = tmp_path / "project" / "models"
    models.mkdir(parents=True)
    (models / "net.prototxt").write_text(PHASED_NET)
    (models / "solver.prototxt").write_text(f'base_lr: 0.1\n{field}: "models/net.prototxt"\n')
    monkeypatch.chdir(models if depth == 1 else tmp_path)
    solver = "solver.prototxt" if depth == 1 else "project/models/solver.prototxt"
    with pytest.raises(HuntError) as e:
        read_inputs(solver, "work")
    assert str(e.value).startswith(f"{solver}:2: {field} 'models/net.prototxt': no such file")
    assert str(e.value).endswith(
        f"it is there from {tmp_path / 'project'}: run hunt in that folder"
    )


def test_a_net_found_nowhere_is_no_such_file_without_a_folder_to_run_in(net_folder):
    (net_folder / "solver.prototxt").write_text('net: "gone/net.prototxt"\n')
    with pytest.raises(HuntError, match=r"no such file .*the folder it runs in\)$"):
        read_inputs("solver.prototxt", "work")


@pytest.mark.parametrize(
    "settings, gpu, words",
    [
        (
            "solver_mode: GPU\n",
            None,
            ["solver.prototxt:2: solver_mode: GPU; hunt trained on the CPU"],
        ),
        ("solver_mode: GPU\n", 0, []),
        ("solver_mode: CPU\n", None, []),
        ('snapshot_prefix: "snaps/run1/x"\n', None, ["the folder snaps/run1 does not exist"]),
        ('snapshot_prefix: "x"\n', None, []),
        ('snapshot_prefix: "there/x"\n', None, []),
    ],
)
def test_settings_hunt_does_not_follow_are_notes(net_folder, settings, gpu, words):
    (net_folder / "there").mkdir()
    (net_folder / "solver.prototxt").write_text('net: "net.prototxt"\n' + settings)
    notes = read_inputs("solver.prototxt", "work").notes(gpu)
    assert len(notes) == len(words) and all(w in n for w, n in zip(words, notes))


@pytest.mark.parametrize(
    "bad, iteration, blamed", [(6, 1, True), (6, 2, False), (6, 5, True), (13, 3, True)]
)
def test_a_failure_past_the_data_in_a_batch_holding_a_bad_record_blames_that_record(
    net_folder, monkeypatch, bad, iteration, blamed
):
    """hunt with a training that failed in the loss's backward at ``iteration`` (16 records,
    batches of 4: iteration 5 reads records 4-7 again)."""
    import caffe_nantools.hunt
    import caffe_nantools.pycaffe
    from caffe_nantools.hunt import hunt
    from datums import datum
    from stores import write_store

    need("lmdb")
    labels = {i: 7 if i == bad else i % 3 for i in range(16)}
    write_store(
        net_folder / "in_lmdb",
        "lmdb",
        [
            (f"{i:04d}".encode(), datum(np.ones((1, 1, 2), np.float32), label=labels[i]))
            for i in labels
        ],
    )
    (net_folder / "net.prototxt").write_text(
        'layer { name: "digits" type: "Data" top: "data" top: "label" data_param { source: "in_lmdb" backend: LMDB batch_size: 4 } }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 3 } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }\n'
    )
    (net_folder / "solver.prototxt").write_text('net: "net.prototxt"\n')
    error = non_finite("nancheck/fc@fc", "fc", "backward", [1], iteration=iteration)
    monkeypatch.setattr(caffe_nantools.pycaffe, "load_caffe", lambda: None)
    monkeypatch.setattr(
        caffe_nantools.hunt, "train", lambda *args, **kw: failed_training(error, iteration)
    )
    v = hunt("solver.prototxt", workdir="work", verify=False).verdict
    assert (v.layer, v.pass_) == ("loss", "backward")  # where it failed stays
    if blamed:
        assert v.cause == Cause.BAD_INPUT and v.record == RecordRef("in_lmdb", f"{bad:04d}")
        assert v.advice[0].startswith(f"the batch of iteration {iteration} held record {bad:04d}")
    else:
        assert v.cause == Cause.LAYER_NUMERICS and v.record is None


def test_an_abort_on_a_missing_lr_policy_is_the_lr_policy():
    training, told, run = aborted("Unknown learning rate policy: ")
    v = judged(Net.parse(PHASED_NET), training, told, run=run)
    assert v.cause == Cause.LR_POLICY and "no default lr_policy" in v.advice[0]
