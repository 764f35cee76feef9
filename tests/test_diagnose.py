"""diagnose on hand-made logs: which value went bad first, where, why, and what to change."""

import dataclasses
import gc
import json
import os
import tracemalloc

import pytest

from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.diagnose import Blame, FirstNonfinite, diagnose
from caffe_nantools.logs import chunks
from needs import need


def healthy(iterations=4, start=0):
    log = CaffeLog().solving()
    for i in range(start, start + iterations):
        log.iteration(i)
    return log


def test_a_log_without_non_finite_values_is_cause_none(tmp_path):
    result = diagnose(healthy().write(tmp_path / "train.log"))
    assert result.cause == "none" and result.first_nonfinite is None and result.debug_info


def test_the_first_layer_whose_top_went_bad_is_the_forward_origin(tmp_path):
    log = healthy()
    log.iteration(4, loss="nan", set={("forward", "ip1"): "nan", ("forward", "loss"): "nan"})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "layer_numerics"
    assert result.first_nonfinite == FirstNonfinite(
        iteration=4,
        pass_="forward",
        layer="ip1",
        blob="top ip1",
        line=log.line_of("Layer ip1, top blob ip1 data: nan"),
    )
    assert any("ip1, top blob ip1 data: nan" in e.text for e in result.evidence)
    assert any("Train net output #0: loss = nan" in e.text for e in result.evidence)


@pytest.mark.parametrize("spelling", ["nan", "-nan", "inf", "-inf", "3.40282e+38", "1e+37"])
def test_every_spelling_of_a_bad_value_counts(tmp_path, spelling):
    log = healthy()
    log.iteration(4, set={("forward", "relu1"): spelling})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.layer == "relu1"


def test_a_value_just_under_1e37_is_finite(tmp_path):
    log = healthy()
    log.iteration(4, set={("forward", "relu1"): "9.9e+36"})
    assert diagnose(log.write(tmp_path / "train.log")).cause == "none"


def test_a_pooling_that_outputs_minus_flt_max_is_blamed_not_the_layer_after_it(tmp_path):
    log = CaffeLog().solving()
    log.forward("data", "data", "0.77").forward("pool1", "pool1", "3.40282e+38")
    log.forward("ip1", "ip1", "inf", ["0.26", "0"]).forward("loss", "loss", "87.3365")
    log.loss(0, "87.3365").lr(0, "0.01")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.layer == "pool1" and result.cause == "layer_numerics"


def test_a_diff_that_went_bad_from_finite_top_diffs_is_the_backward_origin(tmp_path):
    log = healthy()
    log.iteration(4, set={("backward", "ip1"): "nan", ("backward", "relu1"): "nan"})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.pass_ == "backward" and result.first_nonfinite.layer == "ip1"
    assert result.first_nonfinite.blob == "bottom conv1" and result.cause == "layer_numerics"


def test_params_bad_at_the_start_of_an_iteration_went_bad_in_the_update(tmp_path):
    log = healthy()
    log.iteration(4, loss="nan", set={("forward", "conv1"): "nan", ("param", "conv1"): "nan"})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.pass_ == "update" and result.first_nonfinite.blob == "param 0"
    assert (
        result.cause == "exploding_gradients"
    )  # finite diffs, finite rate, display 1: the step overflowed


def test_an_update_origin_behind_undisplayed_iterations_is_not_guessed(tmp_path):
    log = CaffeLog().solving()
    for i in (0, 10, 20):
        log.iteration(i)
    log.iteration(30, loss="nan", set={("forward", "conv1"): "nan", ("param", "conv1"): "nan"})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "unknown" and any("display: 1" in a for a in result.advice)


def test_non_finite_data_from_the_data_layer_is_bad_input(tmp_path):
    log = healthy()
    log.iteration(
        4,
        loss="nan",
        set={("forward", layer): "nan" for layer in ("data", "conv1", "relu1", "ip1", "loss")},
    )
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "bad_input" and result.first_nonfinite.layer == "data"
    assert any("caffe-nantools scan" in a for a in result.advice)


def test_the_net_names_the_data_layers_and_their_source(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Data" top: "data" top: "label" data_param { source: "train_lmdb" '
        'backend: LMDB batch_size: 4 } }\nlayer { name: "conv1" type: "Convolution" bottom: "data" '
        'top: "conv1" convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "xavier" } } }\n'
    )
    log = healthy()
    log.iteration(
        4,
        loss="nan",
        set={("forward", layer): "nan" for layer in ("data", "conv1", "relu1", "ip1", "loss")},
    )
    result = diagnose(log.write(tmp_path / "train.log"), net=str(net))
    assert result.cause == "bad_input"
    assert any(f"caffe-nantools scan {net}" in a for a in result.advice)
    assert any("scan train_lmdb --write-clean" in a for a in result.advice)


def test_values_growing_by_orders_of_magnitude_before_the_nan_are_exploding_gradients(tmp_path):
    log = CaffeLog().solving()
    for i, scale in enumerate([1, 1.2, 30, 4e3, 2e6]):
        log.iteration(i, loss=f"{1.4 * scale:g}", scale=scale)
    log.iteration(5, loss="nan", scale=1e9, set={("forward", "loss"): "inf"})
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.5\nlr_policy: "fixed"\n')
    result = diagnose(log.write(tmp_path / "train.log"), solver=str(solver))
    assert result.cause == "exploding_gradients"
    assert result.blowup is not None and result.blowup.orders >= 3
    assert result.blowup.start[0] == 0 and result.blowup.end[0] == 5
    assert any("0.5 -> 0.05" in a and "solver.prototxt:2" in a for a in result.advice)
    assert any("clip_gradients" in a for a in result.advice)


@pytest.mark.parametrize("calm", [1, 3, 6])
def test_the_first_layer_to_grow_is_named_from_its_first_to_its_last_finite_value(tmp_path, calm):
    log = CaffeLog().solving()
    for i in range(calm):
        log.iteration(i)
    for i, diff in zip(range(calm, calm + 3), ["0.5", "40", "5000"]):
        log.iteration(i, set={("backward", "ip1"): diff})
    log.iteration(
        calm + 3, loss="nan", set={("backward", "ip1"): "nan", ("backward", "relu1"): "nan"}
    )
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "exploding_gradients" and result.blowup.layer == "ip1"
    start, end = (
        log.line_of("Layer ip1, bottom blob conv1 diff:"),
        log.line_of("Layer ip1, bottom blob conv1 diff: 5000"),
    )
    assert tuple(result.blowup.start) == (0, 0.004, start, log.lines[start - 1])
    assert tuple(result.blowup.end) == (calm + 2, 5000.0, end, log.lines[end - 1])


def test_debug_lines_of_a_test_pass_are_not_the_train_trace(tmp_path):
    log = CaffeLog().solving()
    log.testing(0, data_value="nan", loss="nan")
    log.iteration(0)
    log.iteration(1, set={("forward", "relu1"): "inf"})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.layer == "relu1" and result.first_nonfinite.iteration == 1


def test_a_block_belongs_to_the_iteration_of_the_loss_line_that_follows_it(tmp_path):
    log = CaffeLog().solving()
    log.iteration(0).iteration(5).iteration(10, set={("forward", "ip1"): "nan"})
    assert diagnose(log.write(tmp_path / "train.log")).first_nonfinite.iteration == 10


def test_a_non_finite_rate_is_the_lr_policy_and_the_solver_says_why(tmp_path):
    log = healthy(1)
    log.lines[-1] = log.lines[-1].replace("lr = 0.01", "lr = nan")
    log.iteration(1, loss="nan", set={("forward", "conv1"): "nan", ("param", "conv1"): "nan"})
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "poly"\npower: 1\n')
    result = diagnose(log.write(tmp_path / "train.log"), solver=str(solver))
    assert result.cause == "lr_policy"
    assert result.first_nonfinite == FirstNonfinite(
        iteration=0,
        pass_="lr",
        layer=None,
        blob=None,
        line=log.line_of("lr = nan"),
    )
    assert any("poly without max_iter" in a and "solver.prototxt:3" in a for a in result.advice)


def test_a_log_without_debug_info_says_how_to_turn_it_on(tmp_path):
    log = CaffeLog().solving()
    for i, value in enumerate(["1.4", "1.3", "1.2", "nan"]):
        log.loss(i, value).lr(i, "0.01")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "unknown" and not result.debug_info
    assert result.first_nonfinite.pass_ == "loss" and result.first_nonfinite.iteration == 3
    assert any("no debug_info" in s for s in result.summary)
    assert any("inject" in a and "--solver" in a for a in result.advice)


def test_a_loss_that_grew_by_orders_of_magnitude_is_exploding_even_without_a_trace(tmp_path):
    log = CaffeLog().solving()
    for i, value in enumerate(["2.3", "40", "9000", "3e6", "inf"]):
        log.loss(i, value).lr(i, "0.1")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "exploding_gradients" and result.blowup.what == "loss"


def test_a_check_layer_error_in_the_log_is_evidence(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 } } }\n'
        'layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" '
        'inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
    )
    log = CaffeLog().solving()
    log.loss(0, "1.4").lr(0, "0.01")
    log.glog(
        "caffe-nantools NonFiniteError: check 'check_data': blob 'data' forward data at iteration 1 (TRAIN): "
        "1 NaN, 0 +inf, 0 -inf in 12 values; bad samples [2] (1 of 4); finite values in [-1, 1]",
        level="E",
        source="check_finite.py:0",
    )
    result = diagnose(log.write(tmp_path / "train.log"), net=str(net))
    assert result.cause == "bad_input" and result.first_nonfinite.pass_ == "forward"
    assert result.first_nonfinite.blob == "data" and result.first_nonfinite.layer == "data"
    assert any("check_data" in e.text for e in result.evidence)


def test_a_crash_in_mid_iteration_still_finds_the_origin(tmp_path):
    log = healthy(3)
    log.trace(set={("forward", "ip1"): "inf"}, crash_after=("forward", "ip1"))
    log.raw("terminate called after throwing an instance of 'boost::python::error_already_set'")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.layer == "ip1" and result.first_nonfinite.iteration == 3
    assert any("about iteration 3" in s for s in result.summary)


def test_the_last_run_that_went_bad_is_the_one_diagnosed(tmp_path):
    log = healthy(2)
    log.iteration(2, set={("forward", "ip1"): "nan"})
    log.solving()
    for i in range(3):
        log.iteration(i)
    log.solving()
    log.iteration(0, set={("forward", "relu1"): "nan"})
    log.solving()
    log.iteration(0)
    result = diagnose(log.write(tmp_path / "train.log"))
    assert (result.run, result.runs) == (3, 4) and result.first_nonfinite.layer == "relu1"


def test_old_style_loss_lines_and_windows_line_breaks(tmp_path):
    log = CaffeLog(crlf=True).solving()
    log.trace().loss(0, "1.4", old_style=True).lr(0, "0.01")
    log.trace(set={("forward", "ip1"): "nan"}).loss(1, "nan", old_style=True).lr(1, "0.01")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.layer == "ip1" and result.first_nonfinite.iteration == 1
    assert not any("\r" in e.text for e in result.evidence)


def test_reading_in_tiny_chunks_gives_the_same_answer(tmp_path, monkeypatch):
    log = healthy(6)
    log.testing(6)
    log.iteration(6, loss="nan", set={("backward", "ip1"): "nan"})
    path = log.write(tmp_path / "train.log")
    whole = diagnose(path).to_dict()
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 97)
    assert diagnose(path).to_dict() == whole


def test_the_pieces_of_a_log_are_all_its_lines_numbered(tmp_path, monkeypatch):
    log = healthy(3)
    log.iteration(3, set={("forward", "ip1"): "-nan"})
    log.raw("no newline at the end")
    path = tmp_path / "train.log"
    path.write_text(log.text().rstrip("\n"))
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 50)
    numbered = {}
    suspects = []
    for piece in chunks.read_log(str(path)):
        if isinstance(piece, chunks.Marked):
            numbered[piece.line] = piece.text
        else:
            lines = piece.data.decode().split("\n")
            if lines[-1] == "":
                lines.pop()
            numbered.update(enumerate(lines, piece.line))
            if piece.suspect:
                suspects += [line for line in lines if "-nan" in line]
    assert numbered == dict(enumerate(log.lines, 1))
    assert suspects == [line for line in log.lines if "ip1 data: -nan" in line]


def test_a_log_is_read_in_constant_memory_also_when_its_nan_persists(tmp_path, monkeypatch):
    # Chunks must go as they are read: a generator that kept its StopIteration once held them
    # all in a reference cycle until the garbage collector came by.
    start = healthy(2).text()
    nan = CaffeLog().iteration(2, loss="nan", set={("forward", "ip1"): "nan"}).text()
    path = tmp_path / "train.log"
    path.write_text(start + nan * 4000)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 1 << 14)
    gc.disable()  # what keeps chunks alive shows only when no collection frees it
    tracemalloc.start()
    try:
        result = diagnose(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert result.first_bad_iteration == 2
    assert peak < os.path.getsize(path) // 2, (os.path.getsize(path), peak)


JSON_KEYS = {
    "log",
    "cause",
    "first_nonfinite",
    "origin",
    "warnings",
    "evidence",
    "advice",
    "summary",
    "debug_info",
    "blowup",
    "abort",
    "run",
    "runs",
}


@pytest.mark.parametrize("layer, iteration", [("conv1", 1), ("ip1", 3), ("ip1", 0)])
def test_where_it_showed_and_where_it_began_are_frozen_records_with_the_same_json(
    tmp_path, layer, iteration
):
    log = healthy()
    log.iteration(iteration, loss="nan", set={("forward", layer): "nan"})
    result = diagnose(log.write(tmp_path / "train.log"))
    line = log.line_of(f"Layer {layer}, top blob {layer} data: nan")
    first, began = result.first_nonfinite, result.began
    assert (first.iteration, first.pass_, first.layer, first.blob, first.line) == (
        iteration,
        "forward",
        layer,
        f"top {layer}",
        line,
    )
    assert isinstance(began, Blame) and (began.layer, began.pass_, began.iteration) == (
        layer,
        "forward",
        iteration,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.layer = "elsewhere"
    # Byte for byte what the JSON said when these were dicts: the same keys in the same order.
    text = result.to_json()
    assert (
        '  "first_nonfinite": {\n'
        f'    "iteration": {iteration},\n'
        '    "pass": "forward",\n'
        f'    "layer": "{layer}",\n'
        f'    "blob": "top {layer}",\n'
        f'    "line": {line}\n'
        "  },\n"
        '  "origin": {\n'
        f'    "layer": "{layer}",\n'
        '    "pass": "forward",\n'
        f'    "iteration": {iteration},\n'
        '    "why": '
    ) in text
    assert list(json.loads(text)["origin"]) == ["layer", "pass", "iteration", "why"]


def test_a_run_that_stayed_finite_has_null_for_both_places(tmp_path):
    text = diagnose(healthy().write(tmp_path / "train.log")).to_json()
    assert '  "first_nonfinite": null,\n  "origin": null,\n' in text


def test_json_keeps_the_documented_shape(tmp_path, capsys):
    log = healthy()
    log.iteration(4, loss="nan", set={("forward", "ip1"): "nan"})
    path = log.write(tmp_path / "train.log")
    code = main(["diagnose", path, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and set(out) == JSON_KEYS
    assert (out["log"], out["cause"], out["run"], out["runs"], out["debug_info"]) == (
        path,
        "layer_numerics",
        1,
        1,
        True,
    )
    nan_line = log.line_of("Layer ip1, top blob ip1 data: nan")
    assert out["first_nonfinite"] == {
        "iteration": 4,
        "pass": "forward",
        "layer": "ip1",
        "blob": "top ip1",
        "line": nan_line,
    }
    assert (
        set(out["origin"]) == {"layer", "pass", "iteration", "why"}
        and out["origin"]["layer"] == "ip1"
    )
    assert out["evidence"][0] == {"line": nan_line, "text": log.lines[nan_line - 1]}
    assert all(e == {"line": e["line"], "text": log.lines[e["line"] - 1]} for e in out["evidence"])
    assert (out["blowup"], out["abort"], out["warnings"]) == (None, None, [])
    assert out["advice"] and all(isinstance(a, str) for a in out["advice"] + out["summary"])


def test_the_report_reads_as_cause_story_evidence_advice(tmp_path, capsys):
    log = healthy()
    log.iteration(4, loss="nan", set={("forward", "ip1"): "nan"})
    assert main(["diagnose", log.write(tmp_path / "train.log")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("cause: layer_numerics")
    assert "evidence:" in out and "advice:" in out and "layer 'ip1'" in out


def test_a_clean_log_exits_0(tmp_path, capsys):
    assert main(["diagnose", healthy().write(tmp_path / "train.log")]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.log"], "missing.log: no such file"),
        (["{log}", "--solver", "nope.prototxt"], "nope.prototxt: no such file"),
        (["{log}", "--net", "{bad}"], "bad.prototxt:2:1: expected a value"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.prototxt").write_text("layer { name: \n")
    log = healthy().write(tmp_path / "train.log")
    assert main(["diagnose"] + [a.format(log=log, bad="bad.prototxt") for a in args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_the_plot_draws_a_hundred_layer_trace(tmp_path):
    need("matplotlib")
    log = CaffeLog().solving()
    layers = [f"conv{i}" for i in range(120)]
    for i in range(30):
        for k, layer in enumerate(layers):
            log.forward(layer, layer, "nan" if (i == 29 and k >= 60) else f"{0.5 + i:g}", ["0.2"])
        for layer in reversed(layers):
            log.backward(layer, layer, "0.001")
        log.loss(i, "nan" if i == 29 else "1.3").lr(i, "0.01")
    out = tmp_path / "trace.png"
    result = diagnose(log.write(tmp_path / "train.log"), plot=str(out))
    assert result.first_nonfinite.layer == "conv60"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.trace.layers) == 120


def test_a_plot_that_cannot_be_written_is_a_one_line_error(tmp_path, capsys):
    need("matplotlib")
    code = main(
        [
            "diagnose",
            healthy().write(tmp_path / "train.log"),
            "--plot",
            str(tmp_path / "no" / "dir" / "x.png"),
        ]
    )
    assert code == 2 and "no such folder" in capsys.readouterr().err


def test_clipping_that_did_not_stop_the_blow_up_is_told(tmp_path):
    log = CaffeLog().solving()
    for i, scale in enumerate([1, 30, 4e3, 2e6]):
        log.iteration(i, loss=f"{1.4 * scale:g}", scale=scale)
        log.glog(
            f"Gradient clipping: scaling down gradients (L2 norm {9 * scale:g} > 10) by scale factor 0.5",
            source="sgd_solver.cpp:99",
        )
    log.iteration(4, loss="nan", scale=1e9, set={("forward", "loss"): "inf"})
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause == "exploding_gradients"
    assert any("clip_gradients scaled the gradients down 4 times" in s for s in result.summary)


def test_poly_past_max_iter_with_a_fractional_power_is_explained(tmp_path):
    log = CaffeLog().solving()
    for i, rate in enumerate(["0.01", "0.007", "0", "nan"]):
        log.iteration(i, lr=rate)
    log.iteration(4, loss="nan", set={("forward", "conv1"): "nan", ("param", "conv1"): "nan"})
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "poly"\npower: 0.5\nmax_iter: 2\n'
    )
    result = diagnose(log.write(tmp_path / "train.log"), solver=str(solver))
    assert result.cause == "lr_policy" and result.first_nonfinite.iteration == 3
    assert any("past max_iter 2" in a and "fractional" in a for a in result.advice)


def test_a_run_that_starts_after_a_bad_loss_is_read_on(tmp_path):
    """Pieces pasted in any order: a new run between a bad loss line and its outputs."""
    log = CaffeLog().solving()
    log.glog("Iteration 100 (100 iter/s, 1s/100 iters), loss = -nan")
    log.solving()
    log.glog("    Train net output #0: loss = 2.3 (* 1 = 2.3 loss)", source="solver.cpp:258")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.cause in ("unknown", "none") and result.runs >= 1


@pytest.mark.parametrize("where", ["loss", "data_value"])
def test_a_test_pass_that_goes_non_finite_while_training_stays_finite_is_said(
    tmp_path, capsys, where
):
    log = healthy(3)
    log.testing(3, **{where: "nan"})
    log.iteration(3)
    path = log.write(tmp_path / "train.log")
    result = diagnose(path)
    if where == "loss":
        assert result.first_nonfinite.pass_ == "test" and result.first_nonfinite.blob == "loss"
        assert result.first_nonfinite.iteration == 3 and any(
            "TEST net" in s for s in result.summary
        )
        assert main(["diagnose", path]) == 1
    else:
        # A test pass's trace lines are not the train trace and its outputs stayed finite, but
        # a NaN in the file is never an all-clear: the second pass names the line.
        line = log.line_of("top blob data data: nan")
        assert result.cause == "unknown" and result.first_nonfinite.line == line
        assert any(f"line {line}" in s for s in result.summary)
        assert main(["diagnose", path]) == 1


def test_a_pasted_test_output_line_without_its_testing_line_counts(tmp_path):
    log = healthy(2)
    log.glog("    Test net output #0: accuracy = -nan", source="solver.cpp:414")
    result = diagnose(log.write(tmp_path / "train.log"))
    assert result.first_nonfinite.pass_ == "test" and result.first_nonfinite.blob == "accuracy"
