"""A log file opened for reading as it is on disk or compressed (gzip, bzip2, xz: told by their
magic bytes, whatever the file is called), and the error for a file that holds no Caffe log."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import zlib
from typing import BinaryIO, Iterator, Optional, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import FileError, reading

#: What a log must hold at least one of to be read as a Caffe log (by diagnose; log2csv needs a
#: solver line).
EXPECTED = (
    "a Caffe training log: glog lines of `caffe train` (`Iteration N, loss = X`, `Train net output #0: ...`), "
    "debug_info lines (`[Forward] Layer ...`), a check layer's error or an abort (`Check failed: ...`)"
)
SOLVER_LINES = (
    "a Caffe training log with solver lines (`Iteration N, loss = X`, `Train net output #0: ...`)"
)

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


class NotALogError(NanToolsError):
    """Nothing in the file was recognised as a line of a Caffe log."""


def not_a_log(path: str, expected: str = EXPECTED) -> NotALogError:
    """The error for ``path``, in which nothing ``expected`` was found."""
    try:
        empty = os.path.getsize(path) == 0
    except OSError:
        empty = False
    found = "is empty" if empty else "holds no line of one"
    return NotALogError(f"{path}: expected {expected}; the file {found}")


def compression(head: bytes) -> Optional[str]:
    """The compression whose magic bytes ``head`` starts with, or None."""
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


@contextlib.contextmanager
def open_log(path: str) -> Iterator[Tuple[BinaryIO, bool]]:
    """The log's bytes, decompressed when needed, and whether they were compressed.

    Raises:
        FileError: the file cannot be read, or its compressed data is corrupt or cut short.
    """
    with reading(path, "log", mode="rb") as raw:
        kind = compression(raw.read(6))
        raw.seek(0)
        if kind is None:
            yield raw, False
            return
        opener = {
            "gzip": lambda f: gzip.GzipFile(fileobj=f),
            "bzip2": bz2.BZ2File,
            "xz": lzma.LZMAFile,
        }[kind]
        try:
            yield opener(raw), True
        except (EOFError, OSError, lzma.LZMAError, zlib.error) as e:
            raise FileError(
                f"{path}: its {kind} data is corrupt or cut short ({e}); unpack what is there "
                f"(e.g. `zcat`, `bzcat`, `xzcat` into a .log) and read that"
            ) from None
