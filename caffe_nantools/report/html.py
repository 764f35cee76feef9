"""The report as one self-contained HTML file: styles inline, plots as inline SVG, no script,
no font and nothing else fetched (it opens from disk, as a CI artifact, offline)."""

from __future__ import annotations

import html
from typing import Callable, Iterable, List, Optional, Sequence

from caffe_nantools.diagnose import is_saturated
from caffe_nantools.report import plots
from caffe_nantools.report.page import DIFF_WORDS, RUN_WORDS, Page, run_command
from caffe_nantools.report.trace import trace_of
from caffe_nantools.report.versions import versions

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 2em; border-bottom: 1px solid #ccc; }
#verdict { border: 2px solid #b00; border-radius: 6px; padding: 0.6em 1em; background: #fff6f6; }
#verdict.none { border-color: #080; background: #f4fff4; }
#verdict .headline { font-size: 1.2em; font-weight: 600; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { color: #b00; }
tr.first-bad td { background: #ffd9d9; font-weight: 600; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
.plot svg { max-width: 100%; height: auto; }
.missing { color: #a60; }
pre.diff .add { color: #060; background: #e6ffec; display: block; }
pre.diff .del { color: #a00; background: #ffebe9; display: block; }
pre.diff .hunk { color: #058; display: block; }
pre.diff .head { font-weight: 600; display: block; }
"""
#: Outputs drawn, one small plot each (every one is in the table below them).
OUTPUTS_DRAWN = 24
#: Small plots in a row.
OUTPUTS_PER_ROW = 3
NO_MATPLOTLIB = (
    "The plots need matplotlib (pip install 'caffe-nantools[plot]'); every table is below."
)


def render(page: Page, *, escape: Callable[[str], str] = html.escape) -> str:
    """The page as HTML text."""
    e = escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>caffe-nantools {e(page.command)}: {e(str(page.cause))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>caffe-nantools {e(page.command)}: <span class=mono>{e(page.subject)}</span></h1>",
    ]
    parts += _verdict(page, e)
    plt = plots.pyplot()
    if plt is None:
        parts.append(f'<p class="missing" id="no-plots">{e(NO_MATPLOTLIB)}</p>')
    d = page.diagnosis
    if d is not None and d.trace is not None:
        parts += _curves(plt, page, e)
        if d.debug_info:
            parts += _trace(plt, d, e)
    if page.outputs:
        parts += _outputs(plt, page.outputs, e)
    if page.replay is not None:
        parts += _replay(page.replay, e)
    if page.command == "hunt":
        parts += _records(page, e)
        parts += _section("Lint's risks", _list(page.risks, e) if page.risks else ["<p>none</p>"])
    if page.fix is not None:
        parts += _fix(page.fix, e)
    parts += _evidence(page, e)
    if page.notes:
        parts += _section("Notes", _list(page.notes, e))
    parts += _section("Versions", _table(["", "version"], ([n, v] for n, v in versions()), e))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _verdict(page: Page, e) -> List[str]:
    css = "none" if page.cause == "none" else "found"
    rows = [f"<tr><th>cause</th><td><code>{e(str(page.cause))}</code></td></tr>"]
    rows += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in page.facts]
    out = [
        f'<section id="verdict" class="{css}">',
        f'<p class="headline">{e(page.headline)}</p>',
        "<table>" + "".join(rows) + "</table>",
    ]
    if page.summary:
        out += _list(page.summary, e)
    if page.advice:
        out += ["<p><b>What to change:</b></p>"] + _list(page.advice, e)
    return out + ["</section>"]


def _section(title: str, body: List[str], anchor: str = "") -> List[str]:
    ident = f' id="{anchor}"' if anchor else ""
    return [f"<section{ident}><h2>{html.escape(title)}</h2>"] + body + ["</section>"]


def _list(items: Iterable[str], e) -> List[str]:
    return ["<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"]


def _table(
    head: Sequence[str], rows: Iterable[Sequence], e, classes: Sequence[str] = ()
) -> List[str]:
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for k, row in enumerate(rows):
        css = f' class="{classes[k]}"' if k < len(classes) and classes[k] else ""
        cells = "".join(
            f'<td class="n">{e(_number(c))}</td>'
            if isinstance(c, (int, float))
            else f"<td>{e(str(c))}</td>"
            for c in row
        )
        out.append(f"<tr{css}>{cells}</tr>")
    return out + ["</table>"]


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _figure(plt, draw, size, *, constrained: bool = True) -> str:
    fig = plt.figure(figsize=size, constrained_layout=constrained)
    try:
        draw(fig)
        return f'<div class="plot">{plots.svg(fig)}</div>'
    finally:
        plt.close(fig)


def _curves(plt, page: Page, e) -> List[str]:
    run = page.diagnosis.trace
    curves = page.curves
    # Read again from the log, a curve keeps every non-finite value; else the diagnosis's
    # thinned ones are drawn.
    if curves is not None and curves.loss.count:
        points, spans, bad_count = curves.loss.points, curves.loss.spans, curves.loss.bad_count
    else:
        points, spans, bad_count = plots.loss_points(run), [], None
    if curves is not None and curves.rate.count:
        rates, rate_spans = curves.rate.points, curves.rate.spans
    else:
        rates, rate_spans = run.lr_series.items, []
    bad = [(x, y) for x, y in points if not _finite(y)]
    lines = []
    if bad:
        lines.append(
            f"<p>first non-finite loss: iteration {bad[0][0]} ({e(str(bad[0][1]))})"
            + (f"; {bad_count} non-finite in all, each marked" if bad_count else "")
            + "</p>"
        )
    if run.pinned is not None:
        lines.append(
            f"<p>the loss sits at 87.3365 (-log(FLT_MIN): softmax gave the true class 0) from "
            f"iteration {run.pinned.iteration}, line {run.pinned.line}</p>"
        )
    if plt is not None:
        pinned = run.pinned.iteration if run.pinned is not None else None
        lines.append(
            _figure(
                plt,
                lambda fig: plots.series(
                    fig.add_subplot(), points, "loss", "tab:blue", pinned=pinned, spans=spans
                ),
                (11, 3.2),
            )
        )
        lines.append(
            _figure(
                plt,
                lambda fig: plots.series(
                    fig.add_subplot(), rates, "lr", "tab:orange", spans=rate_spans
                ),
                (11, 2.4),
            )
        )
    saturated = sum(1 for _, y in points if _finite(y) and is_saturated(y))
    lines.append(
        f"<p>{len(points)} points drawn of {run.displayed} displayed iterations"
        + (f"; {saturated} at 87.3365" if saturated else "")
        + "</p>"
    )
    return _section("Loss and learning rate", lines, "curves")


def _outputs(plt, outputs, e) -> List[str]:
    bad = [o for o in outputs if o.first_bad is not None]
    drawn = outputs[:OUTPUTS_DRAWN]
    out = [
        f"<p>{len(outputs)} outputs"
        + (f", {len(bad)} of them non-finite" if bad else ", all finite")
        + (f"; the first {len(drawn)} drawn" if len(drawn) < len(outputs) else "")
        + "</p>"
    ]
    if plt is not None:
        rows = -(-len(drawn) // OUTPUTS_PER_ROW)

        def draw(fig):
            for k, o in enumerate(drawn):
                ax = fig.add_subplot(rows, OUTPUTS_PER_ROW, k + 1)
                color = "tab:green" if o.phase == "train" else "tab:purple"
                plots.series(ax, o.points, f"{o.phase}: {o.name}", color, spans=o.spans)
                ax.set_ylabel("")
                ax.set_title(f"{o.phase}: {o.name}", fontsize=9)
            fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.4 / (2.4 * rows), hspace=0.7)

        # Fixed margins: the constrained layout of Debian 11's matplotlib (3.3) takes minutes
        # on a grid of many small plots.
        out.append(_figure(plt, draw, (11, 2.4 * rows), constrained=False))
    rows_ = [
        [
            o.phase,
            o.name,
            o.count,
            f"iteration {o.first_bad[0]}: {o.first_bad[1]}" if o.first_bad else "",
        ]
        for o in outputs
    ]
    classes = ["bad" if o.first_bad else "" for o in outputs]
    out += _table(["phase", "output", "values", "first non-finite"], rows_, e, classes)
    return _section("Each output over iterations", out, "outputs")


def _finite(y: float) -> bool:
    return y == y and abs(y) != float("inf")


def _trace(plt, d, e) -> List[str]:
    trace = trace_of(d.trace, d.first_bad_iteration)
    out = [
        f"<p>{len(trace.layers)} layers, {len(trace.columns)} displayed iterations"
        + (
            f"; the first non-finite value in iteration {trace.labels[trace.failing]}"
            if trace.failing is not None
            else ""
        )
        + "</p>"
    ]
    if plt is not None and trace.columns:
        height = min(max(3.0, 0.16 * len(trace.layers) + 1.5), 30.0)
        for pick, _ in plots.PASSES:
            out.append(
                _figure(
                    plt,
                    lambda fig, pick=pick: plots.heatmap(
                        fig, fig.add_subplot(), trace, pick, d.origin
                    ),
                    (11, height),
                )
            )
    failing = trace.columns[trace.failing] if trace.failing is not None else None
    if failing is not None:
        out.append(f"<h3>Along the net, iteration {e(trace.labels[trace.failing])}</h3>")
        if plt is not None:
            out.append(
                _figure(
                    plt,
                    lambda fig: plots.profile(
                        fig.add_subplot(),
                        failing,
                        trace.layers,
                        plots.marks(d.began, d.first_nonfinite),
                    ),
                    (max(7.0, min(0.3 * len(trace.layers) + 3, 24.0)), 3.6),
                )
            )
        rows = [
            [layer, failing.forward.get(layer, ""), failing.backward.get(layer, "")]
            for layer in trace.layers
        ]
        out += _table(["layer", "forward mean |x|", "backward mean |x|"], rows, e)
    return _section("Per layer over iterations (debug_info)", out, "trace")


def _replay(replay, e) -> List[str]:
    first = replay.first_bad
    head = ["", "what", "name", "count", "NaN", "+inf", "-inf", ">=1e37", "min", "max", "mean |x|"]
    out = []
    if first is not None:
        out.append(f"<p>first non-finite: the {e(first.what)} of <code>{e(first.name)}</code></p>")
    if replay.abort is not None:
        out.append(f"<p>stopped: {e(str(replay.abort))}</p>")
    for title, rows in (("forward", replay.forward), ("backward", replay.backward)):
        out.append(f"<h3>{title}</h3>")
        cells = [
            [
                "→ first bad" if r is first else "",
                r.what,
                r.name,
                r.count,
                r.nan,
                r.posinf,
                r.neginf,
                r.huge,
                _blank(r.min),
                _blank(r.max),
                _blank(r.mean_abs),
            ]
            for r in rows
        ]
        classes = ["first-bad bad" if r is first else "bad" if r.bad else "" for r in rows]
        out += _table(head, cells, e, classes)
    return _section(f"The failing iteration ({replay.iteration}) replayed", out, "replay")


def _blank(value: Optional[float]):
    return "" if value is None else value


def _records(page: Page, e) -> List[str]:
    if not page.record_count:
        return _section("The scan's bad records", ["<p>none</p>"], "records")
    shown = len(page.records)
    out = [
        f"<p>{page.record_count} bad records"
        + (f"; the first {shown}" if shown < page.record_count else "")
        + "</p>"
    ]
    out += _table(["source", "key", "what"], page.records, e)
    return _section("The scan's bad records", out, "records")


def _fix(fix: dict, e) -> List[str]:
    out = [f"<p>{e(fix['change'])}</p>", f"<p><b>{e(fix['state'])}</b></p>"]
    files = fix.get("files") or {}
    if fix.get("diff"):
        out.append(f"<p>{e(DIFF_WORDS)}</p>")
        out.append('<pre class="diff" id="fix-diff">' + _diff_lines(fix["diff"], e) + "</pre>")
    if files.get("solver"):
        out.append(f"<p>{e(RUN_WORDS)}</p><pre>{e(run_command(fix))}</pre>")
    if files:
        out += _table(["hunt's fixed copy", "file"], sorted(files.items()), e)
    if fix.get("tries"):
        out += _table(
            ["base_lr", "clip_gradients", "stayed finite"],
            (
                [t["base_lr"], t["clip_gradients"], "yes" if t["finite"] else "no"]
                for t in fix["tries"]
            ),
            e,
        )
    return _section("The fix", out, "fix")


def _diff_lines(diff: str, e) -> str:
    spans = []
    for line in diff.splitlines():
        css = (
            "head"
            if line.startswith(("--- ", "+++ "))
            else "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else ""
        )
        spans.append(f'<span class="{css}">{e(line)}</span>' if css else e(line) + "\n")
    return "".join(spans)


def _evidence(page: Page, e) -> List[str]:
    if not page.evidence and not page.advice:
        return []
    rows = [["" if line is None else line, text] for line, text in page.evidence]
    return _section("Evidence", _table(["log line", "text"], rows, e), "evidence")
