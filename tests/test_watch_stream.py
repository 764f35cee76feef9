"""A log read as it is written: however the stream is cut (inside a line, a line break, a
multi-byte character), the reader sees what it sees in the whole file."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.diagnose.reading import Reader
from caffe_nantools.logs.chunks import Lines, LogStream, Marked, read_log
from watch_logs import snapshot_lines, training_log

LOG = (
    training_log(9, snapshot=4)
    + "I1121 07:12:32.521270 10203 solver.cpp:258]     caf\u00e9 \u2192 r\u00e9seau\r\n"
    + training_log(12, bad_at=7, growth=3.0)
    + snapshot_lines(8)
    + "F1121 07:12:33.000000 10203 layer.cpp:10] Check failed: a <= b (1 vs. 0)\n  @ 0x7f caffe::Foo()"
)


def read(pieces):
    reader = Reader()
    stream = LogStream()
    for piece in pieces:
        _feed(reader, stream.feed(piece))
    _feed(reader, stream.close())
    reader.finish()
    return reader


def _feed(reader, pieces):
    for p in pieces:
        reader.marked(p) if isinstance(p, Marked) else reader.span(p)


def outcome(reader):
    """What the diagnosis and watch take from a reader."""
    return [
        (
            len(r.losses),
            r.displayed,
            r.has_debug,
            r.first_bad,
            r.first_bad_lr,
            r.pinned,
            r.abort,
            r.suspect.iteration if r.suspect else None,
            [b.iteration for b in r.window],
        )
        for r in reader.runs
    ] + [reader.snapshots]


def lines_of(pieces):
    """Every line with its number, as the reader's pieces number them."""
    found = []
    for p in pieces:
        if isinstance(p, Marked):
            found.append((p.line, p.text))
        else:
            found += list(enumerate(p.data.decode("utf-8", "replace").split("\n"), p.line))[
                : p.data.count(b"\n") + (not p.data.endswith(b"\n"))
            ]
    return found


def cut(data: bytes, positions):
    bounds = [0] + sorted(positions) + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, len(LOG.encode())), max_size=60))
def test_a_stream_cut_anywhere_reads_as_the_whole_log(positions):
    data = LOG.encode()
    assert outcome(read(cut(data, positions))) == outcome(read([data]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(LOG.encode())), max_size=40))
def test_every_line_keeps_its_number_and_text(positions):
    stream = LogStream()
    pieces = [p for piece in cut(LOG.encode(), positions) for p in stream.feed(piece)] + list(
        stream.close()
    )
    lines = dict(lines_of(pieces))
    for number, text in enumerate(LOG.split("\n"), 1):
        if number in lines:  # lines inside spans and marked lines alike
            assert lines[number].rstrip("\r") == text.rstrip("\r")
    assert max(lines) == LOG.count("\n") + 1


def test_the_stream_in_random_small_pieces_is_read_as_the_file_is(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(LOG.encode())
    rng = random.Random(7)
    data = LOG.encode()
    positions = sorted(rng.sample(range(len(data)), len(data) // 5))  # pieces of about 5 bytes
    streamed = read(cut(data, positions))
    whole = Reader()
    whole.feed_all(read_log(str(path)))
    assert outcome(streamed) == outcome(whole)
    run = streamed.runs[-1]
    assert (
        run.suspect.iteration == 7
        and "[Forward] Layer ip2, top blob ip2 data: nan" in run.first_bad.text
    )
    assert [path for _, path in streamed.snapshots] == [
        "snap_iter_4.caffemodel",
        "snap_iter_4.solverstate",
        "snap_iter_8.caffemodel",
        "snap_iter_8.solverstate",
        "snap_iter_8.caffemodel",
        "snap_iter_8.solverstate",
    ]
    assert run.abort is not None and "Check failed: a <= b" in run.abort.text


def test_lines_hands_out_whole_lines_only_and_joins_a_long_one_once():
    lines = Lines()
    assert lines.feed(b"par") == (b"", 0)
    assert lines.feed(b"tial") == (b"", 0)
    text, end = lines.feed(b" line\nnext")
    assert text[:end] == b"partial line\n"
    text, end = lines.feed(b" one\n")
    assert text[:end] == b"next one\n"
    lines.feed(b"no break at the end")
    assert lines.rest() == b"no break at the end" and lines.rest() == b""
