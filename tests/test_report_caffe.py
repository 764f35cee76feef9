"""--report of real hunts (a bad record, an explosion, an abort): the page opens offline in a
real browser with the verdict, the plots and, where an iteration failed, its replayed table
with the first bad row marked; the Markdown parses as GitHub renders it."""

import textwrap

from caffe_nantools import report
from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from hunt_nets import classifier, float_lmdb, lmdb_layer, solver
from report_checks import check_html, check_markdown
from test_hunt_caffe import regression_data


def test_the_report_of_a_bad_record_names_it_and_marks_the_first_bad_row(caffe, here):
    float_lmdb(here / "train_lmdb", bad=(9,))
    (here / "net.prototxt").write_text(classifier(lmdb_layer("pixels", "train_lmdb", 4)))
    args = ["hunt", solver(here), "--workdir", "hunt", "--report", "bad_record.html"]
    assert main(args) == 1
    shown = check_html(here / "bad_record.html", ["bad_input", "pixels"], first_bad_row=True)
    assert "pixels: data" in shown["marked"][0]
    page = (here / "bad_record.html").read_text()
    assert "The scan&#x27;s bad records" in page and "00000009" in page
    # The failing iteration replayed twice: the page says whether the failure comes back.
    assert "<th>reproducible</th><td>reproducible</td>" in page


def test_the_report_of_an_explosion_shows_the_trace_and_the_verified_fix(caffe, here):
    regression_data(here)
    result = hunt(solver(here, lr=0.3), workdir="hunt")
    from caffe_nantools.replay import replay

    result.replayed = replay(result.training.replay)
    report.write_html(result, "explosion.html")
    shown = check_html(
        here / "explosion.html", ["exploding_gradients", "verified"], first_bad_row=True
    )
    assert len(shown["plots"]) >= 4  # the curves and the heatmaps at least
    text = (here / "explosion.html").read_text()
    assert "nancheck/" not in text.split('id="trace"')[1].split("</section>")[0]
    # The fix as the user applies it: their solver's base_lr, and clipping added; nothing of
    # hunt's copies (checks, debug_info, snapshots, the seed).
    diff = result.fix.diff
    changed = [line.split("  # ")[0] for line in diff.splitlines()[2:] if line[:1] in "+-"]
    tried = result.fix.tries[-1]
    rate, clip = tried["base_lr"], tried["clip_gradients"]
    assert changed == ["-base_lr: 0.3", f"+base_lr: {rate:g}", f"+clip_gradients: {clip:g}"]
    block = text.split('<pre class="diff" id="fix-diff">')[1].split("</pre>")[0]
    assert '<span class="del">-base_lr: 0.3</span>' in block
    assert f"caffe train -solver {result.fix.files['solver']}" in text
    outputs = text.split('id="outputs"')[1].split("</section>")[0]
    assert "<svg" in outputs and "first non-finite" in outputs
    with open(report.write_markdown(result, "explosion.md")) as f:
        tokens = check_markdown(f.read())
    fence = next(t.content for t in tokens if t.type == "fence" and t.info == "diff")
    assert fence == diff


def test_the_report_of_an_abort_gives_caffes_fatal_line(caffe, here):
    data = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        "shape { dim: 4 dim: 6 } shape { dim: 4 dim: 1 } } }\n"
    )
    (here / "net.prototxt").write_text(
        data
        + textwrap.dedent("""\
        layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 2 } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }
        """)
    )
    # The abort names the setting at fault (the loss's two inputs differ in size): hunt's cause
    # is that setting's, and the page shows the fatal line it came from.
    result = hunt(solver(here), workdir="hunt2", iters=3)
    cause = result.verdict.cause
    assert cause == "config"
    args = ["hunt", solver(here), "--workdir", "hunt", "--iters", "3", "--report", "abort.md"]
    assert main(args) == 1
    text = (here / "abort.md").read_text()
    check_markdown(text, table=True, fence="text")
    assert f"hunt: `{cause}`" in text
    assert "Check failed: bottom[0]->count(1) == bottom[1]->count(1)" in text
    report.write_html(result, "abort.html")
    check_html(here / "abort.html", [cause, "Check failed"], first_bad_row=False, plots=False)
