"""Display lines read in bulk (logs/plain.py, chunks.Displays): a line taken as a loss or a rate
is one the parser reads as such, with a value that needs no second look; and a log read with
Displays leaves the reader exactly as one read line by line."""

import dataclasses
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.diagnose.reading import Reader, is_saturated
from caffe_nantools.diagnose.trace import is_bad
from caffe_nantools.logs import plain
from caffe_nantools.logs.chunks import Displays, LogStream
from caffe_nantools.logs.glog import parse_line
from caffe_nantools.logs.events import parse_event

STAMP = "I1121 07:12:32.521270 10203 solver.cpp:239] "


def kinds_of(lines):
    text = "\n".join(lines).encode()
    a = np.frombuffer(text, np.uint8)
    starts, stops, at = [], [], []
    offset = 0
    for line in lines:
        raw = line.encode()
        starts.append(offset)
        stops.append(offset + len(raw))
        at.append(offset + raw.find(b"]"))
        offset += len(raw) + 1
    return plain.kinds(a, *(np.array(x, np.int64) for x in (starts, stops, at))).tolist()


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: f"{v:g}"),
    st.floats(min_value=87.3, max_value=87.4).map(str),
    st.sampled_from(
        [
            "1.3",
            "87.3365",
            "8.73365e+01",
            "0.873365e+02",
            "873365e-4",
            "-nan",
            "1e",
            "1.2.3",
            "1e+37",
            "3.4e+38",
            "1e-05",
            "+87.34",
            "087.33",
            "-0.5",
            "1.",
            "1e5",
            "12345678901234567",
            "nan(ind)",
            "1.#QNAN",
            "5e+09",
        ]
    ),
    st.text("0123456789.e+-", min_size=1, max_size=18),
)
layouts = st.sampled_from(
    [
        "{stamp}Iteration {i} (12.5 iter/s, 0.08s/1 iters), loss = {v}",
        "{stamp}Iteration {i}, loss = {v}",
        "{stamp}Iteration {i} (0.5 s), loss = {v}",
        "{stamp}Iteration {i} (a, lr = 1), loss = {v}",
        "{stamp}Iteration {i} (a) b), loss = {v}",
        "{stamp}Iteration {i}, lr = {v}",
        "{stamp}Iteration {i}, lr = {v}, m = 0.9",
        "{stamp}Iteration {i}, loss = {v}\r",
        "{stamp}Iteration {i}, loss = {v} ",
        "{stamp}Iteration {i}, Testing net (#0)",
        "F1121 07:12:32.521270 10203 solver.cpp:239] Iteration {i}, loss = {v}",
        "I1121 07:12:32.521270 10203 [x] Iteration {i}, loss = {v}",
        "I1121 07:12:32.521270      7 a.cpp:1] Iteration {i}, lr = {v}",
        "I1121 07:12:32.521270 12345678901234 a.cpp:1] Iteration {i}, lr = {v}",
        "I1121 07:12:32 10203 a.cpp:1] Iteration {i}, lr = {v}",
        "I1121 07:12:32.521270 10203 a.cpp:1] [rank 0] Iteration {i}, lr = {v}",
        "I1121 07:12:32.521270 1x203 a.cpp:1] Iteration {i}, lr = {v}",
        "I1121 07:12:32.521270 10203a.cpp:1] Iteration {i}, lr = {v}",
        "I1121 07:12:32.521270 10203 a.cpp:1]Iteration {i}, lr = {v}",
        "W1121 07:12:32.521270  10203 a.cpp:1] Iteration {i}, lr = {v}",
        "{stamp}Iteration {i} ({i} iter/s, a long time to say how long one iteration took), loss = {v}",
        "{stamp}Iteration {i} (12.5 iter/s, 0.08s/1 iters, loss = {v}",
        "{stamp}Iteration {i} (x), loss  = {v}",
        "{stamp}Iteration {i} (x),  loss = {v}",
        "{stamp}Iteration {i}, loss = {v} (* 1 = {v} loss)",
        "{stamp}Iteration {i}, lr = {v}\r",
        "I20231121 07:12:32.521270 10203 solver.cpp:239] Iteration {i}, loss = {v}",
        "I2023112 07:12:32.521270 10203 solver.cpp:239] Iteration {i}, loss = {v}",
        "I2O231121 07:12:32.521270 10203 solver.cpp:239] Iteration {i}, loss = {v}",
        "E20231121 07:12:32.521270     7 a.cpp:1] Iteration {i}, lr = {v}",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(layouts, st.integers(0, 10**20), values), min_size=1, max_size=8))
def test_a_line_taken_is_read_alike_by_the_parser(rows):
    lines = [layout.format(stamp=STAMP, i=i, v=v) for layout, i, v in rows]
    for line, kind in zip(lines, kinds_of(lines)):
        if kind == plain.OTHER:
            continue
        glog = parse_line(line.rstrip("\r"))
        assert glog is not None and glog.level != "F", line
        event = parse_event(glog.message.strip(), 1)
        assert event is not None and event.kind == ("loss" if kind == plain.LOSS else "lr"), line
        assert not is_bad(event.value), line
        assert not (kind == plain.LOSS and is_saturated(event.value)), line


def test_the_common_layouts_are_taken():
    lines = [
        f"{STAMP}Iteration 120 (12.5 iter/s, 0.08s/1 iters), loss = 1.3",
        f"{STAMP}Iteration 7, loss = 0.0123457",
        f"{STAMP}Iteration 7, lr = 1e-05",
        f"{STAMP}Iteration 99, lr = 0.01",
        f"{STAMP}Iteration 99 (3 iter/s), loss = 2.5e+06",
        # glog 0.5 and later put the year first.
        f"I2023{STAMP[1:]}Iteration 100 (12.5 iter/s, 0.08s/1 iters), loss = 0",
        f"I2023{STAMP[1:]}Iteration 100, lr = 0.01",
    ]
    assert kinds_of(lines) == [plain.LOSS, plain.LOSS, plain.RATE, plain.RATE, plain.LOSS] + [
        plain.LOSS,
        plain.RATE,
    ]


def plain_log(rng, iterations, bad_at=None):
    out = [f"{STAMP}Solving bench"]
    test_every = rng.choice([7, 50, 500])
    for i in range(iterations):
        if i % test_every == 0:
            out.append(f"{STAMP}Iteration {i}, Testing net (#0)")
            out.append(f"{STAMP}    Test net output #0: accuracy = {rng.random():.3g}")
        loss = rng.choice(
            [f"{rng.uniform(0, 3):g}"] * 30
            + ["87.3365", f"{rng.uniform(1, 9):g}e-0{rng.randint(1, 9)}"]
        )
        if bad_at is not None and i >= bad_at:
            loss = rng.choice(["nan", "-nan", "inf", "3.4e+38"])
        out.append(f"{STAMP}Iteration {i} (12.5 iter/s, 0.08s/1 iters), loss = {loss}")
        out.append(f"{STAMP}    Train net output #0: loss = {loss} (* 1 = {loss} loss)")
        if rng.random() < 0.01:
            out.append(f"{STAMP}Gradient clipping: scaling down gradients (L2 norm 12 > 10)")
        lr = rng.choice(["0.01", "0.001", f"{rng.uniform(0, 1):g}"])
        out.append(f"{STAMP}Iteration {i}, lr = {lr}")
    return ("\n".join(out) + "\n").encode()


def read(data, displays, cut):
    stream = LogStream(sweep=True, displays=displays)
    reader = Reader(plot=True)  # the curves of a report too
    pieces = []
    for k in range(0, len(data), cut):
        pieces += list(stream.feed(data[k : k + cut]))
    pieces += list(stream.close())
    reader.feed_all(pieces)
    return reader, sum(isinstance(p, Displays) for p in pieces)


def state(reader):
    out = []
    for run in reader.runs:
        fields = dataclasses.asdict(run)
        for name in ("loss_series", "lr_series", "columns"):
            fields[name] = getattr(run, name).items
        curves = run.curves
        fields["curves"] = [
            (c.phase, c.name, c.count, c.points, c.bad)
            for c in [curves.loss, curves.rate] + curves.outputs
        ]
        out.append(fields)
    return repr(out)


def test_a_log_read_in_bulk_leaves_the_reader_as_line_by_line():
    rng = random.Random(7)
    bulk_seen = 0
    for case in range(12):
        iterations = rng.choice([40, 300, 2000])
        bad_at = rng.choice([None, rng.randrange(iterations)])
        data = plain_log(rng, iterations, bad_at)
        if case % 3 == 0:  # glog 0.5 and later: the year first
            data = data.replace(b"I1121 ", b"I20231121 ")
        cut = rng.choice([len(data), 4096, 65536])
        one_by_one, _ = read(data, False, cut)
        in_bulk, count = read(data, True, cut)
        bulk_seen += count
        assert state(in_bulk) == state(one_by_one), case
    assert bulk_seen > 0


def test_a_display_line_the_second_pass_finds_a_value_in_is_read_where_it_stands():
    # Found by review: a loss line taken as plain, whose timing holds a NaN (NVIDIA Caffe's
    # "(x s)" layout), went into a run read in bulk, and its NaN was dated to the run's end.
    lines = [f"{STAMP}Solving bench"]
    for i in range(60):
        timing = "(nan s)" if i == 5 else "(0.5 s)"
        lines.append(f"{STAMP}Iteration {i} {timing}, loss = 0.5")
        lines.append(f"{STAMP}Iteration {i}, lr = 0.01")
    data = ("\n".join(lines) + "\n").encode()
    one_by_one, _ = read(data, False, len(data))
    in_bulk, count = read(data, True, len(data))
    assert count > 0 and state(in_bulk) == state(one_by_one)
    assert in_bulk.runs[0].found_after == 5 and in_bulk.runs[0].unread.line == 12


def test_an_output_named_like_a_token_leaves_the_run_read_in_bulk():
    # "loss_final" holds "na", "seg_nd" "nd": names, never values; a run of them is still one.
    lines = [f"{STAMP}Solving bench"]
    for i in range(60):
        lines.append(f"{STAMP}Iteration {i} (0.5 s), loss = 0.5")
        lines.append(f"{STAMP}    Train net output #0: loss_final = 0.5 (* 1 = 0.5 loss)")
        lines.append(f"{STAMP}    Train net output #1: seg_nd = 0.1")
        lines.append(f"{STAMP}Iteration {i}, lr = 0.01")
    data = ("\n".join(lines) + "\n").encode()
    one_by_one, _ = read(data, False, len(data))
    in_bulk, count = read(data, True, len(data))
    assert count == 1 and state(in_bulk) == state(one_by_one)
