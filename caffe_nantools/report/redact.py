"""``--redact``: the user's home and working folders and the host's name replaced with
placeholders, so that a report can be posted where anyone reads it."""

from __future__ import annotations

import os
import re
import socket
from typing import List, Tuple

HOME = "{home}"
WORKDIR = "{workdir}"
HOST = "{host}"


def replacements() -> List[Tuple[str, str]]:
    """(text, placeholder), longest first, so that a folder inside another is replaced whole."""
    found = {}
    for path, placeholder in ((os.path.expanduser("~"), HOME), (os.getcwd(), WORKDIR)):
        for form in {path, os.path.realpath(path)}:
            if len(form) > 1:  # never "/"
                found[form.rstrip("/")] = placeholder
    for name in {socket.gethostname(), socket.getfqdn()}:
        if name and name not in ("localhost", "localhost.localdomain"):
            found.setdefault(name, HOST)
    return sorted(found.items(), key=lambda item: -len(item[0]))


def redact(text: str) -> str:
    """``text`` with each of :func:`replacements` replaced; a host name only as a whole word."""
    for old, new in replacements():
        if new == HOST:
            text = re.sub(r"(?<![\w.-])" + re.escape(old) + r"(?![\w-])", new, text)
        else:
            text = text.replace(old, new)
    return text
