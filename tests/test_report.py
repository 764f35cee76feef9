"""--report for diagnose (and the library's write_html / write_markdown): one page a browser
opens offline with the verdict, the curves, the per-layer trace and the evidence; Markdown that
GitHub renders as tables, a folded evidence block and code; --redact for posting it."""

import os
import re
import socket

import pytest

from caffe_logs import CaffeLog
from caffe_nantools.cli import main
from caffe_nantools.diagnose import diagnose
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
    assert len(shown["plots"]) == 5  # loss, lr, two heatmaps, the profile


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
    assert result.write_markdown(str(tmp_path / "r.md"), redact=True) == str(tmp_path / "r.md")


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
    trace = trace_of(diagnose(log.write(tmp_path / "train.log"), keep_trace=True))
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
    write = result.write_html if kind == "html" else result.write_markdown
    out = write(str(tmp_path / "report.txt"))
    with open(out) as f:
        head = f.read(20)
    assert head.startswith("<!DOCTYPE html>" if kind == "html" else "### caffe-nantools")
