"""watch --report: the page of a watched run that went NaN (a stand-in for `caffe train` that
prints Caffe's lines) opens offline in a real browser with the verdict, the loss curve and each
output's; the Markdown parses as GitHub renders it."""

from report_checks import check_html, check_markdown
from test_watch import FAKE, run_watch


def test_the_report_of_a_watched_blow_up_has_the_verdict_and_the_curves(tmp_path):
    args = ["--log", "w.log", "--report", "watched.html", "--", *FAKE, "-nan_at", "6"]
    watched = run_watch(tmp_path, *args, "-iterations", "200")
    assert watched.returncode == 1, watched.stderr.decode()[-2000:]
    shown = check_html(tmp_path / "watched.html", ["ip2", "iteration 6"], first_bad_row=False)
    page = (tmp_path / "watched.html").read_text()
    curves = page.split('id="curves"')[1].split("</section>")[0]
    assert "first non-finite loss: iteration 6" in curves and "<svg" in curves
    outputs = page.split('id="outputs"')[1].split("</section>")[0]
    assert "2 outputs, 1 of them non-finite" in outputs
    assert "iteration 6: nan" in outputs and outputs.count('<tr class="bad">') == 1
    assert len(shown["plots"]) >= 3  # the loss, the rate, the outputs


def test_the_markdown_report_of_a_watched_run_gives_the_command_and_the_first_bad_output(
    tmp_path,
):
    args = ["--log", "w.log", "--report", "watched.md", "--", *FAKE, "-nan_at", "3"]
    assert run_watch(tmp_path, *args, "-iterations", "200").returncode == 1
    text = (tmp_path / "watched.md").read_text()
    check_markdown(text)
    assert text.startswith("### caffe-nantools watch: ") and "- **command**: " in text
    assert "| train | `loss` |" in text and "iteration 3: nan" in text
