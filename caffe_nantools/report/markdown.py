"""The report as GitHub-flavoured Markdown for an issue thread: the verdict, the first bad
values, the fix, the evidence folded away, the versions; within GitHub's comment limit."""

from __future__ import annotations

from typing import Callable, List

from caffe_nantools.report.page import DIFF_WORDS, RUN_WORDS, Page, run_command
from caffe_nantools.report.versions import versions

#: GitHub refuses a comment longer than this (characters).
GITHUB_LIMIT = 65536
#: What the report keeps free of it, for the words a user adds.
HEADROOM = 4096
#: Rows of the first bad values' table.
BAD_ROWS = 10
#: Rows of the outputs' table.
OUTPUT_ROWS = 30
#: What the fix's diff may take of a comment; a longer one is cut, with a note.
DIFF_CHARS = 24000


def render(page: Page, clean: Callable[[str], str] = str) -> str:
    """``clean`` (redaction) is applied to every text before it is escaped for Markdown."""
    md = _Escape(clean)
    _code, _text, _cell, _block = md.code, md.text, md.cell, md.block
    head = [
        f"### caffe-nantools {page.command}: `{_code(str(page.cause))}`",
        "",
        f"`{_code(page.subject)}`",
        "",
        f"**{_text(page.headline)}**",
        "",
    ]
    head += [f"- **{_text(k)}**: {_text(v)}" for k, v in page.facts]
    head += [f"- {_text(s)}" for s in page.summary]
    if page.advice:
        head += ["", "**What to change:**", ""] + [f"1. {_text(a)}" for a in page.advice]
    head += _bad_values(page, md)
    if page.fix is not None:
        fix = [_block(page.fix["change"]), _block(page.fix["state"])]
        head += ["", "**The fix**", "", "```text", *fix, "```"]
        head += _diff(page.fix, md)
    head += _outputs(page, md)
    tail = ["", "**Versions**", "", "| | version |", "|---|---|"]
    tail += [f"| {n} | {_cell(v)} |" for n, v in versions()]
    budget = GITHUB_LIMIT - HEADROOM - len("\n".join(head + tail))
    return "\n".join(head + _evidence(page, budget, md) + tail) + "\n"


def _bad_values(page: Page, md: _Escape) -> List[str]:
    replay = page.replay
    if replay is not None and replay.first_bad is not None:
        rows = [r for r in replay.forward + replay.backward if r.bad][:BAD_ROWS]
        lines = ["", f"**First bad values** (iteration {replay.iteration} replayed)", ""]
        lines += [
            "| what | name | NaN | +inf | -inf | min | max |",
            "|---|---|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {r.what} | `{md.code(r.name)}` | {r.nan} | {r.posinf} | {r.neginf} | {_num(r.min)} | {_num(r.max)} |"
            for r in rows
        ]
        return lines
    d = page.diagnosis
    first = d.first_nonfinite if d is not None else None
    if first is None:
        return []
    return [
        "",
        "**First non-finite value**",
        "",
        "| iteration | pass | layer | blob | log line |",
        "|--:|---|---|---|--:|",
        "| "
        + " | ".join(
            md.cell(v) for v in (first.iteration, first.pass_, first.layer, first.blob, first.line)
        )
        + " |",
    ]


def _diff(fix: dict, md: _Escape) -> List[str]:
    out = []
    if fix.get("diff"):
        lines = ["```diff"]
        used = 0
        diff = fix["diff"].splitlines()
        for k, line in enumerate(diff):
            line = md.block(line)
            if used + len(line) + 1 > DIFF_CHARS:
                lines.append(f"... ({len(diff) - k} more lines cut to fit a comment)")
                break
            lines.append(line)
            used += len(line) + 1
        out += ["", md.text(DIFF_WORDS), "", *lines, "```"]
    if (fix.get("files") or {}).get("solver"):
        out += ["", md.text(RUN_WORDS), "", "```sh", md.block(run_command(fix)), "```"]
    return out


def _outputs(page: Page, md: _Escape) -> List[str]:
    outputs = page.outputs
    if not outputs:
        return []
    shown = outputs[:OUTPUT_ROWS]
    lines = [
        "",
        f"**Outputs** ({len(outputs)}"
        + (f"; the first {len(shown)}" if len(shown) < len(outputs) else "")
        + ")",
        "",
        "| phase | output | values | last value | first non-finite |",
        "|---|---|--:|--:|---|",
    ]
    for o in shown:
        points = o.points
        last = _num(points[-1][1]) if points else ""
        bad = f"iteration {o.first_bad[0]}: {o.first_bad[1]}" if o.first_bad else ""
        name = md.code(o.name).replace("|", "\\|")
        lines.append(f"| {o.phase} | `{name}` | {o.count} | {last} | {bad} |")
    return lines


def _evidence(page: Page, budget: int, md: _Escape) -> List[str]:
    if not page.evidence:
        return []
    lines = ["", "<details><summary>Evidence (the log's lines)</summary>", "", "```text"]
    close = ["```", "", "</details>"]
    used = len("\n".join(lines + close))
    for line, text in page.evidence:
        entry = md.block(f"{line}: {text}" if line is not None else text)
        if used + len(entry) + 1 > budget:
            lines.append("... (cut to fit a comment)")
            break
        lines.append(entry)
        used += len(entry) + 1
    return lines + close


def _num(value) -> str:
    return "" if value is None else f"{value:.4g}"


class _Escape:
    """Text made safe for one place of a Markdown page, after the page's redaction."""

    def __init__(self, clean: Callable[[str], str]) -> None:
        self.clean = clean

    def block(self, text: str) -> str:
        """A line inside a fenced block: it cannot close the fence."""
        return self.clean(text).replace("```", "'''")

    def code(self, text: str) -> str:
        return self.clean(text).replace("`", "'")

    def text(self, text: str) -> str:
        """Plain text kept plain: no HTML tag, no emphasis or link taken from it."""
        text = self.clean(text)
        for c in "\\`*_[]<>#|":
            text = text.replace(c, "\\" + c)
        return text.replace("\n", " ")

    def cell(self, value) -> str:
        return "" if value is None else self.text(str(value)).replace("|", "\\|")
