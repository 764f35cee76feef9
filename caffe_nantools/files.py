"""Reading and writing the user's files: exact bytes, one-line errors, no half-written outputs.

Every output goes through :func:`writing`: it is written under a temporary name beside its
target and moved into place only when it, and every other output of the command, is complete.
A failure, Ctrl-C or SIGTERM before that removes the temporary outputs and leaves the targets
as they were.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from typing import IO, Dict, Iterator, List, Optional, Sequence, Tuple

from caffe_nantools.errors import NanToolsError, literal


class FileError(NanToolsError):
    """A file that cannot be read or written; the message names it and says why."""


def _why(e: OSError) -> str:
    return e.strerror or str(e)


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


#: Control bytes no text holds (tabs, line breaks and the escape of terminal colours aside).
_BINARY = bytes(c for c in range(32) if c not in b"\t\n\x0b\x0c\r\x1b")


def _wide_encoding(head: bytes) -> Optional[str]:
    """ "UTF-16"/"UTF-32" when ``head`` starts like a text in one of them (Windows tools, and
    PowerShell's ``>``, write UTF-16 with a byte-order mark); None otherwise."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    # Without a mark: ASCII text in UTF-16 has a NUL in every other byte.
    pairs = head[: len(head) // 2 * 2]
    if len(pairs) >= 8 and (
        pairs[1::2].count(0) == len(pairs) // 2 or pairs[0::2].count(0) == len(pairs) // 2
    ):
        return "UTF-16"
    return None


def check_input(path: str, what: str = "file") -> None:
    """Refuse what cannot be read as a file: a missing path, a folder, or a FIFO, socket or
    device (opening a FIFO would wait forever for a writer)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except OSError as e:
        raise FileError(f"{path}: cannot read ({_why(e)})") from None
    if stat.S_ISDIR(mode):
        raise FileError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise FileError(
            f"{path}: not a regular file (a FIFO, socket or device); give a {what} on disk"
        )


@contextlib.contextmanager
def reading(path: str, what: str = "file", **open_args) -> Iterator[IO]:
    """``open(path)`` for reading, its errors turned into one-line FileErrors naming the path.

    A file in UTF-16 or UTF-32 is refused with a message that says so: read as UTF-8 it would
    look like an empty or unknown file.
    """
    check_input(path, what)
    binary = "b" in open_args.pop("mode", "r")
    try:
        with open(path, "rb") as raw:
            head = raw.read(512)
            wide = _wide_encoding(head[:64])
            if wide is not None:
                raise FileError(
                    f"{path}: the {what} is in {wide} (Windows tools and PowerShell's > write it); save it as UTF-8"
                )
            if not binary and len(head.translate(None, _BINARY)) < len(head):
                raise FileError(
                    f"{path}: a binary file (a .caffemodel, an image?), not a text {what}"
                )
            raw.seek(0)
            # One open for the look at the first bytes and the reading.
            yield raw if binary else io.TextIOWrapper(raw, **open_args)
    except OSError as e:
        raise FileError(f"{path}: cannot read ({_why(e)})") from None


def read_text(path: str, what: str = "file") -> str:
    """The file's text, line breaks and odd bytes kept exactly (undecodable bytes survive a
    round trip through :func:`writing`; a UTF-8 byte-order mark is kept too)."""
    with reading(path, what, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return f.read()


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name one file, through links (hard and symbolic)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overlaps(
    inputs: Sequence[Tuple[str, str]], outputs: Sequence[Tuple[Optional[str], str]]
) -> None:
    """Refuse outputs that name an input or each other (``(argument, path)`` pairs: the name
    of the argument that gave the path, None for an output made from another argument), links
    resolved: an output never overwrites what is read."""
    for k, (name, path) in enumerate(outputs):
        output = "{%s}" % name if name else literal(path)
        for in_name, in_path in inputs:
            if same_file(path, in_path):
                raise FileError(
                    f"{output} is the input {{{in_name}:name}}; give a new path",
                    arguments=_named((in_name, in_path), (name, path)),
                )
        for other_name, other in outputs[:k]:
            if same_file(path, other):
                other_output = "{%s}" % other_name if other_name != name else literal(other)
                raise FileError(
                    f"{output} and {other_output} are one file; give each output its own path",
                    arguments=_named((name, path), (other_name, other)),
                )


def _named(*pairs: Tuple[Optional[str], str]) -> Dict[str, str]:
    return {name: path for name, path in pairs if name}


def check_writable(target: str, *, new: bool = False) -> None:
    """Refuse an output that cannot be written, before anything is: a missing or read-only
    folder, a folder or a device where a file goes, a read-only file, or (``new``) a path that
    exists."""
    if not target:
        raise FileError("an output path is empty; give a file name")
    folder = os.path.dirname(os.path.abspath(target)) or "."
    if new and os.path.lexists(target):
        raise FileError(f"{target}: already exists; give a new path")
    if not os.path.isdir(folder):
        raise FileError(f"{target}: no such folder {folder}")
    if not writable(folder):
        raise FileError(f"{target}: the folder {folder} is read-only")
    if os.path.isdir(target) and not new:
        raise FileError(f"{target}: is a folder; give a file name")
    if os.path.exists(target) and not os.path.isfile(target):
        # A file is written beside its target and moved into place: that would replace a device.
        raise FileError(f"{target}: is not a regular file (a device, a FIFO); give a file name")
    if os.path.exists(target) and not writable(target):
        raise FileError(f"{target}: is read-only; not changed (make it writable to allow it)")


def writable(path: str) -> bool:
    """Whether ``path`` may be written to (a folder: have files made in it)."""
    # Root may write anything: a file or folder without write bits was made read-only on purpose.
    return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o222)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _follow_umask(folder: str) -> None:
    """Give a new folder and what is in it the modes the umask gives new files and folders:
    LMDB and LevelDB make theirs 0755 and 0644 whatever the umask, so a group that shares
    data (umask 002) could not add to a store written for it."""
    mask = _umask()
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


class Outputs:
    """The outputs of one command, each written under a temporary name beside its target (a
    link's target, so a symlink stays a link) and moved into place by :meth:`commit`."""

    def __init__(self) -> None:
        self._staged: List[Tuple[str, str]] = []  # (temporary, target)

    def path(self, target: str, *, new: bool = False) -> str:
        """A temporary path to write ``target``'s content to (a file or a folder the writer
        creates); with ``new``, ``target`` must not exist now nor at the commit."""
        check_writable(target, new=new)
        real = target if new else os.path.realpath(target)
        folder, name = os.path.split(os.path.abspath(real))
        temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        self._staged.append((temporary, real))
        return temporary

    def text(self, target: str, text: str, *, new: bool = False) -> None:
        """Stage ``text`` for ``target``: its bytes as read by :func:`read_text`, the mode of the
        file it replaces, or the umask's for a new one."""
        temporary = self.path(target, new=new)
        try:
            with open(temporary, "x", encoding="utf-8", errors="surrogateescape", newline="") as f:
                f.write(text)
            real = self._staged[-1][1]
            os.chmod(
                temporary,
                os.stat(real).st_mode & 0o7777 if os.path.exists(real) else 0o666 & ~_umask(),
            )
        except OSError as e:
            raise FileError(f"{target}: cannot write ({_why(e)}); nothing was changed") from None

    def copy(self, source: str, target: str) -> None:
        """Stage a copy of ``source`` (bytes, mode and times) as ``target``."""
        temporary = self.path(target)
        try:
            shutil.copy2(source, temporary)
        except OSError as e:
            raise FileError(f"{target}: cannot write ({_why(e)}); nothing was changed") from None

    def commit(self) -> None:
        for k, (temporary, target) in enumerate(self._staged):
            try:
                if os.path.isdir(temporary):
                    if os.path.lexists(target):
                        raise FileError(
                            f"{target}: appeared while it was written; the new one is left at {temporary}"
                        )
                    _follow_umask(temporary)
                    os.rename(temporary, target)
                else:
                    os.replace(temporary, target)
            except OSError as e:
                done = ", ".join(t for _, t in self._staged[:k])
                self._staged = self._staged[k + 1 :]
                self.discard()
                raise FileError(
                    f"{target}: cannot move into place ({_why(e)})"
                    + (f"; already written: {done}" if done else "")
                ) from None
        self._staged = []

    def discard(self) -> None:
        for temporary, _ in self._staged:
            if os.path.isdir(temporary) and not os.path.islink(temporary):
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        self._staged = []


@contextlib.contextmanager
def writing() -> Iterator[Outputs]:
    """``with writing() as out:`` stage outputs with ``out.text``/``out.copy``/``out.path``;
    all move into place when the block ends, none when it raises (or is interrupted)."""
    outputs = Outputs()
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


def write_text(path: str, text: str) -> None:
    """Write one file atomically."""
    with writing() as out:
        out.text(path, text)


def stage_backup(out: Outputs, path: str) -> Optional[str]:
    """Stage ``path.orig``, a copy of ``path`` before an in-place edit, to be in place before
    the edit is; None when a ``.orig`` exists (it holds an older original that must not be
    lost)."""
    target = path + ".orig"
    if os.path.isfile(target):
        return None
    if os.path.lexists(target):
        raise FileError(
            f"{target}: is in the way of the backup (not a file); move it away, nothing was changed"
        )
    out.copy(path, target)
    return target


@dataclass
class FileEdit:
    """A file's text before and after an edit."""

    path: str
    original: str
    text: str

    def diff(self, to_path: Optional[str] = None) -> str:
        """A unified diff from the original to the edited text (to ``to_path`` if it goes
        elsewhere), with diff's note where a file has no final line break."""
        a, b = self.original.splitlines(keepends=True), self.text.splitlines(keepends=True)
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        # inject only adds lines and remove only takes them out: then the edit is found in one
        # pass (difflib's general search is quadratic on a net of thousands of layers).
        matcher.opcodes = _added_or_removed(a, b)
        lines = (
            [f"--- {self.path}\n", f"+++ {to_path or self.path}\n"]
            if any(tag != "equal" for tag, *_ in matcher.get_opcodes())
            else []
        )
        for group in matcher.get_grouped_opcodes(3):
            (_, i1, _, j1, _), (_, _, i2, _, j2) = group[0], group[-1]
            lines.append(f"@@ -{_span(i1, i2)} +{_span(j1, j2)} @@\n")
            for tag, i1, i2, j1, j2 in group:
                if tag == "equal":
                    lines += [" " + line for line in a[i1:i2]]
                    continue
                lines += ["-" + line for line in a[i1:i2]]
                lines += ["+" + line for line in b[j1:j2]]
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )


def _span(start: int, stop: int) -> str:
    """A hunk's range as unified diff writes it: 1-based start, and the length unless 1."""
    length = stop - start
    first = start + 1 if length else start
    return f"{first}" if length == 1 else f"{first},{length}"


def _added_or_removed(a: List[str], b: List[str]) -> Optional[list]:
    """difflib's opcodes when one text is the other with lines added (or removed), found in
    one pass; None (difflib's own search then) for any other edit."""
    longer, shorter, added = (b, a, "insert") if len(b) >= len(a) else (a, b, "delete")
    codes, i, j = [], 0, 0
    while i < len(shorter) or j < len(longer):
        start_i, start_j = i, j
        while i < len(shorter) and j < len(longer) and shorter[i] == longer[j]:
            i, j = i + 1, j + 1
        if j > start_j:
            codes.append(("equal", start_i, i, start_j, j))
        start_j = j
        while j < len(longer) and (i >= len(shorter) or shorter[i] != longer[j]):
            j += 1
        if j > start_j:
            codes.append((added, i, i, start_j, j))
        if i < len(shorter) and j >= len(longer):
            return None  # a line of the shorter text is missing from the longer one
    if added == "delete":
        codes = [
            (tag if tag == "equal" else "delete", j1, j2, i1, i2) for tag, i1, i2, j1, j2 in codes
        ]
    return codes
