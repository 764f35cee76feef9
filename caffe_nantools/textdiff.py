"""A change to one of the user's files as a unified diff: what a fix changed, to read and to
apply with ``patch -p0`` in the folder the path is relative to."""

from __future__ import annotations

import difflib
from typing import List

#: What ``patch`` reads after a last line that has no newline.
NO_NEWLINE = "\\ No newline at end of file\n"


def unified(path: str, before: str, after: str, *, context: int = 3) -> str:
    """The change from ``before`` to ``after`` (two texts of the file ``path``) as a unified
    diff; "" when they are the same."""
    lines = difflib.unified_diff(
        _lines(before), _lines(after), path, path, "yours", "fixed", n=context
    )
    out: List[str] = []
    for line in lines:
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n" + NO_NEWLINE)
    return "".join(out)


def _lines(text: str) -> List[str]:
    return text.splitlines(keepends=True)
