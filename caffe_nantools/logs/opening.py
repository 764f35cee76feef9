"""A log file opened for reading as it is on disk or compressed (gzip, bzip2, xz: told by their
magic bytes, whatever the file is called), and the error for a file that holds no Caffe log."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
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


class _Gunzipped(io.RawIOBase):
    """A gzip stream that ends where what follows its last member is not another one, as
    ``zcat`` reads it ("trailing garbage ignored"); Python's gzip calls that an error, while its
    bzip2 reader already stops there (as ``bzcat`` does; ``xzcat`` refuses such a file)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._gzip = gzip.GzipFile(fileobj=raw)
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            # read1: one step of the decompressor, so that no data read before the junk is
            # held back in a buffer when the junk's error comes.
            data = self._gzip.read1(len(buffer))
        except OSError as e:  # gzip.BadGzipFile from Python 3.8 on
            if not (self._read and str(e).startswith("Not a gzipped file")):
                raise
            data = b""
        n = len(data)
        buffer[:n] = data
        self._read += n
        return n


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
            # Buffered: a read gives as much as asked for, as the other openers do (the first
            # read of a log decides how its lines end).
            "gzip": lambda f: io.BufferedReader(_Gunzipped(f)),
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
