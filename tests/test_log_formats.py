"""Logs as users have them: quoted, numbered, prefixed, retyped, out of order, from other Caffe
versions and forks, compressed; and files that are no Caffe log at all."""

import bz2
import gzip
import json
import lzma
import math
import re

import pytest

from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.diagnose import diagnose
from caffe_nantools.logs import chunks, log2csv, read_events
from caffe_nantools.logs.glog import canonical, parse_line
from caffe_nantools.logs.opening import NotALogError


def failing_log(bad_layer="ip1", iterations=3):
    """A debug_info log whose ``bad_layer`` goes NaN on the last displayed iteration."""
    log = CaffeLog().solving()
    for i in range(iterations):
        log.iteration(i)
    return log.iteration(
        iterations, loss="nan", set={("forward", bad_layer): "nan", ("forward", "loss"): "nan"}
    )


PREFIXES = [
    lambda k, line: f"> {line}",
    lambda k, line: f">> {line}",
    lambda k, line: f"    {line}",
    lambda k, line: f"\t{line}",
    lambda k, line: f"`{line}`",
    lambda k, line: f"{k + 1}: {line}",
    lambda k, line: f"{k + 101} {line}",
    lambda k, line: f"[worker-{k % 4}] {line}",
    lambda k, line: f"2017-10-16T08:40:{k % 60:02d}Z {line}",
    lambda k, line: f"stderr: {line}",
    lambda k, line: f"[0] {line}",  # Intel Caffe under MPI: the rank
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("bad_layer", ["conv1", "ip1"])
def test_what_stands_before_the_glog_prefix_is_read_past(tmp_path, prefix, bad_layer):
    log = failing_log(bad_layer)
    log.lines = [prefix(k, line) for k, line in enumerate(log.lines)]
    result = diagnose(log.write(tmp_path / "pasted.log"))
    assert result.cause == "layer_numerics" and result.first_nonfinite.layer == bad_layer
    line = log.line_of(f"Layer {bad_layer}, top blob {bad_layer} data: nan")
    assert result.first_nonfinite.line == line
    # Evidence quotes the log as it is, prefix and all.
    assert any(e.line == line and e.text == log.lines[line - 1] for e in result.evidence)


def test_a_fenced_block_inside_prose_is_read(tmp_path):
    log = failing_log("relu1")
    text = "I train a net and get nan, see:\n\n```\n" + log.text() + "```\nwhat is wrong?\n"
    path = tmp_path / "issue.md"
    path.write_text(text)
    result = diagnose(str(path))
    assert result.first_nonfinite.layer == "relu1"
    assert result.first_nonfinite.line == log.line_of("relu1, top blob conv1 data: nan") + 3


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "1508138445  INFO: src/caffe/solver.cpp : line 218 : Iteration 40, loss = nan",
            "Iteration 40, loss = nan",
        ),
        ("2019-03-01 12:00:01,337 - WARNING - Iteration 7, lr = 0.01", "Iteration 7, lr = 0.01"),
        (
            "Train net output #1: loss2 = nan (* 1 = nan loss)",
            "Train net output #1: loss2 = nan (* 1 = nan loss)",
        ),
        ("`Check failed: a <= b (1 vs. 0)`", "Check failed: a <= b (1 vs. 0)"),
    ],
)
def test_a_known_message_without_glog_prefix_gets_one(line, message):
    glog = parse_line(canonical(line))
    assert glog.message == message


def test_a_logger_s_own_level_and_time_are_kept():
    glog = parse_line(
        canonical("1508138445  ERROR: src/caffe/solver.cpp : line 218 : Iteration 0, loss = 1")
    )
    assert glog.level == "E" and (glog.month, glog.day) == (10, 16)
    assert canonical("just prose, nothing known") is None


def test_lines_retyped_without_any_prefix(tmp_path):
    path = tmp_path / "retyped.log"
    path.write_text(
        "the loss goes nan after a while:\n"
        "Iteration 0, loss = 2.30\n"
        "Iteration 100, loss = 1.9\n"
        "Iteration 200, loss = nan\n"
        "    Train net output #0: loss_cls = 0.7 (* 1 = 0.7 loss)\n"
        "    Train net output #1: loss_box = nan (* 1 = nan loss)\n"
    )
    result = diagnose(str(path))
    assert result.cause != "none" and result.first_nonfinite.iteration == 200
    assert result.first_nonfinite.line == 4
    assert any(e.line == 6 and "loss_box = nan" in e.text for e in result.evidence)


def test_a_retyped_trace_without_prefixes_names_the_layer(tmp_path):
    path = tmp_path / "trace.txt"
    path.write_text(
        "[Forward] Layer data, top blob data data: 0.5\n"
        "[Forward] Layer conv7, top blob conv7 data: 3.1\n"
        "[Forward] Layer norm7, top blob norm7 data: nan\n"
        "[Forward] Layer loss, top blob loss data: nan\n"
        "Iteration 12, loss = nan\n"
    )
    result = diagnose(str(path))
    assert result.first_nonfinite.layer == "norm7" and result.first_nonfinite.line == 3


def test_pieces_pasted_out_of_order_are_each_read_for_what_they_show(tmp_path):
    late, early = CaffeLog().solving(), CaffeLog()
    late.iteration(20, set={("forward", "ip1"): "nan"}, loss="nan")
    for i in range(3):
        early.iteration(i)
    path = tmp_path / "pieces.log"
    path.write_text(late.text() + "...\n" + early.text())
    result = diagnose(str(path))
    assert result.first_nonfinite.iteration == 20 and result.first_nonfinite.layer == "ip1"
    assert result.cause == "layer_numerics"


def test_iterations_going_back_give_no_display_interval():
    from caffe_nantools.diagnose.reading import Run

    assert Run(iterations=[20, 0]).gap is None and Run(iterations=[0, 20]).gap == 20


def test_a_2014_log_rate_before_loss_and_test_scores(tmp_path):
    path = tmp_path / "old.log"
    path.write_text(
        "I0918 02:05:55.594935  5721 solver.cpp:165] Solving CIFAR10_full\n"
        "I0918 02:05:55.594948  5721 solver.cpp:232] Iteration 0, Testing net\n"
        "I0918 02:06:02.779670  5721 solver.cpp:270] Test score #0: 0.1\n"
        "I0918 02:06:02.779747  5721 solver.cpp:270] Test score #1: 2.30258\n"
        "I0918 02:06:38.561959  5721 solver.cpp:365] Iteration 200, lr = 0.001\n"
        "I0918 02:06:38.562106  5721 solver.cpp:195] Iteration 200, loss = 2.1\n"
        "I0918 02:07:29.509574  5721 solver.cpp:365] Iteration 400, lr = 0.001\n"
        "I0918 02:07:29.509680  5721 solver.cpp:195] Iteration 400, loss = nan\n"
        "I0918 02:07:30.000000  5721 solver.cpp:232] Iteration 400, Testing net\n"
        "I0918 02:07:31.000000  5721 solver.cpp:270] Test score #0: 0.1\n"
        "I0918 02:07:31.000001  5721 solver.cpp:270] Test score #1: nan\n"
    )
    result = diagnose(str(path))
    assert result.first_nonfinite.iteration == 400 and result.first_nonfinite.line == 8
    _, test_csv, tables = log2csv(str(path), str(tmp_path / "csv"))
    assert tables.test_columns == ["score0", "score1"] and math.isnan(tables.test[1]["score1"])
    assert [r["LearningRate"] for r in tables.train] == [0.001, 0.001]


def test_nvidia_caffe_lines(tmp_path):
    path = tmp_path / "nv.log"
    stamp = "I0306 10:27:54.235067 13326"
    path.write_text(
        f"{stamp} solver.cpp:353] Iteration 2 (3.8928 s), loss = 5.08295\n"
        f"{stamp} solver.cpp:371]     Train net output #0: mbox_loss = 5.46751 (* 1 = 5.46751 loss)\n"
        f"{stamp} solver.cpp:347] Iteration 900 (2.37 iter/s, 21.1s/50 iter), loss = -nan\n"
        f"{stamp} solver.cpp:371]     Train net output #0: mbox_loss = -nan (* 1 = -nan loss)\n"
        f"{stamp} sgd_solver.cpp:170] Iteration 900, lr = 0.0001, m = 0.9, wd = 0.0004, gs = 1\n"
    )
    result = diagnose(str(path))
    assert result.first_nonfinite.iteration == 900
    assert any("mbox_loss = -nan" in e.text for e in result.evidence)
    rates = [e for e in read_events(path.read_text().splitlines(True)) if e.kind == "lr"]
    assert [(e.iteration, e.value) for e in rates] == [(900, 0.0001)]


def test_glog_0_5_puts_the_year_first_and_is_read_alike(tmp_path):
    # A Caffe built on a recent system links glog 0.5 or later: `I20240306 10:27:54.235067 ...`.
    log = failing_log("conv1", iterations=40)
    text = log.text()
    dated = re.sub(r"(?m)^([IWEF])(\d{4}) ", r"\g<1>2024\2 ", text)
    assert dated != text
    (tmp_path / "old.log").write_text(text)
    (tmp_path / "new.log").write_text(
        dated + "F20240306 10:27:54.235067 7 net.cpp:90] Check failed: x\n"
    )
    old, new = diagnose(str(tmp_path / "old.log")), diagnose(str(tmp_path / "new.log"))
    assert new.first_nonfinite.iteration == old.first_nonfinite.iteration == 40
    assert new.first_nonfinite.layer == old.first_nonfinite.layer == "conv1"
    assert new.abort is not None and "Check failed" in new.abort["text"]
    events = list(read_events(dated.splitlines(True)))
    assert [e.kind for e in events] == [e.kind for e in read_events(text.splitlines(True))]
    assert parse_line("I20240306 10:27:54.235067 13326 solver.cpp:353] x").month == 3


COMPRESSORS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("name", ["train.log.{kind}", "train.log", "log"])
def test_compressed_logs_are_read_by_their_magic_bytes(tmp_path, kind, name):
    log = failing_log("conv1")
    path = tmp_path / name.format(kind=kind)
    path.write_bytes(COMPRESSORS[kind](log.text().encode()))
    plain = tmp_path / "plain.log"
    log.write(plain)
    result, expected = diagnose(str(path)).to_dict(), diagnose(str(plain)).to_dict()
    assert {**result, "log": None} == {**expected, "log": None}
    _, _, tables = log2csv(str(path), str(tmp_path / "csv"))
    assert len(tables.train) == 4


def test_a_compressed_log_read_in_small_chunks_keeps_its_line_numbers(tmp_path, monkeypatch):
    log = failing_log("relu1", iterations=6)
    path = tmp_path / "train.log.gz"
    path.write_bytes(gzip.compress(log.text().encode()))
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 61)
    assert diagnose(str(path)).first_nonfinite.line == log.line_of(
        "relu1, top blob conv1 data: nan"
    )


@pytest.mark.parametrize("kind", ["gz", "bz2"])  # as zcat and bzcat read them; xzcat refuses junk
@pytest.mark.parametrize("junk", [b"\n", b"junk after the stream\n" * 3, bytes(range(256))])
def test_junk_after_a_compressed_log_is_ignored_as_zcat_ignores_it(tmp_path, kind, junk):
    log = failing_log("relu1", iterations=5)
    path, plain = tmp_path / "train.log.z", tmp_path / "plain.log"
    path.write_bytes(COMPRESSORS[kind](log.text().encode()) + junk)
    plain.write_text(log.text())
    assert diagnose(str(path)).first_nonfinite.line == log.line_of(
        "relu1, top blob conv1 data: nan"
    )
    _, _, tables = log2csv(str(path), str(tmp_path / "csv"))
    _, _, expected = log2csv(str(plain), str(tmp_path / "plain-csv"))
    assert tables.train == expected.train and len(tables.train) == 6


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_crlf_log_in_gzip_members_split_anywhere_keeps_its_line_numbers(tmp_path, cut):
    # The first read of a log decides how its lines end: it is a whole chunk, not one member's.
    log = failing_log("relu1", iterations=4)
    data = log.text().replace("\n", "\r\n").encode()
    split = data.index(b"\r") + cut - 1  # just before, on or after the first line's \r
    path = tmp_path / "train.log.gz"
    path.write_bytes(gzip.compress(data[:split]) + gzip.compress(data[split:]) + b"tail")
    assert diagnose(str(path)).first_nonfinite.line == log.line_of(
        "relu1, top blob conv1 data: nan"
    )


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_cut_or_corrupt_compressed_log_is_one_line(tmp_path, capsys, kind):
    data = COMPRESSORS[kind](failing_log().text().encode() * 20)
    path = tmp_path / "cut.log"
    path.write_bytes(data[: len(data) // 2])
    for command in (["diagnose", str(path)], ["log2csv", str(path), str(tmp_path / "csv")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert (
            len(err.strip().splitlines()) == 1
            and "cut.log" in err
            and "corrupt or cut short" in err
        )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"Dear diary,\ntoday the loss went down.\n",
        bytes(range(256)) * 8,
        b"I0720 10:00:00.100000 1 caffe.cpp:1] Using GPUs 0\n" * 3,
        gzip.compress(b""),
    ],
)
def test_a_file_with_nothing_of_a_caffe_log_is_exit_2(tmp_path, capsys, content):
    path = tmp_path / "what.txt"
    path.write_bytes(content)
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1
        and "what.txt" in err
        and "expected a Caffe training log" in err
    )
    assert main(["log2csv", str(path), str(tmp_path / "csv")]) == 2
    with pytest.raises(NotALogError):
        diagnose(str(path))


@pytest.mark.parametrize(
    "only",
    [
        "[Forward] Layer conv1, top blob conv1 data: 0.5\n",
        "F0720 10:00:00.100000 1 net.cpp:1] Unknown bottom blob 'data2' (layer 'conv1', bottom index 0)\n",
        "    Train net output #0: accuracy = 0.5\n",
        "E0720 10:00:00.100000 1 check_finite.py:0] caffe-nantools NonFiniteError: check 'c': blob 'x' forward data "
        "at iteration 0 (TRAIN): 1 NaN\n",
    ],
)
def test_one_recognised_line_makes_a_log(tmp_path, only):
    path = tmp_path / "one.log"
    path.write_text("some words\n" + only)
    diagnose(str(path))  # no NotALogError


def test_json_has_the_abort_key_null_when_none(tmp_path, capsys):
    assert main(["diagnose", failing_log().write(tmp_path / "t.log"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["abort"] is None


def test_plain_chunks_take_the_fast_path(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        chunks, "_canonical", lambda *a: calls.append(a) or (_ for _ in ()).throw(AssertionError)
    )
    log = failing_log()
    log.raw('layer {\n  name: "conv1"\n  type: "Convolution"\n}')  # Caffe prints the net like this
    diagnose(log.write(tmp_path / "plain.log"))
    assert calls == []


@pytest.mark.parametrize(
    "spelling", ["-nan(ind)", "1.#QNAN", "-1.#IND", "1.#INF", "-1.#INF", "nan(ind)"]
)
def test_windows_spellings_of_nan_and_inf_are_non_finite(tmp_path, spelling):
    from caffe_logs import CaffeLog
    from caffe_nantools.diagnose import diagnose

    log = CaffeLog().solving()
    for i in range(3):
        log.iteration(i)
    log.iteration(3, loss=spelling, set={("forward", "ip1"): spelling})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.layer == "ip1" and result.first_nonfinite.iteration == 3


def test_a_log_with_carriage_returns_only_is_read(tmp_path):
    from caffe_logs import CaffeLog
    from caffe_nantools.diagnose import diagnose

    log = CaffeLog().solving()
    log.loss(0, "2.3").loss(1, "nan")
    (tmp_path / "mac.log").write_bytes(log.text().replace("\n", "\r").encode())
    result = diagnose(str(tmp_path / "mac.log"))
    assert result.cause != "none" and result.first_nonfinite.iteration == 1
