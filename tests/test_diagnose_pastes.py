"""A generated corpus of damaged pastes: logs of the tests' layouts rewritten the ways pastes
get damaged (lines glued or wrapped, start or end cut, a fork's tag after glog's header, quoted
or indented, an abort line before the NaN, the ``Testing net`` header dropped), also as glog 0.5
and later date them (the year first). A log that holds
a NaN is never reported healthy, and a healthy one never gets a NaN: the count of false
all-clears over the corpus is 0."""

import os
import random
import re
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe_logs import CaffeLog
from caffe_nantools.diagnose import diagnose
from caffe_nantools.logs.opening import NotALogError


def with_trace_nan(bad_layer, iteration):
    log = CaffeLog().solving()
    for i in range(iteration):
        log.iteration(i)
    return log.iteration(
        iteration, loss="nan", set={("forward", bad_layer): "nan", ("forward", "loss"): "nan"}
    )


def with_loss_nan(iteration):
    log = CaffeLog().solving()
    for i in range(iteration):
        log.loss(i, f"{1.5 / (i + 1):g}").lr(i, "0.01")
    return log.loss(iteration, "-nan").lr(iteration, "0.01")


def with_test_nan(iteration):
    log = CaffeLog().solving()
    for i in range(iteration):
        log.iteration(i)
    return log.testing(iteration, loss="nan").iteration(iteration)


def with_backward_nan(iteration):
    log = CaffeLog().solving()
    for i in range(iteration):
        log.iteration(i)
    return log.iteration(iteration, set={("backward", "ip1"): "inf", ("backward", "relu1"): "nan"})


def healthy_log(iterations):
    log = CaffeLog().solving()
    for i in range(iterations):
        if i % 2 == 0:
            log.testing(i)
        log.iteration(i, loss=f"{2.0 / (i + 1):g}")
    return log


class Drawn:
    """Choices drawn by hypothesis."""

    def __init__(self, draw):
        self.draw = draw

    def number(self, low, high):
        return self.draw(st.integers(low, high))

    def pick(self, options):
        return self.draw(st.sampled_from(options))


class Seeded:
    """Choices from a seeded generator, for the measured corpus."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def number(self, low, high):
        return self.rng.randint(low, high)

    def pick(self, options):
        return self.rng.choice(options)


def quote(lines, choose):
    prefix = choose.pick(["> ", "    ", "\t", "`", "12: ", "[worker-1] ", "stderr: "])
    suffix = "`" if prefix == "`" else ""
    return [f"{prefix}{line}{suffix}" for line in lines]


def glue(lines, choose):
    k = choose.number(0, len(lines) - 2)
    return lines[:k] + [lines[k] + lines[k + 1]] + lines[k + 2 :]


def wrap(lines, choose):
    k = choose.number(0, len(lines) - 1)
    line = lines[k]
    cut = choose.number(1, max(1, len(line) - 1))
    return lines[:k] + [line[:cut], line[cut:]] + lines[k + 1 :]


def tag(lines, choose):
    label = choose.pick(["[rank 0] ", "<worker> ", "[0/4] "])
    return [line.replace("] ", "] " + label, 1) for line in lines]


def cut_start(lines, choose):
    """The start cut off, never past the first NaN (the paste must still hold it)."""
    bad = next((k for k, line in enumerate(lines) if "nan" in line or "inf" in line), len(lines))
    return lines[choose.number(0, min(len(lines) // 2, bad)) :]


def dated(lines, choose):
    """As glog 0.5 and later write it: the year before the month."""
    return [re.sub(r"^([IWEF])(\d{4}) ", r"\g<1>2024\2 ", line) for line in lines]


def drop_testing(lines, choose):
    return [line for line in lines if "Testing net" not in line]


DAMAGES = {
    "quote": quote,
    "glue": glue,
    "wrap": wrap,
    "tag": tag,
    "cut_start": cut_start,
    "drop_testing": drop_testing,
    "dated": dated,
}
ABORTS = [
    "F1121 07:12:40.000000 10203 data_transformer.cpp:63] Check failed: a <= b (1 vs. 0)",
    "Segmentation fault (core dumped)",
    "Killed",
    '*** Aborted at 1511248360 (unix time) try "date -d @1511248360" if you are using GNU date ***',
]


def make_log(choose, bad):
    if not bad:
        return healthy_log(choose.number(1, 4))
    kind = choose.pick(["trace", "loss", "test", "backward"])
    iteration = choose.number(0, 3)
    if kind == "trace":
        return with_trace_nan(choose.pick(["conv1", "ip1", "relu1"]), iteration)
    return {"loss": with_loss_nan, "test": with_test_nan, "backward": with_backward_nan}[kind](
        iteration
    )


def paste(choose, bad):
    """A log of the tests' layouts, damaged as pastes are: its text and the damages done."""
    lines = list(make_log(choose, bad).lines)
    names = [choose.pick(sorted(DAMAGES)) for _ in range(choose.number(0, 3))]
    if bad and choose.number(0, 1):
        nan_at = next(k for k, line in enumerate(lines) if "nan" in line or "inf" in line)
        lines.insert(choose.number(0, nan_at), choose.pick(ABORTS))
        names.append("abort before the NaN")
    for name in names:
        if name in DAMAGES:
            lines = DAMAGES[name](lines, choose)
    if not bad and choose.number(0, 1):
        lines = lines[: choose.number(1, len(lines))]  # a healthy log cut at its end
        names.append("cut_end")
    return "\n".join(lines) + "\n", names


@st.composite
def damaged(draw, bad: bool):
    return paste(Drawn(draw), bad)


def _diagnose(text):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "pasted.log")
        with open(path, "w") as f:
            f.write(text)
        return diagnose(path, keep_trace=True)  # a report's reading too


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(damaged(bad=True))
def test_a_pasted_log_holding_a_nan_is_never_reported_healthy(case):
    text, names = case
    result = _diagnose(text)
    assert result.cause != "none" and result.return_code == 1, (names, text)


@SETTINGS
@given(damaged(bad=False))
def test_a_healthy_pasted_log_never_gets_a_nan(case):
    text, names = case
    try:
        result = _diagnose(text)
    except NotALogError:  # a cut that leaves nothing of a Caffe log is a one-line error
        return
    assert result.cause == "none" and result.first_nonfinite is None, (names, text)


def test_the_measured_corpus_has_no_false_all_clear_and_no_false_nan():
    """The measure: 300 seeded pastes of each kind; the counts of wrong answers are 0."""
    false_all_clears = [
        names for names, result in _corpus(bad=True, count=300) if result.cause == "none"
    ]
    false_nans = [
        names
        for names, result in _corpus(bad=False, count=300)
        if result is not None and (result.cause != "none" or result.first_nonfinite)
    ]
    assert (len(false_all_clears), len(false_nans)) == (0, 0), (false_all_clears, false_nans)


def _corpus(bad, count):
    for seed in range(count):
        text, names = paste(Seeded(seed), bad)
        try:
            yield names, _diagnose(text)
        except NotALogError:
            assert not bad
            yield names, None


def _glued(iteration, tag=""):
    """A loss line with its train output glued on, as a paste that lost a line break has it,
    and the rate line; ``tag``: a fork's, after each glog header."""
    head = "I1121 07:12:32.00000{} 10203 {}] " + tag
    return (
        head.format(1, "solver.cpp:239")
        + f"Iteration {iteration} (12.5 iter/s, 0.08s/1 iters), loss = -nan"
        + head.format(2, "solver.cpp:258")
        + "    Train net output #0: loss = -nan (* 1 = -nan loss)"
        + head.format(3, "sgd_solver.cpp:112")
        + f"Iteration {iteration}, lr = 0.01\n"
    )


def test_records_glued_without_a_space_are_read_up_to_the_next_records_header(tmp_path):
    # Found by the property above: a paste that lost its line breaks glues a value to the next
    # record's glog header (`loss = -nanI1121 ...`); the rate's ", lr = " further on must not
    # take the loss line for a rate line.
    log = tmp_path / "glued.log"
    log.write_text(_glued(7))
    result = diagnose(str(log))
    assert result.cause != "none" and result.return_code == 1
    assert result.first_bad_iteration == 7


def test_a_forks_tag_before_the_message_is_read_even_in_glued_records(tmp_path):
    # Found by the property above: the start cut, every line tagged `] [rank 0] ` and the loss
    # glued to its train output, which was the only line that made the paste a Caffe log.
    log = tmp_path / "tagged.log"
    log.write_text(_glued(0, tag="[rank 0] "))
    result = diagnose(str(log))
    assert result.return_code == 1 and result.first_bad_iteration == 0
    assert result.first_nonfinite.line == 1
