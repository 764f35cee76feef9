"""``--report FILE.html`` / ``FILE.md``: one file to open and one to paste for every
diagnosis, rendered from the report a command returned (a hunt's, a diagnosis, a watch's);
nothing is read or run again.

The HTML is self-contained (inline styles and SVG plots, no script, nothing fetched); the
Markdown is GitHub-flavoured, for an issue thread, within GitHub's comment size. ``redact``
replaces the user's home and working folders and the host's name with placeholders.
"""

from __future__ import annotations

import html as _html
import os
from typing import Optional

from caffe_nantools import arguments
from caffe_nantools.arguments import ArgumentError
from caffe_nantools.files import FileError, check_writable, writing
from caffe_nantools.report.page import Page, page_of
from caffe_nantools.report.redact import redact as _redact

#: The formats, by the report file's suffix.
FORMATS = {".html": "html", ".htm": "html", ".md": "markdown"}

__all__ = ["FORMATS", "Page", "check", "page_of", "render", "write", "write_html", "write_markdown"]


def render(report, kind: str, *, redact: bool = False) -> str:
    """``report`` (HuntReport, Diagnosis or WatchResult) as ``html`` or ``markdown`` text."""
    page = page_of(report)
    if kind == "html":
        from caffe_nantools.report import html

        escape = (lambda t: _html.escape(_redact(t))) if redact else _html.escape
        text = html.render(page, escape=escape)
        return _redact(text) if redact else text  # what the plots print, too
    from caffe_nantools.report import markdown

    return markdown.render(page, _redact if redact else str)


def write(report, path: str, *, redact: bool = False, kind: Optional[str] = None) -> str:
    """Write ``report`` to ``path`` as ``kind`` (``html``, ``markdown``; by default the one
    its suffix names: ``.html``, ``.md``); returns the path.

    Raises:
        ArgumentError: a suffix that names no format.
        FileError: the file cannot be written (nothing is left half-written).
    """
    redact = arguments.flag("redact", redact)
    kind = kind or check(path)
    text = render(report, kind, redact=redact)
    try:
        with writing() as out:
            out.text(path, text)
    except OSError as e:
        raise FileError(f"{path}: cannot write the report ({e.strerror or e})") from None
    return path


def check(path: str) -> str:
    """The format ``path``'s suffix names, once it is known that the file can be written (a
    command checks this before it runs, not after).

    Raises:
        ArgumentError: a suffix that names no format.
        FileError: a missing or read-only folder, a read-only file.
    """
    path = arguments.path("report", path)
    kind = FORMATS.get(os.path.splitext(path)[1].lower())
    if kind is None:
        raise ArgumentError(
            "{report}: must end in .html or .md (the report's format)", arguments={"report": path}
        )
    check_writable(path)
    if os.path.isfile(path) and not _written_here(path):
        raise FileError(
            f"{path}: exists and is no report caffe-nantools wrote; not changed (give a new name, "
            "or move it away first)"
        )
    return kind


#: How a report of this package starts: Markdown's first line, HTML's title (in its head).
_HEADS = (b"### caffe-nantools ", b"<title>caffe-nantools ")


def _written_here(path: str) -> bool:
    """Whether ``path`` is a report this package wrote (one a new report may replace)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return head.startswith(_HEADS[0]) or _HEADS[1] in head


def write_html(report, path: str, *, redact: bool = False) -> str:
    """``report`` as one self-contained HTML file."""
    return write(report, path, redact=redact, kind="html")


def write_markdown(report, path: str, *, redact: bool = False) -> str:
    """``report`` as GitHub-flavoured Markdown for an issue thread."""
    return write(report, path, redact=redact, kind="markdown")
