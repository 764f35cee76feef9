"""Runs that abort: a failed CHECK, glog's F lines, stack traces, Python layers' exceptions."""

import json

import pytest

from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.cause import named_by
from caffe_nantools.diagnose import diagnose

STACK = [
    "    @     0x7f84859db5ad  google::LogMessage::Fail()",
    "    @     0x7f8485fdc0e2  caffe::caffe_rng_uniform<>()",
    "    @     0x7f848600ac36  caffe::SampleBBox()",
    "    @     0x7f848600af80  caffe::GenerateSamples()",
]


def healthy(iterations):
    log = CaffeLog().solving()
    for i in range(iterations):
        log.loss(i * 10, f"{2.3 - i * 0.1:g}").lr(i * 10, "0.01")
    return log


@pytest.mark.parametrize("iterations", [0, 1, 4])
@pytest.mark.parametrize(
    "check, source",
    [
        ("Check failed: label_value < num_labels (7 vs. 5)", "accuracy_layer.cpp:72"),
        (
            "Check failed: bottom[0]->count() == bottom[1]->count() (40 vs. 10) EUCLIDEAN_LOSS layer inputs must have "
            "the same count.",
            "euclidean_loss_layer.cpp:12",
        ),
        ("Check failed: cv_img.data Could not load /data/imgs/0042.jpg", "image_data_layer.cpp:38"),
    ],
)
def test_a_failed_check_with_every_value_finite_is_caffe_abort(
    tmp_path, capsys, iterations, check, source
):
    log = healthy(iterations)
    log.glog(check, level="F", source=source)
    log.raw("*** Check failure stack trace: ***")
    path = log.write(tmp_path / "train.log")
    result = diagnose(path)
    assert result.cause == "caffe_abort" and "caffe_abort" in named_by("diagnose")
    assert result.first_nonfinite is None
    assert result.abort == {"line": log.line_of(check), "text": log.lines[log.line_of(check) - 1]}
    assert any(check in s for s in result.summary)
    assert main(["diagnose", path, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["abort"]["line"] == log.line_of(check)


@pytest.mark.parametrize(
    "lead", ["", "> ", "    ", "F0305 11:01:02.000300 4242 math_functions.cpp:250] "]
)
def test_the_box_sampler_s_empty_range_is_explained(tmp_path, lead):
    log = healthy(2)
    log.raw(f"{lead}Check failed: a <= b (0 vs. -1.19209e-07)")
    log.raw("*** Check failure stack trace: ***")
    for frame in STACK:
        log.raw(frame)
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort" and result.abort["line"] == log.line_of("Check failed")
    assert any("SampleBBox" in s for s in result.summary) and any(
        "batch_sampler" in s for s in result.summary
    )
    assert any("caffe-nantools scan" in a for a in result.advice)


def test_caffe_rng_uniform_without_a_sampler_is_the_data_pipeline(tmp_path):
    log = healthy(1)
    log.glog(
        "Check failed: a <= b (1.15008 vs. 0.869504)", level="F", source="math_functions.cpp:250"
    )
    log.raw("*** Check failure stack trace: ***")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort"
    assert any("caffe_rng_uniform" in s and "empty range" in s for s in result.summary)


def test_a_fatal_line_that_is_no_check_is_an_abort_too(tmp_path):
    log = healthy(0)
    log.glog(
        "Unknown bottom blob 'data2' (layer 'conv1', bottom index 0)",
        level="F",
        source="net.cpp:95",
    )
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort" and "Unknown bottom blob" in result.abort["text"]


@pytest.mark.parametrize(
    "error",
    [
        "ZeroDivisionError: float division by zero",
        "KeyError: 'label'",
        "my_layers.BadShape: 3 != 4",
        "StopIteration",
    ],
)
@pytest.mark.parametrize("frames", [1, 3])
def test_a_python_layer_s_traceback_names_its_exception_and_frame(tmp_path, error, frames):
    log = healthy(2)
    log.raw("Traceback (most recent call last):")
    for k in range(frames):
        log.raw(f'  File "/home/me/layers/layer{k}.py", line {10 + k}, in step{k}')
        log.raw(f"    value = compute{k}(bottom)")
    log.raw(error)
    log.raw("terminate called after throwing an instance of 'boost::python::error_already_set'")
    log.raw(
        '*** Aborted at 1508138445 (unix time) try "date -d @1508138445" if you are using GNU date ***'
    )
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort"
    assert result.abort == {"line": log.line_of(error), "text": error}
    last = frames - 1
    assert any(
        error in s and f"step{last}" in s and f"layer{last}.py:{10 + last}" in s
        for s in result.summary
    )


def test_only_a_crash_line_is_still_an_abort(tmp_path):
    log = healthy(3)
    log.raw(
        '*** Aborted at 1508138445 (unix time) try "date -d @1508138445" if you are using GNU date ***'
    )
    log.raw("*** SIGSEGV (@0x0) received by PID 4242 (TID 0x7f) from PID 0; stack trace: ***")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort" and result.abort["line"] == log.line_of("Aborted at")


def test_a_markdown_escaped_stack_trace_line_counts(tmp_path):
    log = healthy(1)
    log.raw("**\\* Check failure stack trace: ***")
    assert diagnose(log.write(tmp_path / "train.log")).cause == "caffe_abort"


def test_a_non_finite_value_before_the_abort_keeps_its_cause(tmp_path):
    log = CaffeLog().solving()
    for i in range(2):
        log.iteration(i)
    log.iteration(2, loss="nan", set={("forward", "ip1"): "nan"})
    log.glog("Check failed: !std::isnan(value)", level="F", source="my_layer.cpp:40")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "layer_numerics" and result.first_nonfinite.layer == "ip1"
    assert result.abort["line"] == log.line_of("isnan")
    assert any("aborted" in s for s in result.summary)


def test_the_run_that_aborted_is_chosen_over_a_clean_one_before_it(tmp_path):
    log = healthy(3).solving()
    log.loss(0, "2.3")
    log.glog(
        "Check failed: label_value >= 0 (-1 vs. 0)", level="F", source="softmax_loss_layer.cpp:90"
    )
    result = diagnose(log.write(tmp_path / "train.log"))
    assert (result.run, result.runs, result.cause) == (2, 2, "caffe_abort")
    assert any("label" in s for s in result.summary)


def test_a_stack_of_glogs_own_frames_only_adds_no_line(tmp_path):
    log = healthy(2)
    log.glog("Check failed: error == cudaSuccess (2 vs. 0)  out of memory", level="F")
    log.raw("*** Check failure stack trace: ***")
    log.raw(STACK[0])
    log.raw("    @     0x7f84859db5ad  google::LogMessage::SendToLog()")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "caffe_abort"
    assert not any(s.strip() in ("in", "in ") or s.startswith("in ") for s in result.summary)
