"""Caffe logs: glog lines, solver events and the parse_log-style tables."""

import contextlib
import math
import os
import tempfile
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.cli import main
from caffe_nantools.logs import log2csv, parse_line, parse_value, read_events, tables_from_events
from caffe_nantools.logs.scratch import Scratch

LOG = textwrap.dedent(
    """\
    I1121 23:59:58.000000  1234 caffe.cpp:218] Using GPUs 0
    I1121 23:59:59.500000  1234 solver.cpp:289] Solving LeNet
    I1121 23:59:59.600000  1234 solver.cpp:330] Iteration 0, Testing net (#0)
    I1121 23:59:59.700000  1234 solver.cpp:397]     Test net output #0: accuracy = 0.1
    I1121 23:59:59.700001  1234 solver.cpp:397]     Test net output #1: loss = 2.3 (* 1 = 2.3 loss)
    I1122 00:00:00.500000  1234 solver.cpp:218] Iteration 0 (0 iter/s, 0.9s/100 iters), loss = 2.3
    I1122 00:00:00.500001  1234 solver.cpp:237]     Train net output #0: loss = 2.3 (* 1 = 2.3 loss)
    I1122 00:00:00.500002  1234 sgd_solver.cpp:105] Iteration 0, lr = 0.01
    this line is not glog at all
    I1122 00:00:01.500000  1234 solver.cpp:218] Iteration 100 (100 iter/s, 1s/100 iters), loss = -nan
    I1122 00:00:01.500001  1234 solver.cpp:237]     Train net output #0: loss = -nan (* 1 = -nan loss)
    I1122 00:00:01.500002  1234 sgd_solver.cpp:105] Iteration 100, lr = -nan
    I1122 00:00:02.000000  1234 solver.cpp:330] Iteration 200, Testing net (#0)
    I1122 00:00:02.100000  1234 solver.cpp:397]     Test net output #0: accuracy = 0.098
    I1122 00:00:02.100001  1234 solver.cpp:397]     Test net output #1: loss = inf (* 1 = inf loss)
    I1122 00:00:02.200000  1234 solver.cpp:330] Iteration 200, Testing net (#1)
    I1122 00:00:02.300000  1234 solver.cpp:397]     Test net output #0: accuracy = 0.5
    I1122 00:01:00.000000  5678 solver.cpp:289] Solving LeNet
    I1122 00:01:01.000000  5678 solver.cpp:228] Iteration 0, loss = 1.5
    I1122 00:01:01.000001  5678 solver.cpp:244]     Train net output #0: loss = 1.5 (* 1 = 1.5 loss)
    I1122 00:01:01.000002  5678 sgd_solver.cpp:106] Iteration 0, lr = 0.001
    """
)


def test_glog_lines_and_others():
    line = parse_line("E1121 05:19:16.791793 14380 solver.cpp:289] Solving p\n")
    assert (line.level, line.month, line.day, line.source, line.message) == (
        "E",
        11,
        21,
        "solver.cpp:289",
        "Solving p",
    )
    assert line.seconds == pytest.approx(5 * 3600 + 19 * 60 + 16.791793)
    assert parse_line("Traceback (most recent call last):") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.5", 0.5),
        ("-nan", "nan"),
        ("nan", "nan"),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("1e-05", 1e-5),
    ],
)
def test_values_as_caffe_prints_them(text, expected):
    value = parse_value(text)
    assert math.isnan(value) if expected == "nan" else value == expected


def test_events_carry_line_numbers_and_time_across_midnight():
    events = list(read_events(LOG.splitlines(True)))
    kinds = [e.kind for e in events]
    assert kinds[:6] == ["run", "test", "test_output", "test_output", "loss", "train_output"]
    loss = events[4]
    assert (loss.iteration, loss.value, loss.line) == (0, 2.3, 6)
    assert loss.time == pytest.approx(2.5)
    nan_lr = next(e for e in events if e.kind == "lr" and e.iteration == 100)
    assert math.isnan(nan_lr.value) and nan_lr.line == 12


def test_tables_like_parse_log_with_nan_rows_kept_and_runs_numbered():
    tables = tables_from_events(read_events(LOG.splitlines(True)))
    assert tables.train_columns == ["loss"] and tables.test_columns == [
        "accuracy",
        "loss",
        "net1/accuracy",
    ]
    assert [(r["NumIters"], r["Run"], r.get("LearningRate")) for r in tables.train][:1] == [
        (0, 1, 0.01)
    ]
    assert math.isnan(tables.train[1]["loss"]) and math.isnan(tables.train[1]["LearningRate"])
    assert tables.train[2]["Run"] == 2 and tables.train[2]["LearningRate"] == 0.001
    assert tables.test[1]["loss"] == math.inf and tables.test[2]["net1/accuracy"] == 0.5
    assert tables.csv("train").splitlines() == [
        "NumIters,Seconds,LearningRate,loss,Run",
        "0,2.5,0.01,2.3,1",
        "100,3.5,nan,nan,1",
        "0,63.0,0.001,1.5,2",
    ]


def tables_of(text):
    return tables_from_events(read_events(textwrap.dedent(text).splitlines(True)))


def test_a_2014_log_without_train_outputs_gets_its_displayed_loss_as_the_loss_column():
    tables = tables_of(
        """\
        I0508 12:39:32.293479  2763 solver.cpp:47] Solving CaffeNet
        I0508 12:40:15.421900  2763 solver.cpp:208] Iteration 20, lr = 0.02
        I0508 12:40:15.422000  2763 solver.cpp:106] Iteration 20, loss = 6.91
        I0508 12:40:45.421900  2763 solver.cpp:208] Iteration 40, lr = 0.02
        I0508 12:40:45.422000  2763 solver.cpp:106] Iteration 40, loss = nan
        """
    )
    assert tables.train_columns == ["loss"]
    assert tables.train[0]["loss"] == 6.91 and math.isnan(tables.train[1]["loss"])


def test_outputs_sharing_a_name_each_keep_a_column():
    tables = tables_of(
        """\
        I0101 00:00:00.000000  1 solver.cpp:330] Iteration 2000, Testing net (#0)
        I0101 00:00:00.000001  1 solver.cpp:397]     Test net output #0: accuracy = 1
        I0101 00:00:00.000002  1 solver.cpp:397]     Test net output #1: accuracy = -nan
        I0101 00:00:00.000003  1 solver.cpp:397]     Test net output #2: accuracy = 0.5
        """
    )
    assert tables.test_columns == ["accuracy", "accuracy#1", "accuracy#2"]
    assert math.isnan(tables.test[0]["accuracy#1"]) and tables.test[0]["accuracy#2"] == 0.5


def test_a_value_before_the_backtick_that_closes_a_paste_is_read():
    tables = tables_of(
        """\
        `I0101 00:00:00.000000  1 solver.cpp:218] Iteration 5 (1 iter/s, 1s/1 iters), loss = 2.5
        I0101 00:00:00.000001  1 sgd_solver.cpp:105] Iteration 5, lr = 0.001`
        """
    )
    assert tables.train[0]["LearningRate"] == 0.001 and tables.train[0]["loss"] == 2.5


def test_log2csv_writes_both_tables_and_refuses_to_overwrite(tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_text(LOG)
    assert main(["log2csv", str(log), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "train.log.test.csv").read_text().splitlines()[
        0
    ] == "NumIters,Seconds,LearningRate,accuracy,loss,net1/accuracy,Run"
    assert "3 rows" in capsys.readouterr().out
    assert main(["log2csv", str(log), str(tmp_path / "out")]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["log2csv", str(log), str(tmp_path / "out"), "--force"]) == 0
    assert main(["log2csv", str(tmp_path / "none.log"), str(tmp_path / "out2")]) == 2
    assert "none.log: no such file" in capsys.readouterr().err


def test_library_call_returns_the_paths(tmp_path):
    log = tmp_path / "x.log"
    log.write_text(LOG)
    train, test, tables = log2csv(str(log), str(tmp_path))
    assert train.endswith("x.log.train.csv") and test.endswith("x.log.test.csv")
    assert len(tables.train) == 3 and len(tables.test) == 3


# Logs made of real line kinds cut, repeated and mixed with any bytes (digits of any length,
# odd values, broken UTF-8): the readers raise only the project's errors, never crash.
_PIECES = [line.encode() for line in LOG.splitlines(keepends=True)] + [
    b"I1121 07:12:32.000001 10 net.cpp:593]     [Forward] Layer conv1, top blob conv1 data: ",
    b"I1121 07:12:32.000002 10 net.cpp:621]     [Backward] Layer ip1, bottom blob conv1 diff: ",
    b"E1121 07:12:32.000003 10 net.cpp:721]     [Backward] All net params (data, diff): L1 norm = (",
    b"caffe-nantools NonFiniteError: check 'c': blob 'b' forward data at iteration ",
    b"Gradient clipping: scaling down gradients (L2 norm ",
    b"Iteration ",
    b", loss = ",
    b", lr = ",
    b"nan",
    b"-nan",
    b"inf",
    b"1e38",
    b"\xff\xfe",
    b"\r\n",
    b"\n",
    b"9" * 5000,
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=40)), max_size=60))
def test_any_bytes_as_a_log_raise_only_the_projects_errors(pieces):
    from caffe_nantools.diagnose import diagnose
    from caffe_nantools.errors import NanToolsError

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fuzzed.log")
        with open(path, "wb") as f:
            f.write(b"".join(pieces))
        for read in (
            lambda: diagnose(path).to_json(),
            lambda: log2csv(path, os.path.join(folder, "csv"), force=True),
        ):
            with contextlib.suppress(NanToolsError):
                read()


def test_scratch_hands_out_one_buffer_grown_only_when_too_small():
    scratch = Scratch()
    first = scratch.take(100)
    assert len(first) == 100 and first.dtype == np.uint8
    assert np.shares_memory(scratch.take(40), first)  # reused: no new pages to fault in
    bigger = scratch.take(1000)
    assert len(bigger) == 1000 and not np.shares_memory(bigger, first)
