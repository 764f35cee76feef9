"""--report for diagnose (and the library's report.write_html / write_markdown): one page a browser
opens offline with the verdict, the curves, the per-layer trace and the evidence; Markdown that
GitHub renders as tables, a folded evidence block and code; --redact for posting it."""

import os
import re
import socket
import sys

import pytest

from browser import chromium
from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.diagnose import Reader, diagnose
from caffe_nantools import report
from caffe_nantools.logs import read_log
from caffe_nantools.report import plots, render
from caffe_nantools.report.trace import trace_of
from needs import need
from report_checks import check_html, check_markdown


def exploding(growth=(1, 30, 4e3, 2e6), bad_layer="ip1", lr="0.001") -> CaffeLog:
    """Values that grow over the iterations until ``bad_layer`` goes NaN, a check layer beside
    each blob (as hunt's copies have), a constant rate."""
    log = CaffeLog().solving()
    for i, scale in enumerate(growth):
        log.iteration(i, loss=f"{1.4 * scale:g}", lr=lr, scale=scale)
    last = len(growth)
    log.trace(set={("forward", bad_layer): "nan"}).loss(last, "nan").lr(last, lr)
    return log


def test_the_html_report_of_a_blow_up_opens_offline_with_the_verdict_and_plots(tmp_path):
    need("matplotlib")
    log = exploding(bad_layer="relu1").write(tmp_path / "train.log")
    assert main(["diagnose", log, "--report", str(tmp_path / "blowup.html")]) == 1
    text = (tmp_path / "blowup.html").read_text()
    assert "<script" not in text and not re.search(r'(?:src|href)="(?!#|data:)', text)
    shown = check_html(tmp_path / "blowup.html", ["relu1", "iteration 4"], first_bad_row=False)
    assert len(shown["plots"]) == 6  # loss, lr, two heatmaps, the profile, the outputs


def test_the_markdown_report_parses_as_github_renders_it(tmp_path):
    log = exploding(bad_layer="ip1").write(tmp_path / "train.log")
    assert main(["diagnose", log, "--report", str(tmp_path / "r.md")]) == 1
    text = (tmp_path / "r.md").read_text()
    check_markdown(text)
    assert "exploding_gradients" in text and "| 4 | forward | ip1 |" in text


def test_a_markdown_report_of_a_huge_evidence_stays_under_githubs_limit():
    d = diagnose.__wrapped__ if hasattr(diagnose, "__wrapped__") else None
    assert d is None  # diagnose is a plain function: the page is built from its result
    from caffe_nantools.diagnose.reading import Evidence
    from caffe_nantools.report.page import Page

    page = Page("diagnose", "x.log", "unknown")
    page.evidence = [(n, "I1121 " + "x" * 300) for n in range(1000)]
    from caffe_nantools.report import markdown

    text = markdown.render(page)
    assert 60000 < len(text) < 65536 - 1000 and "cut to fit a comment" in text
    assert Evidence  # the evidence type the page carries


def test_redact_replaces_the_home_and_working_folders_and_the_host(tmp_path, monkeypatch):
    home = tmp_path / "home" / "alice"
    work = home / "project-x"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    log = CaffeLog().solving()
    log.raw(f"Running on machine: {socket.gethostname()}")
    for i in range(3):
        log.iteration(i)
    log.trace(set={("forward", "conv1"): "inf"}).loss(3, "inf").lr(3, "0.01")
    path = log.write(work / "train.log")
    result = diagnose(path)
    for suffix in (".md", ".html"):
        plain = render(result, "markdown" if suffix == ".md" else "html")
        assert str(work) in plain
        redacted = render(result, "markdown" if suffix == ".md" else "html", redact=True)
        assert str(home) not in redacted and "{workdir}/train.log" in redacted
    out = str(tmp_path / "r.md")
    assert report.write_markdown(result, out, redact=True) == out


def test_without_matplotlib_the_page_keeps_every_table_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "pyplot", lambda: None)
    result = diagnose(exploding().write(tmp_path / "train.log"), keep_trace=True)
    text = render(result, "html")
    assert "need matplotlib" in text and "<svg" not in text
    assert "forward mean |x|" in text and "Evidence" in text


def test_the_trace_drawn_has_the_users_layers_and_the_failing_iteration_named(tmp_path):
    log = CaffeLog().solving()
    for i in range(4):
        log.forward("data", "data", "0.5").forward("nancheck/data", "data", "0.5")
        log.forward("conv1", "conv1", f"{i + 1}").forward(
            "nancheck/conv1@conv1", "conv1", f"{i + 1}"
        )
        log.loss(i, "1.0").lr(i, "0.001")
    # A check stops iteration 4 in its forward pass: no loss line closes the block.
    log.forward("data", "data", "0.5").forward("nancheck/data", "data", "0.5")
    log.forward("conv1", "conv1", "inf").forward("nancheck/conv1@conv1", "conv1", "inf")
    log.raw(
        "caffe-nantools NonFiniteError: check 'nancheck/conv1@conv1': blob 'conv1' forward data "
        "at iteration 4 (TRAIN): 0 NaN, 3 +inf, 0 -inf in 8 values"
    )
    diagnosis = diagnose(log.write(tmp_path / "train.log"), keep_trace=True)
    trace = trace_of(diagnosis.trace, diagnosis.first_bad_iteration)
    assert trace.layers == ["data", "conv1"]
    assert trace.labels == ["0", "1", "2", "3", "4"] and trace.failing == 4
    assert trace.columns[4].forward["conv1"] == float("inf")


def test_a_constant_rate_is_drawn_from_zero_not_on_its_rounding_noise():
    plt = need("matplotlib.pyplot")
    fig = plt.figure()
    ax = fig.add_subplot()
    plots.series(ax, [(i, 0.001) for i in range(20)], "lr", "tab:orange")
    low, high = ax.get_ylim()
    plt.close(fig)
    assert low == 0 and high >= 0.001 * 1.2


def test_a_report_path_that_cannot_be_written_stops_diagnose_first(tmp_path, capsys):
    log = exploding().write(tmp_path / "train.log")
    assert main(["diagnose", log, "--report", str(tmp_path / "r.pdf")]) == 2
    assert "--report" in capsys.readouterr().err
    assert main(["diagnose", log, "--report", str(tmp_path / "no" / "r.html")]) == 2
    assert not os.path.exists(tmp_path / "no")


@pytest.mark.parametrize("kind", ["html", "markdown"])
def test_the_library_writes_either_format_whatever_the_suffix(tmp_path, kind):
    result = diagnose(exploding().write(tmp_path / "train.log"))
    write = report.write_html if kind == "html" else report.write_markdown
    out = write(result, str(tmp_path / "report.txt"))
    with open(out) as f:
        head = f.read(20)
    assert head.startswith("<!DOCTYPE html>" if kind == "html" else "### caffe-nantools")


def with_outputs(names, bad=None, iterations=8, test_every=4, runs=1) -> CaffeLog:
    """A log whose train net outputs ``names`` (after the loss, output #0), tested every
    ``test_every`` iterations; ``bad`` = (name, iteration): that output goes NaN from there."""
    log = CaffeLog()
    for _ in range(runs):
        log.solving()
        for i in range(iterations):
            if i % test_every == 0:
                log.testing(i, loss=f"{2.0 - i / 10:g}")
                log.glog("    Test net output #1: top5 = 0.5", source="solver.cpp:414")
            log.loss(i, f"{1.5 - i / 20:g}")
            for k, name in enumerate(names, 1):
                value = "nan" if bad and name == bad[0] and i >= bad[1] else f"{k + i / 100:g}"
                log.glog(f"    Train net output #{k}: {name} = {value}", source="solver.cpp:258")
            log.lr(i, "0.01")
    return log


def curves_of_runs(path, displays=True):
    """Each run's curves as diagnose reads them for a report."""
    reader = Reader(plot=True)
    return [
        run.curves for run in reader.feed_all(read_log(str(path), sweep=True, displays=displays))
    ]


@pytest.mark.parametrize(
    "names, bad", [(["accuracy"], ("accuracy", 5)), (["a", "b", "c"], ("b", 2))]
)
def test_each_output_is_a_curve_with_its_first_non_finite_value(tmp_path, names, bad):
    log = with_outputs(names, bad).write(tmp_path / "train.log")
    outputs = diagnose(log, keep_trace=True).trace.curves.outputs
    assert [(o.phase, o.name) for o in outputs] == [("train", "loss")] + [
        ("train", n) for n in names
    ] + [("test", "loss"), ("test", "top5")]
    by_name = {(o.phase, o.name): o for o in outputs}
    assert by_name[("train", bad[0])].first_bad[0] == bad[1]
    assert [o.name for o in outputs if o.first_bad] == [bad[0]]
    assert by_name[("test", "loss")].points == [(0, 2.0), (4, 1.6)]
    md = render(diagnose(log, keep_trace=True), "markdown")
    check_markdown(md)
    assert f"| train | `{bad[0]}` | 8 |" in md and f"iteration {bad[1]}: nan" in md


def test_the_outputs_are_the_diagnosed_runs(tmp_path):
    log = with_outputs(["acc"], iterations=3, runs=2)
    log.solving().loss(0, "1.0").lr(0, "0.01")
    runs = curves_of_runs(log.write(tmp_path / "train.log"))
    assert [[o.count for o in r.outputs if o.name == "acc"] for r in runs] == [[3], [3], []]
    assert [(o.name, o.points) for o in runs[2].outputs] == [("loss", [(0, 1.0)])]


@pytest.mark.parametrize("bad", [None, ("acc", 3000), ("top1", 10)])
def test_a_long_runs_curves_read_in_bulk_are_the_ones_read_line_by_line(tmp_path, bad):
    """Thousands of display lines in a row are taken in bulk (only the kept points parsed):
    the curves are the same as a reading of every line makes them."""
    log = with_outputs(["acc", "top1"], bad, iterations=5000, test_every=1000)
    path = log.write(tmp_path / "train.log")
    bulk, each = curves_of_runs(path), curves_of_runs(path, displays=False)
    assert len(bulk) == len(each) == 1
    for name in ("loss", "rate"):
        a, b = getattr(bulk[0], name), getattr(each[0], name)
        assert (a.count, a.points, a.bad) == (b.count, b.points, b.bad) and a.count == 5000
    assert [(o.phase, o.name, o.count, o.points, o.bad) for o in bulk[0].outputs] == [
        (o.phase, o.name, o.count, o.points, o.bad) for o in each[0].outputs
    ]
    assert len(bulk[0].outputs) == 5


def test_without_keep_trace_the_page_says_the_curves_were_not_kept(tmp_path):
    log = with_outputs(["acc"]).write(tmp_path / "train.log")
    page = report.page_of(diagnose(log))
    assert page.outputs == [] and any("keep_trace=True" in n for n in page.notes)


def test_many_outputs_stay_readable_drawn_small_and_all_listed(tmp_path):
    need("matplotlib")
    names = [f"out_{k:02d}" for k in range(40)]
    log = with_outputs(names, bad=("out_33", 6)).write(tmp_path / "train.log")
    result = diagnose(log, keep_trace=True)
    report.write_html(result, str(tmp_path / "many.html"))
    shown = check_html(tmp_path / "many.html", [], first_bad_row=False)
    text = (tmp_path / "many.html").read_text()
    section = text.split('id="outputs"')[1].split("</section>")[0]
    assert "43 outputs, 1 of them non-finite; the first 24 drawn" in section
    assert section.count("<tr") == 44 and section.count('<tr class="bad">') == 1
    assert len(shown["plots"]) == 3  # the loss, the rate, the outputs' small plots
    md = render(result, "markdown")
    assert "**Outputs** (43; the first 30)" in md
    assert "| train | `out_28` |" in md and "| train | `out_33` |" not in md


def fix_page(diff, files=None):
    from caffe_nantools.report.page import Page

    fix = {"change": "base_lr 0.5 -> 0.05", "state": "verified", "diff": diff}
    fix["files"] = files or {
        "solver": "hunt/fix-1/solver.prototxt",
        "net": "hunt/fix-1/net.prototxt",
    }
    evidence = [(7, "Iteration 7, loss = nan")]
    return Page("hunt", "hunt", "exploding_gradients", fix=fix, evidence=evidence)


LR_DIFF = (
    "--- solver.prototxt\tyours\n+++ solver.prototxt\tfixed\n@@ -1,3 +1,3 @@\n"
    ' net: "net.prototxt"\n-base_lr: 0.5\n+base_lr: 0.05\n momentum: 0.9\n'
)


def test_the_fix_is_a_diff_with_its_lines_styled_and_the_command_to_run(tmp_path):
    from caffe_nantools.report import html, markdown

    page = fix_page(LR_DIFF)
    text = html.render(page)
    block = text.split('<pre class="diff" id="fix-diff">')[1].split("</pre>")[0]
    assert '<span class="del">-base_lr: 0.5</span><span class="add">+base_lr: 0.05</span>' in block
    assert '<span class="hunk">@@ -1,3 +1,3 @@</span>' in block and " momentum: 0.9\n" in block
    assert "caffe train -solver hunt/fix-1/solver.prototxt" in text
    md = markdown.render(page)
    fences = [t for t in check_markdown(md, table=True) if t.type == "fence"]
    diff = next(t.content for t in fences if t.info == "diff")
    assert diff == LR_DIFF.replace("\t", "\t")
    assert any(t.info == "sh" and "caffe train -solver" in t.content for t in fences)


def test_a_huge_diff_is_cut_to_fit_a_comment_with_a_note():
    from caffe_nantools.report import markdown

    lines = "".join(f'-  source: "a{k}"\n+  source: "b{k}"\n' for k in range(5000))
    md = markdown.render(fix_page("--- net.prototxt\tyours\n+++ net.prototxt\tfixed\n" + lines))
    assert len(md) < 65536 - 4096 and "more lines cut to fit a comment" in md
    assert md.count("```") % 2 == 0


def test_redact_applies_to_the_diff_and_the_command(tmp_path, monkeypatch):
    from caffe_nantools.report import html, markdown, redact

    monkeypatch.chdir(tmp_path)
    clean = str(tmp_path / "hunt" / "clean" / "pixels")
    diff = (
        "--- net.prototxt\tyours\n+++ net.prototxt\tfixed\n@@ -1 +1 @@\n"
        f'-  source: "pixels"\n+  source: "{clean}"\n'
    )
    page = fix_page(diff, {"solver": str(tmp_path / "hunt" / "fix" / "solver.prototxt")})
    for text in (
        html.render(page, escape=lambda t: redact.redact(t)),
        markdown.render(page, redact.redact),
    ):
        assert str(tmp_path) not in text
        assert '{workdir}/hunt/clean/pixels"' in text
        assert "caffe train -solver {workdir}/hunt/fix/solver.prototxt" in text


#: The largest report of any log (the HTML; the Markdown stays within a comment).
LARGEST = 3 * 2**20


def stretches(iterations):
    """(first, last, count) of each run of consecutive iterations in ``iterations``."""
    out = []
    for i in sorted(iterations):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i, out[-1][2] + 1)
        else:
            out.append((i, i, 1))
    return out


@pytest.mark.parametrize(
    "iterations, loss_bad, accuracy_bad",
    [
        (5000, {37, 2500, 2501, 2502} | set(range(4900, 5000)), set(range(300, 340))),
        (8000, {7999} | set(range(4777, 4790)), {0, 2, 4, 7998}),
    ],
)
def test_a_long_log_gives_a_small_page_that_keeps_every_non_finite_value(
    tmp_path, iterations, loss_bad, accuracy_bad
):
    """Past the thinning of the curves (2000 finite points each), a log's size no longer weighs
    on its page: the page of diagnose on a 1 GB log is benchmarks/report_size.py's (run by
    docker/run-benchmark report_size, its targets 3 MB and every non-finite value)."""
    need("matplotlib")
    log = CaffeLog().solving()
    for i in range(iterations):
        log.loss(i, "nan" if i in loss_bad else f"{1.5 + (i % 89) / 100:g}")
        accuracy = "-inf" if i in accuracy_bad else f"{0.2 + (i % 41) / 100:g}"
        log.glog(f"    Train net output #1: accuracy = {accuracy}", source="solver.cpp:258")
        log.lr(i, "0.01")
    result = diagnose(log.write(tmp_path / "train.log"), keep_trace=True)
    out = report.write_html(result, str(tmp_path / "long.html"))
    assert os.path.getsize(out) < LARGEST
    curves = report.page_of(result).curves
    accuracy = next(o for o in curves.outputs if o.name == "accuracy")
    kept = {
        name: [(s.first[0], s.last[0], s.count) for s in curve.bad]
        for name, curve in (("loss", curves.loss), ("accuracy", accuracy))
    }
    assert kept == {"loss": stretches(loss_bad), "accuracy": stretches(accuracy_bad)}
    # Each stretch's ends are among the points drawn, the finite values thinned.
    drawn = curves.loss.points
    assert {p[0] for p in drawn} >= {i for s in kept["loss"] for i in s[:2]}
    assert len(drawn) <= 2001 + 2 * len(kept["loss"])
    with open(out) as f:
        assert f"{len(loss_bad)} non-finite in all, each marked" in f.read()
    assert check_html(out, [f"iteration {min(loss_bad)}"], first_bad_row=False)["plots"]
    md = render(result, "markdown")
    check_markdown(md, table=True)
    assert f"| train | `accuracy` | {iterations} |" in md


def test_the_page_of_a_gigabyte_log_opens_small_with_every_non_finite_value(tmp_path):
    """diagnose on a 1 GB log (a training without debug_info that blows up at its end, as
    benchmarks/diagnose_speed.py writes it), its page opened in the browser: small, offline,
    its plots drawn, the loss's and the output's NaNs each kept."""
    need("matplotlib")
    chromium()  # before a gigabyte is written for nothing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
    from diagnose_speed import write_log

    log = str(tmp_path / "gigabyte.log")
    try:
        bad = write_log(log, 1024, debug_info=False)
        assert os.path.getsize(log) >= 2**30
        result = diagnose(log, keep_trace=True)
    finally:
        os.remove(log)  # a gigabyte left behind would stay in the image's layer
    out = report.write_html(result, str(tmp_path / "gigabyte.html"))
    assert os.path.getsize(out) < LARGEST
    curves = report.page_of(result).curves
    last = bad + 19
    for curve in (curves.loss, next(o for o in curves.outputs if o.phase == "train")):
        assert [(s.first[0], s.last[0], s.count) for s in curve.bad] == [(bad, last, 20)], curve
        assert curve.count == last + 1 and len(curve.points) <= 2003
    assert result.first_nonfinite.iteration == bad
    assert check_html(out, [f"iteration {bad}"], first_bad_row=False)["plots"]
