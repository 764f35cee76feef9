"""diagnose's second pass: a non-finite value or a crash in a line the reading does not know is
never given an all-clear; the report names the line, and what the rest of the log supports."""

import pytest
from hypothesis import example, given, settings, strategies as st

from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.diagnose import diagnose
import caffe_nantools.logs.chunks as chunks
from caffe_nantools.logs.sweep import (
    Candidates,
    line_findings,
    may_be_nonfinite,
    sweep_chunk,
    sweep_lines,
)
from caffe_nantools.watch.process import FreezeLook


def healthy(iterations=3, start=0):
    log = CaffeLog().solving()
    for i in range(start, start + iterations):
        log.iteration(i)
    return log


@pytest.mark.parametrize(
    "line, token",
    [
        (
            "I0403 09:59:07.896 38 multibox_loss_layer.cpp:213] total loss: nan, loc loss: inf",
            "nan",
        ),
        ("iter: 200 / 70000, total loss: -nan", "-nan"),
        (" >>> rpn_loss_box: NaN", "NaN"),
        ("    Test net output #1: accuracy = -nan", "-nan"),
        ("| 40 | 1.#QNAN | 0.01 |", "1.#QNAN"),
        ("12\t-1.#IND00\t0.5", "-1.#IND00"),
        ("loss = -nan(ind)", "-nan(ind)"),
        ("L1 norm = (6256.2, 1.#INF)", "1.#INF"),
        ("tensor([[    nan,     0.3]])", "nan"),
        ("inf", "inf"),
        ("I0606 14:52:14.189384 20195 compress_conv_layer.cu:170] -nan  -nan  0", "-nan"),
        ("I1109 13:43:37.2 10676 sgd_solver.cpp:169] scale layer:0.071102 0.047 nan 0.0098", "nan"),
        ("print from my layer: loss inf", "inf"),
    ],
)
def test_a_non_finite_value_is_found_wherever_it_stands(line, token):
    found = line_findings(line, 7)
    assert [(f.kind, f.token, f.line) for f in found] == [("nonfinite", token, 7)]


@pytest.mark.parametrize(
    "line",
    [
        "I1121 07:12:32.5 1 net.cpp:593]     [Forward] Layer nan_layer, top blob nan_layer data: 0.5",
        "I1121 07:12:32.5 1 inference.py:40] loaded",
        "I1121 07:12:32.5 1 net.cpp:593]     [Forward] Layer banana, top blob banana data: 0.25",
        "I1121 07:12:32.5 1 solver.cpp:243] Iteration 0 (-nan iter/s, 0.08s/20 iters), loss = 2.3",
        "I1121 07:12:32.5 1 layer_factory.hpp:77] Creating layer info_loss",
        "bbox_transform.py:31: RuntimeWarning: invalid value encountered in log",
        "I get nan, see my log:",
    ],
)
def test_names_and_prose_are_not_values(line):
    assert line_findings(line, 1) == []


@pytest.mark.parametrize(
    "line, marker",
    [
        ("Segmentation fault (core dumped)", "Segmentation fault"),
        ("run.sh: line 4: 31337 Killed                  caffe train -solver s.prototxt", "Killed"),
        ("Floating point exception (core dumped)", "Floating point exception"),
        ("Aborted (core dumped)", "Aborted"),
        ("  what():  std::bad_alloc", "std::bad_alloc"),
        (
            "E1121 07:12:32.5 1 common.cpp:113] Cannot create Cublas handle. CUBLAS_STATUS_NOT_INITIALIZED",
            "CUBLAS_STATUS_NOT_INITIALIZED",
        ),
        ("CUDNN_STATUS_EXECUTION_FAILED", "CUDNN_STATUS_EXECUTION_FAILED"),
        ("job 1234 failed with error code -9", "error code -9"),
        ("Command terminated by signal 11", "terminated by signal 11"),
        ("> F1121 07:12:32.521270 10203 net.cpp:70] Check failed: x", "F1121 07:12:32.521270"),
        (
            "I1121 07:12:32.5 1 sgd_solver.cpp:112] Iteration 5, lr = 0.01F1121 07:12:33.000000 "
            "10203 net.cpp:70] Check failed: x",
            "F1121 07:12:33.000000",
        ),
        ("slurmstepd: job 77 exited with status 139", "exited with status 139"),
        (
            "F20240512 10:11:12.123456  4242 net.cpp:90] Check failed: x",
            "F20240512 10:11:12.123456",
        ),
        ("Process finished with exit code 134", "exit code 134"),
        ("Bus error (core dumped)", "Bus error"),
        ("Illegal instruction", "Illegal instruction"),
        ("terminate called after throwing an instance of 'std::runtime_error'", "terminate called"),
        ("cuda.cpp:79] CUDA error: out of memory", "CUDA error"),
        ("Check failed: error == cudaSuccess (2 vs. 0)  out of memory", "Check failed"),
        ("an illegal memory access was encountered", "illegal memory access"),
        ("unspecified launch failure", "unspecified launch failure"),
        ("RuntimeError: NCCL error in: nccl.cpp:33", "NCCL error"),
        ("cudaErrorMemoryAllocation", "cudaErrorMemoryAllocation"),
        ("driver: CUDA_ERROR_OUT_OF_MEMORY", "CUDA_ERROR_OUT_OF_MEMORY"),
        ("Quit (core dumped)", "core dumped"),
        ('*** Aborted at 1700000000 (unix time) try "date -d @1700000000"', "*** Aborted at"),
        ("*** Check failure stack trace: ***", "Check failure stack trace"),
        ("Traceback (most recent call last):", "Traceback (most recent call last)"),
    ],
)
def test_a_crash_is_found_with_or_without_a_glog_prefix(line, marker):
    found = line_findings(line, 3)
    assert [(f.kind, f.token) for f in found] == [("crash", marker)]
    # The chunk's sweep finds it too, between healthy lines, on the same line.
    chunk = f"{healthy(1).text()}{line}\n{healthy(1).text()}".encode()
    first = healthy(1).text().count("\n") + 1
    assert [(f.line, f.token) for f in sweep_chunk(chunk, len(chunk), 1)] == [(first, marker)]


def test_sweep_lines_numbers_the_findings_of_a_stream():
    lines = ["I1121 ok\n", b"total loss: nan\r\n", "Killed\n", "fine: 0.5\n"]
    found = list(sweep_lines(lines, first_line=10))
    assert [(f.line, f.kind, f.text) for f in found] == [
        (11, "nonfinite", "total loss: nan"),
        (12, "crash", "Killed"),
    ]


UNREAD = [
    # A fork's loss layer logging through glog.
    lambda log: log.glog("total loss: nan, loc loss: inf", source="multibox_loss_layer.cpp:213"),
    # A Python layer's prints.
    lambda log: log.raw(" >>> rpn_loss_box: nan"),
    # A fork's tag between glog's header and the message.
    lambda log: log.glog("[rank 0] Iteration 3, loss = -nan"),
    # An output wrapped by a terminal (py-faster-rcnn pastes): the value on the next line.
    lambda log: log.glog("    Train net output #3: rpn_loss_bb").raw("ox = nan (* 1 = nan loss)"),
    # A test output whose header was cut, its loss as Caffe prints it.
    lambda log: log.glog(
        "    Test net output #0: loss = nan (* 1 = nan loss)", source="solver.cpp:414"
    ),
    # Two records glued on one line.
    lambda log: log.raw(
        log.lines.pop()
        + "I1121 07:12:33.000001 10203 net.cpp:593]     [Forward] Layer ip1, top blob ip1 data: nan"
    ),
]


@pytest.mark.parametrize("damage", range(len(UNREAD)))
@pytest.mark.parametrize("after", [1, 3])
def test_a_non_finite_value_in_a_line_of_unknown_layout_is_no_all_clear(
    tmp_path, capsys, damage, after
):
    log = healthy(after)
    UNREAD[damage](log)
    line = len(log.lines)
    log.iteration(after)  # training goes on, finite as far as the reading sees
    path = log.write(tmp_path / "train.log")
    result = diagnose(path)
    assert result.cause != "none" and result.return_code == 1
    assert result.first_nonfinite.line <= line
    assert any(f"line {result.first_nonfinite.line}" in s for s in result.summary)
    assert main(["diagnose", path]) == 1
    assert "cause: none" not in capsys.readouterr().out


def test_what_the_rest_of_the_log_supports_is_the_cause(tmp_path):
    log = CaffeLog().solving()
    for i, loss in enumerate(["1.2", "31", "2.4e+04", "9.1e+09", "3.3e+17"]):
        log.loss(i, loss).lr(i, "0.1")
    log.raw("my_loss_layer: loss = inf")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "exploding_gradients"
    assert result.first_nonfinite.pass_ == "unread" and result.first_nonfinite.iteration == 4


@pytest.mark.parametrize(
    "crash",
    [
        "Segmentation fault (core dumped)",
        "Killed",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "E1121 07:12:40.000000 10203 syncedmem.cpp:56] CUDA error: out of memory",
    ],
)
def test_a_crash_without_a_glog_marker_is_an_abort(tmp_path, crash):
    log = healthy(3).raw(crash)
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort" and result.abort["line"] == len(log.lines)
    assert any("last displayed iteration 2" in s for s in result.summary)


def test_an_abort_before_a_nan_reports_both_in_file_order(tmp_path):
    log = healthy(2).raw(
        "F1121 07:12:40.000000 10203 data_transformer.cpp:63] Check failed: a <= b (1 vs. 0)"
    )
    log.solving("again").iteration(0).iteration(1, loss="nan")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.runs == 2
    # The second run went non-finite: it is diagnosed, and the first run's abort is told.
    assert result.first_nonfinite.line == log.line_of(
        "Iteration 1 (12.5 iter/s, 0.08s/1 iters), loss = nan"
    )
    assert any("run 1" in s and "abort" in s for s in result.summary)


def test_an_abort_early_in_one_run_does_not_hide_the_nan_after_it(tmp_path):
    log = healthy(2).raw("Aborted (core dumped)")
    log.iteration(2).iteration(3, loss="nan")
    result = diagnose(log.write(tmp_path / "train.log"))
    nan_line = log.line_of("Iteration 3 (12.5 iter/s, 0.08s/1 iters), loss = nan")
    assert result.abort["line"] == log.line_of("Aborted")
    assert result.first_nonfinite.line == nan_line
    told = " ".join(result.summary)
    assert told.index("Aborted") < told.index(f"line {nan_line}")


def test_outputs_pinned_at_87_3365_beside_a_nan_output_are_warned_of(tmp_path):
    log = healthy(2)
    log.glog("Iteration 2, loss = nan")
    log.glog(
        "    Train net output #0: loss_cls = 87.3365 (* 1 = 87.3365 loss)", source="solver.cpp:258"
    )
    log.glog("    Train net output #1: loss_bbox = nan (* 1 = nan loss)", source="solver.cpp:258")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.blob == "loss_bbox"
    assert any("loss_cls" in w and "87.3365" in w for w in result.warnings)


def test_names_that_hold_nan_or_inf_leave_a_healthy_log_healthy(tmp_path, capsys):
    log = CaffeLog().solving("nan_net")
    for i in range(3):
        log.forward("data", "data", "0.7").forward("nan_layer", "banana", "0.4")
        log.forward("inference", "inference", "0.3")
        log.glog(f"Iteration {i} (-nan iter/s, 0s/1 iters), loss = 1.3")
        log.glog(
            "    Train net output #0: info_loss = 1.3 (* 1 = 1.3 loss)", source="solver.cpp:258"
        )
    path = log.write(tmp_path / "train.log")
    assert diagnose(path).cause == "none" and main(["diagnose", path]) == 0


@pytest.mark.parametrize("bad", [2, 3])
def test_the_first_non_finite_iteration_is_the_first_in_the_file(tmp_path, bad):
    # A fork that prints the loss line before the trace: iteration N's loss is already nan
    # while the trace lines that follow it (read as iteration N + 1's) show where.
    log = healthy(bad)
    log.loss(bad, "nan").lr(bad, "0.01")
    log.trace(set={("forward", "ip1"): "nan", ("forward", "loss"): "nan"}).loss(bad + 1, "nan")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.iteration == bad
    assert result.first_nonfinite.line == log.line_of(f"Iteration {bad} (12.5 iter/s")


TOKENS = ["nan", "-nan", "NaN", "inf", "-Inf", "INF", "1.#QNAN", "-1.#IND", "1.#INF", "nan(ind)"]


@given(
    st.lists(
        st.one_of(
            st.sampled_from(TOKENS),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
            st.sampled_from(["loss = ", ": ", "banana", "inference", "Forward", "\n", " "]),
        ),
        max_size=30,
    )
)
def test_watchs_quick_look_never_passes_over_what_the_sweep_finds(parts):
    """watch freezes Caffe on a piece that shows a non-finite value; the look it takes first
    (only the n's) rules a piece out only where the sweep would find none."""
    chunk = ("".join(parts) + "\n").encode()
    found = [f for f in sweep_chunk(chunk, len(chunk), 1) if f.kind == "nonfinite"]
    assert may_be_nonfinite(chunk) or not found
    assert may_be_nonfinite(b"I0101 loss = -nan\n") and not may_be_nonfinite(b"] Forward 1.5\n")


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(TOKENS + ["loss = ", "1.5", "x", " ", "another word", "\n"]), max_size=20
    ),
    st.lists(st.integers(1, 40), max_size=8),
)
@example(["loss = ", "nan", " ", "another word", "another word"], [34])
def test_watchs_look_at_pieces_cut_anywhere_sees_each_line_the_sweep_finds(parts, cuts):
    """watch looks at an output a pipe read at a time: a non-finite value the sweep finds in a
    line is seen on the piece that ends that line, wherever the pieces were cut."""
    text = ("".join(parts) + "\n").encode()
    look, seen, at = FreezeLook(), [], 0
    for size in cuts + [len(text)]:
        piece, at = text[at : at + size], at + size
        if piece:
            seen.append(look.shows_nonfinite(piece))
    found = [f for f in sweep_chunk(text, len(text), 1) if f.kind == "nonfinite"]
    assert any(seen) == bool(found)


@settings(max_examples=500)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(TOKENS + ["1.#", "#", "_", ".", "-", "+", "(", ")", " ", ": ", "= "]),
            st.sampled_from(["i", "I", "q", "Q", "x", "fin", "al", "seg_", "nd", "7", "ind"]),
        ),
        max_size=25,
    ),
    st.sampled_from(["", "I0101 00:00:00.000000 1 a.cpp:1] ", "> "]),
)
def test_a_line_whose_value_the_regex_finds_is_never_ruled_out_first(parts, head):
    """The sweep looks at a line only when one of its n's may start a token's spelling (names
    such as loss_final are not looked at): each value the line-by-line regex finds is found."""
    line = head + "".join(parts)
    wanted = [f.token for f in line_findings(line, 1) if f.kind == "nonfinite"]
    chunk = f"{line}\n".encode()
    swept = [f.token for f in sweep_chunk(chunk, len(chunk), 1) if f.kind == "nonfinite"]
    assert swept == wanted and (may_be_nonfinite(chunk) or not wanted)


def test_names_holding_na_nf_or_nd_are_no_candidates():
    for name in (b"loss_final", b"seg_nd_loss", b"banana", b"#nan", b"x.inf", b"2nan"):
        assert not may_be_nonfinite(b"] Train net output #0: " + name + b" = 0.5\n"), name
    for token in (b"nan", b"-nan", b"inf", b"-Inf", b"1.#QNAN", b"-1.#IND", b"1.#INF", b"nan(ind)"):
        assert may_be_nonfinite(b"loss = " + token + b"\n"), token


@pytest.mark.parametrize("chunk_bytes", [61, 300, 1 << 14])
def test_each_run_of_a_paste_is_swept_though_the_first_stayed_nan(
    tmp_path, monkeypatch, chunk_bytes
):
    # Once a run has its first non-finite value, chunks are no longer looked at for more; a
    # "Solving" that starts a new run in a chunk brings the look back.
    log = healthy(2)
    for i in range(2, 40):
        log.iteration(i, loss="nan")
    log.solving("again")
    for i in range(3):
        log.iteration(i)
    log.raw("my_loss_layer: loss = inf")
    log.iteration(3)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", chunk_bytes)
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.runs == 2
    assert result.first_nonfinite.line == log.line_of("my_loss_layer: loss = inf")


def test_a_reader_that_wants_no_values_is_handed_no_candidates(tmp_path, monkeypatch):
    log = CaffeLog()  # no "Solving": no run starts in any chunk
    for i in range(30):
        log.iteration(i, loss="nan")
    path = log.write(tmp_path / "train.log")
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 200)

    def candidates(wants_values):
        pieces = chunks.read_log(path, sweep=True, wants_values=wants_values)
        return [line for p in pieces if isinstance(p, Candidates) for line in p.lines.tolist()]

    assert candidates(lambda: True) == [n for n, line in enumerate(log.lines, 1) if "nan" in line]
    assert candidates(lambda: False) == []


@pytest.mark.parametrize(
    "glue, crash",
    [
        ("", "F1121 07:12:33.000000 10203 syncedmem.cpp:56] Check failed: error == cudaSuccess"),
        (" ", "E1121 07:12:33.000000 10203 common.cpp:113] CUDA error: out of memory"),
        (" ", "I1121 07:12:33.000000 10203 net.cpp:70] ok Segmentation fault (core dumped)"),
    ],
)
def test_a_crash_glued_onto_an_info_line_is_no_all_clear(tmp_path, glue, crash):
    # A paste that lost its line breaks: the crash's record hangs on the end of an INFO line,
    # where no crash is ever logged.
    log = healthy(3)
    log.lines[-1] += glue + crash
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort" and result.return_code == 1
    assert result.abort["line"] == len(log.lines)


def test_a_crash_in_a_paste_without_line_breaks_is_quoted_from_its_marker(tmp_path):
    log = healthy(30)
    path = tmp_path / "train.log"
    path.write_text(" ".join(log.lines) + " Segmentation fault (core dumped)\n")
    result = diagnose(str(path))
    assert result.cause == "caffe_abort"
    assert "the run crashed: `Segmentation fault (core dumped)`" in result.summary[0]
