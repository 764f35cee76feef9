"""watch's decisions, without a process: a log fed in, the passing time and the signals watch
gets, and the events (warnings, the stop and its signals) that come out."""

import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.watch.effects import Effects
from caffe_nantools.watch.monitor import Monitor
from watch_logs import snapshot_lines, training_log


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def monitor(command=("caffe", "train", "-solver", "s.prototxt"), **options):
    clock = Clock()
    options.setdefault("timeout", 30.0)
    return Monitor(Effects.of(list(command)), clock=clock, **options), clock


def signals(events):
    return [e.signal for e in events if e.signal is not None]


def kinds(events):
    return [e.kind for e in events]


def test_a_healthy_log_gives_no_event():
    m, _ = monitor()
    events = m.feed(training_log(40, snapshot=10).encode()) + m.close()
    assert [e.message for e in events] == [
        f"Caffe wrote snap_iter_{k}.{kind}"
        for k in (10, 20, 30, 40)
        for kind in ("caffemodel", "solverstate")
    ]
    assert not m.went_bad and m.stop_reason is None


@pytest.mark.parametrize("bad_at", [0, 6, 13])
def test_the_first_nan_asks_for_a_snapshot_then_a_stop_then_escalates(bad_at):
    m, clock = monitor()
    events = m.feed(training_log(bad_at + 3, bad_at=bad_at).encode())
    stop = next(e for e in events if e.kind == "stop")
    assert (
        f"at iteration {bad_at}" in stop.message
        and "[Forward] Layer ip2, top blob ip2 data: nan" in stop.message
    )
    assert signals(events) == [signal.SIGHUP] and m.stop_reason == "nonfinite" and m.went_bad
    assert "-sighup_effect snapshot" in events[-1].message
    # Caffe's snapshot: its solver state line is the cue for the stop signal.
    assert signals(m.feed(snapshot_lines(bad_at + 4).encode())) == [signal.SIGINT]
    assert m.tick() == []
    clock.now += 30
    assert signals(m.tick()) == [signal.SIGTERM]
    clock.now += 30
    assert signals(m.tick()) == [signal.SIGKILL]
    clock.now += 300
    assert m.tick() == []


def test_a_snapshot_named_before_the_stop_is_not_the_cue():
    m, _ = monitor()
    m.feed(training_log(8, bad_at=5, snapshot=5).encode())  # snap_iter_5 comes before the nan
    assert signals(m.feed(b"")) == []
    assert signals(m.feed(snapshot_lines(7).encode())) == [signal.SIGINT]


def test_without_a_snapshot_within_the_timeout_it_stops_anyway():
    m, clock = monitor()
    m.feed(training_log(4, bad_at=2).encode())
    clock.now += 31
    events = m.tick()
    assert kinds(events) == ["warning", "signal"] and "no snapshot within 30 s" in events[0].message
    assert signals(events) == [signal.SIGINT]


@pytest.mark.parametrize(
    "solver, expected",
    [
        ("base_lr: 0.01\n", [signal.SIGINT, signal.SIGTERM]),
        ("snapshot_after_train: true\nbase_lr: 0.01\n", [signal.SIGINT, signal.SIGTERM]),
        ("snapshot_after_train: false\n", [signal.SIGHUP, signal.SIGINT]),
        (
            "snapshot_after_train: true\nsnapshot_after_train: false\n",
            [signal.SIGHUP, signal.SIGINT],
        ),
        ("snapshot_after_train: maybe\n", [signal.SIGHUP, signal.SIGINT]),  # Caffe refuses it
        (None, [signal.SIGHUP, signal.SIGINT]),  # no such file: not known
    ],
)
def test_caffes_stop_alone_stops_it_where_the_solver_snapshots_after_training(
    tmp_path, solver, expected
):
    # Caffe takes one signal per iteration: the stop alone, whose end-of-training snapshot
    # the solver keeps on, ends the run an iteration sooner than a snapshot and then a stop.
    path = tmp_path / "solver.prototxt"
    if solver is not None:
        path.write_text(solver)
    m, clock = monitor(["caffe", "train", f"--solver={path}"])
    sent = m.feed(training_log(4, bad_at=2).encode())
    assert ("it writes a snapshot as it stops" in sent[-1].message) == (
        expected[0] == signal.SIGINT
    )
    sent = signals(sent) + signals(m.feed(snapshot_lines(3).encode()))
    clock.now += 31
    assert (sent + signals(m.tick()))[:2] == expected


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["-sighup_effect", "stop", "-sigint_effect", "snapshot"], [signal.SIGINT, signal.SIGHUP]),
        (["--sighup_effect=none"], [signal.SIGINT, signal.SIGTERM]),
        (["-sighup_effect=none", "-sigint_effect", "none"], [signal.SIGTERM, signal.SIGKILL]),
        (
            ["-sigint_effect=snapshot"],
            [signal.SIGHUP, signal.SIGTERM],
        ),  # nothing stops: SIGTERM does
    ],
)
def test_the_signals_follow_caffes_flags_on_the_command_line(flags, expected):
    m, clock = monitor(["caffe", "train", "-solver", "s.prototxt", *flags])
    sent = signals(m.feed(training_log(3, bad_at=1).encode()))
    sent += signals(m.feed(snapshot_lines(3).encode()))
    clock.now += 31
    sent += signals(m.tick())
    assert sent[:2] == expected


def test_no_snapshot_stops_with_sigterm_which_caffe_leaves_to_its_default():
    m, _ = monitor(snapshot=False)
    assert signals(m.feed(training_log(3, bad_at=1).encode())) == [signal.SIGTERM]


@pytest.mark.parametrize(
    "line",
    [
        "sgd_solver.cpp:112] Iteration 4, lr = nan",
        "solver.cpp:258]     Train net output #1: accuracy = nan (* 1 = nan loss)",
    ],
)
def test_a_non_finite_rate_or_loss_without_debug_info_stops_it(line):
    m, _ = monitor()
    log = training_log(5, debug=False)
    if "lr" in line:
        log = log.replace("Iteration 4, lr = 0.01", "Iteration 4, lr = nan")
    else:
        log = log.replace(
            "Iteration 4 (50 iter/s, 0.02s/1 iters), loss = 1.3",
            "Iteration 4 (50 iter/s, 0.02s/1 iters), loss = nan",
        )
    events = m.feed(log.encode())
    assert m.stop_reason == "nonfinite" and "iteration 4" in events[0].message


def test_a_blow_up_is_warned_of_once_and_stops_the_run_only_when_asked():
    log = training_log(12, growth=10.0).encode()
    m, _ = monitor()
    warnings = [e for e in m.feed(log) if e.kind == "warning"]
    assert (
        len(warnings) == 1
        and "orders of magnitude" in warnings[0].message
        and m.stop_reason is None
    )
    m, _ = monitor(stop_on_blowup=True)
    events = m.feed(log)
    assert m.stop_reason == "blowup" and kinds(events)[-2:] == ["stop", "signal"]
    assert events[-2].message.startswith("stopping on the blow-up, as asked: ")


def test_a_steady_log_read_display_by_display_is_not_a_blow_up():
    m, _ = monitor()
    log = training_log(30, growth=1.05)  # 1.05 ** 30 = 4.3: not orders of magnitude
    for piece in log.split("lr = 0.01\n"):
        assert m.feed(piece.encode() + b"lr = 0.01\n") == []


def test_a_loss_pinned_at_87_3365_is_warned_of():
    m, _ = monitor()
    events = m.feed(training_log(10, debug=False, loss=87.3365).encode())
    assert (
        kinds(events) == ["warning"]
        and "87.3365" in events[0].message
        and "-log(FLT_MIN)" in events[0].message
    )


@pytest.mark.parametrize("debug, warned", [(True, True), (False, False)])
def test_display_over_1_is_warned_of_with_debug_info_only(debug, warned):
    m, _ = monitor()
    events = m.feed(training_log(30, display=5, debug=debug).encode())
    assert any("display is 5 with debug_info" in e.message for e in events) == warned


def test_signals_watch_gets_are_passed_on_and_sigterm_ends_in_sigkill():
    m, clock = monitor()
    m.feed(training_log(3).encode())
    events = m.receive(signal.SIGINT)
    assert kinds(events) == ["forward"] and signals(events) == [signal.SIGINT]
    assert (
        "-sigint_effect stop" in events[0].message
        and m.request_line == m.reader.runs[-1].losses[-1].line + 2
    )
    assert signals(m.receive(signal.SIGTERM)) == [signal.SIGTERM]
    clock.now += 31
    assert signals(m.tick()) == [signal.SIGKILL]
    assert m.received == [signal.SIGINT, signal.SIGTERM]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_stop_comes_at_the_same_line_however_the_stream_is_cut(data):
    log = training_log(14, bad_at=9, growth=2.0).encode()
    positions = sorted(data.draw(st.lists(st.integers(0, len(log)), max_size=30)))
    m, _ = monitor()
    stops = []
    for a, b in zip([0] + positions, positions + [len(log)]):
        stops += [e for e in m.feed(log[a:b]) if e.kind == "stop"]
    assert (
        len(stops) == 1
        and stops[0].line == log[: log.index(b"top blob ip2 data: nan")].count(b"\n") + 1
    )


def test_a_noisy_loss_whose_spikes_do_not_last_is_not_a_blow_up():
    m, _ = monitor()
    log = training_log(40, debug=False, loss=2.0)
    for i in range(3, 40, 4):  # one batch in four 300 times the others, as small batches give
        log = log.replace(
            f"Iteration {i} (50 iter/s, 0.02s/1 iters), loss = 2",
            f"Iteration {i} (50 iter/s, 0.02s/1 iters), loss = 600",
        )
    assert "loss = 600" in log and m.feed(log.encode()) == []


@pytest.mark.parametrize(
    "command, stops",
    [
        (["caffe", "train", "-solver", "{solver}"], True),
        (["/opt/caffe/build/tools/caffe.bin", "train", "--solver={solver}"], True),
        (["python3", "train.py", "--solver", "{solver}"], False),  # its own signal handling
        (["caffe", "test", "-solver", "{solver}"], False),
    ],
)
def test_only_caffe_train_is_trusted_to_snapshot_as_it_stops(tmp_path, command, stops):
    solver = tmp_path / "solver.prototxt"
    solver.write_text("base_lr: 0.01\n")
    effects = Effects.of([a.format(solver=solver) for a in command])
    assert effects.stop_snapshots == stops


@pytest.mark.parametrize("keep_trace", [False, True])
def test_the_trace_is_sampled_for_pictures_only_when_a_report_will_draw_them(keep_trace):
    # Parsing the sample costs most of the reading of a debug_info stream.
    m, _ = monitor(keep_trace=keep_trace)
    m.feed(training_log(30).encode())
    m.close()
    columns = m.reader.run.columns.items
    assert (len(columns) > 0) == keep_trace
