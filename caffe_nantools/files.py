"""Reading and writing the user's files: exact bytes, one-line errors, no half-written files."""
from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO, Iterator, Optional

from caffe_nantools.errors import NanToolsError


class FileError(NanToolsError):
    """A file that cannot be read or written; the message names it and says why."""


@contextlib.contextmanager
def reading(path: str, what: str = "file", **open_args) -> Iterator[IO[str]]:
    """``open(path)`` for reading, its errors turned into one-line FileErrors naming the path."""
    try:
        with open(path, **open_args) as f:
            yield f
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FileError(f"{path}: is a folder, not a {what}") from None
    except OSError as e:
        raise FileError(f"{path}: cannot read ({e.strerror or e})") from None


def read_text(path: str) -> str:
    """The file's text, line breaks and odd bytes kept exactly (undecodable bytes survive a
    round trip through :func:`write_text`)."""
    with reading(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    """Write ``text`` atomically: a temporary file in the same folder, then a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    except OSError as e:
        raise FileError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            f.write(text)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise FileError(f"{path}: cannot write ({e.strerror or e})") from None


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def backup(path: str) -> str:
    """Copy ``path`` to ``path.orig`` before an in-place edit. An existing ``.orig`` is kept:
    it holds an older original that must not be lost."""
    target = path + ".orig"
    if not os.path.exists(target):
        try:
            shutil.copy2(path, target)
        except OSError as e:
            raise FileError(f"{target}: cannot write the backup ({e.strerror or e})") from None
    return target


@dataclass
class FileEdit:
    """A file's text before and after an edit."""

    path: str
    original: str
    text: str

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def diff(self, to_path: Optional[str] = None) -> str:
        """A unified diff from the original to the edited text (to ``to_path`` if it goes
        elsewhere), with diff's note where a file has no final line break."""
        lines = difflib.unified_diff(
            self.original.splitlines(keepends=True),
            self.text.splitlines(keepends=True),
            fromfile=self.path,
            tofile=to_path or self.path,
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
