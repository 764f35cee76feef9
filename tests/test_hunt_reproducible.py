"""How hunt judges whether a failure comes back from its bundle, without Caffe: two replays
compared row by row, and the retry with one thread only where they disagree or stay finite.
(test_hunt_reproducible_caffe.py runs the same with real Caffe.)"""

import threading

import numpy as np
import pytest

from caffe_nantools import replay as replay_module
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.hunt.reproducibility import check_reproducible, compare, reproducibility
from caffe_nantools.hunt.stages import Stages
from caffe_nantools.hunt.training import Training
from caffe_nantools.replay import ReplayReport, Row


def row(name, what="data", nan=0, low=-1.5, high=2.0):
    return Row(what, name, 12, nan, 0, 0, 0, low, high, 0.75)


def report(*rows, iteration=6):
    done = ReplayReport(iteration)
    for r in rows:
        (done.forward if r.what == "data" else done.backward).append(r)
    return done


def finite(iteration=6):
    return report(row("feed: x"), row("dense: h"), row("dense: h", "diff"), iteration=iteration)


def failing(iteration=6, nan=3):
    return report(
        row("feed: x"), row("dense: h", nan=nan), row("dense: h", "diff"), iteration=iteration
    )


class Replays:
    """A stand-in for replay(): each call takes the next report of its kind (``many`` with
    the machine's threads, ``one`` with one thread), and the calls are counted."""

    def __init__(self, many, one=()):
        self.left = {None: list(many), 1: list(one)}
        self.calls = {None: 0, 1: 0}
        self.lock = threading.Lock()

    def __call__(self, bundle, *, gpu=None, threads=None):
        with self.lock:
            self.calls[threads] += 1
            return self.left[threads].pop(0)


@pytest.fixture
def replays(monkeypatch):
    def install(many, one=()):
        fake = Replays(many, one)
        monkeypatch.setattr(replay_module, "replay", fake)
        return fake

    return install


def test_replays_with_the_same_rows_and_figures_agree():
    assert compare(failing(), failing()) == []
    assert compare(finite(), finite()) == []


def test_a_count_or_a_value_that_differs_is_named_in_net_order():
    other = report(row("feed: x"), row("dense: h", high=2.5), row("dense: h", "diff", nan=1))
    assert compare(finite(), other) == [
        "first non-finite: none vs the diff of dense: h",
        "the data of dense: h: 0 NaN, 0 +inf, 0 -inf, 0 >=1e37, min -1.5, max 2 vs "
        "0 NaN, 0 +inf, 0 -inf, 0 >=1e37, min -1.5, max 2.5",
        "the diff of dense: h: 0 NaN, 0 +inf, 0 -inf, 0 >=1e37, min -1.5, max 2 vs "
        "1 NaN, 0 +inf, 0 -inf, 0 >=1e37, min -1.5, max 2",
    ]


def test_float32_rounding_is_agreement_and_a_missing_row_is_not():
    near = report(row("feed: x"), row("dense: h", high=2.0 * (1 + 1e-6)), row("dense: h", "diff"))
    assert compare(finite(), near) == []
    short = report(row("feed: x"), row("dense: h"))
    assert compare(finite(), short) == ["the diff of dense: h: measured in the first replay only"]


@pytest.mark.parametrize("iteration", [0, 41])
def test_a_failure_both_replays_show_alike_is_reproducible_without_a_retry(replays, iteration):
    fake = replays([failing(iteration), failing(iteration)])
    found = check_reproducible("bundle")
    assert (found.replays, found.agree, found.came_back, found.one_thread) == (2, True, True, None)
    assert found.verdict == "reproducible" and found.reproducible
    assert fake.calls == {None: 2, 1: 0}
    assert found.to_dict()["one_thread"] is None and "replay" not in found.to_dict()


def test_a_failure_that_does_not_come_back_is_retried_once_with_one_thread(replays):
    fake = replays([finite(9), finite(9)], [finite(9)])
    found = check_reproducible("bundle")
    assert fake.calls == {None: 2, 1: 1}
    assert (found.agree, found.came_back) == (True, False)
    assert found.one_thread.to_dict() == {"replays": 1, "agree": None, "came_back": False}
    assert found.verdict.startswith(
        "not reproducible from the state of iteration 9: the failure does not come back"
    )


def test_a_failure_only_one_thread_brings_back_is_the_threads(replays):
    replays([finite(), finite()], [failing()])
    found = check_reproducible("bundle")
    assert found.one_thread.came_back is True
    assert "one with one thread (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1) fails again" in (
        found.verdict
    )


@pytest.mark.parametrize("alone_agree", [True, False])
def test_replays_that_disagree_are_retried_twice_with_one_thread(replays, alone_agree):
    alone = [failing(), failing()] if alone_agree else [failing(nan=2), failing(nan=5)]
    fake = replays([failing(nan=1), failing(nan=4)], alone)
    found = check_reproducible("bundle")
    assert fake.calls == {None: 2, 1: 2}
    assert (found.agree, found.came_back) == (False, True)
    assert found.differences[0].startswith("the data of dense: h: ")
    assert found.one_thread.agree is alone_agree
    if alone_agree:
        assert "they agree: the threads (BLAS, OpenMP) change the result" in found.verdict
    else:
        assert "too: not the threads; the hardware, or random draws" in found.verdict


def test_a_failure_in_the_update_is_judged_by_agreement_alone(replays):
    fake = replays([finite(), finite()])
    found = check_reproducible("bundle", update=True)
    assert (found.verdict, found.came_back) == ("reproducible", None)
    assert fake.calls == {None: 2, 1: 0}


def failed(phase):
    return NonFiniteError(
        layer="check/ip",
        blob="ip",
        pass_="forward",
        phase=phase,
        iteration=3,
        stats=finite_stats(np.array([1.0, np.nan], np.float32)),
    )


@pytest.mark.parametrize(
    "training, why",
    [
        (Training(5, 1.0, "train.log"), "the training stayed finite: no failure to replay"),
        (
            Training(2, 1.0, "train.log", aborted=True, exit_code=134),
            "Caffe ended the training: no replay bundle",
        ),
        (
            Training(4, 1.0, "train.log", error=failed("TEST"), iteration=3),
            "a test pass failed: the bundle replays training iterations only",
        ),
        (
            Training(4, 1.0, "train.log", error=failed("TRAIN"), iteration=3),
            "no replay bundle was written",
        ),
    ],
)
def test_without_a_bundle_the_stage_says_why(training, why):
    stages = Stages()
    assert reproducibility(stages, training, snapshot=False) is None
    assert (stages[0].name, stages[0].status, stages[0].summary) == ("reproducible", "skipped", why)


@pytest.mark.parametrize("start, trained", [(300, 20), (12000, 7)])
def test_a_hunt_from_a_snapshot_that_stays_finite_says_the_failure_did_not_come_back(
    start, trained
):
    stages = Stages()
    training = Training(trained, 1.0, "train.log", start=start, skipped=start)
    found = reproducibility(stages, training, snapshot=True)
    assert (found.replays, found.came_back) == (0, False)
    assert found.verdict.startswith(
        f"not reproducible from the snapshot: iterations {start} to {start + trained - 1} stayed finite"
    )
    assert (stages[0].status, stages[0].summary) == ("found", found.verdict)
