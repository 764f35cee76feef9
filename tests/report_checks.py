"""What every report must be, checked as a reader's tools see it: the HTML in a real browser
(no request leaves the page, no error, the verdict's words, plots with data, the first bad row
marked), the Markdown by a CommonMark parser (tables, details, code blocks) within GitHub's
comment size."""

import os
from typing import List, Optional

from browser import Browser
from needs import need

#: Where screenshots are kept (CI keeps the folder as an artifact); else the test's folder.
ARTIFACTS = os.environ.get("NANTOOLS_ARTIFACTS")


def check_html(path, verdict_words: List[str], *, first_bad_row: bool, plots: bool = True) -> dict:
    """Open ``path`` in headless Chromium; returns what the page showed."""
    with Browser() as browser:
        page = browser.open(str(path))
        own = "file://" + os.path.abspath(str(path))
        fetched = [u for u in page.requests if u != own and not u.startswith("data:")]
        assert fetched == [], f"the page asked for {fetched}"
        assert page.errors == [], page.errors
        verdict = page.evaluate("document.querySelector('#verdict').innerText")
        for words in verdict_words:
            assert words in verdict, (words, verdict)
        drawn = page.evaluate(
            "[...document.querySelectorAll('.plot svg')]"
            ".map(s => s.querySelectorAll('path, use, image, text').length)"
        )
        if plots:
            assert drawn and all(n > 10 for n in drawn), drawn
        marked = page.evaluate(
            "[...document.querySelectorAll('tr.first-bad')].map(r => r.innerText)"
        )
        assert len(marked) == (1 if first_bad_row else 0), marked
        if first_bad_row:
            assert "first bad" in marked[0]
        folder = ARTIFACTS or os.path.dirname(str(path))
        os.makedirs(folder, exist_ok=True)
        shot = os.path.join(folder, os.path.basename(str(path)) + ".png")
        page.screenshot(shot)
        assert os.path.getsize(shot) > 10000
        return {"verdict": verdict, "plots": drawn, "marked": marked, "screenshot": shot}


def check_markdown(text: str, *, table: bool = True, fence: Optional[str] = "text") -> list:
    """Parse ``text`` as GitHub does (CommonMark with tables); returns the tokens."""
    markdown_it = need("markdown_it", "markdown-it-py")
    assert len(text) < 65536
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    kinds = {t.type for t in tokens}
    assert "heading_open" in kinds
    if table:
        assert "table_open" in kinds, "no table"
    if fence is not None:
        assert any(t.type == "fence" and t.info == fence for t in tokens)
    details = [t.content for t in tokens if t.type == "html_block"]
    assert any(d.startswith("<details>") for d in details) and any(
        "</details>" in d for d in details
    )
    # The user's words stay words: no tag of theirs reaches the thread.
    inline = [c for t in tokens if t.type == "inline" for c in t.children or ()]
    assert not [c.content for c in inline if c.type == "html_inline"]
    return tokens
