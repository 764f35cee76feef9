"""A Caffe log read fast: big byte chunks, the few lines that matter picked out by one regex pass.

A debug_info log is almost all ``[Forward]``/``[Backward]`` lines, and a diagnosis needs them
only around the first non-finite value. So the reader hands out the solver's lines (and the
check layer's) one by one, and everything between them as opaque :class:`Span` s, each flagged
when one of its lines ends in a value that is ``nan``, ``inf`` or >= 1e37. Telling that takes
a look at the last bytes before each newline, done with numpy over the whole chunk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Tuple, Union

import numpy as np

from caffe_nantools.files import reading

CHUNK_BYTES = 8 << 20

#: The solver's and the check layer's messages; every glog line has "] " before its message,
#: which gives the regex a literal to skip ahead with.
_MARKED = re.compile(
    rb"\] +(?:Iteration \d|Solving |Test net output|Train net output|Gradient clipping|caffe-nantools )"
)
_N, _F, _PLUS, _THREE, _CR, _NL = (ord(c) for c in "nf+3\r\n")


@dataclass(frozen=True)
class Span:
    """Lines between two marked lines, undecoded.

    ``line`` is the 1-based number of the first; ``suspect`` is set when a line ends in ``nan``/
    ``inf`` (any sign) or in an exponent of 37 or more.
    """

    data: bytes
    line: int
    suspect: bool


@dataclass(frozen=True)
class Marked:
    """One solver or check-layer line, decoded, without its line break."""

    text: str
    line: int


def read_log(path: str) -> Iterator[Union[Span, Marked]]:
    """The log as Spans and Marked lines, in file order, in constant memory.

    Raises:
        FileError: the log cannot be opened or read.
    """
    with reading(path, "log", mode="rb") as f:
        first_line = 1
        rest = b""
        while True:
            block = f.read(CHUNK_BYTES)
            data = rest + block
            if not block:
                if data:
                    yield from _pieces(data + b"\n", first_line)
                return
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            chunk, rest = data[:cut], data[cut:]
            newlines = yield from _pieces(chunk, first_line)
            first_line += newlines


def _pieces(chunk: bytes, first_line: int):
    """Spans and Marked lines of a chunk that ends with a newline; returns its line count."""
    ends, suspects = _line_ends(chunk)
    start = 0
    for m in _MARKED.finditer(chunk):
        begin = chunk.rfind(b"\n", 0, m.start()) + 1
        end = chunk.find(b"\n", m.end())
        if begin < start:  # two marks on one line
            continue
        if begin > start:
            yield _span(chunk, start, begin, first_line, ends, suspects)
        line = first_line + int(np.searchsorted(ends, begin))
        yield Marked(chunk[begin:end].rstrip(b"\r").decode("utf-8", "replace"), line)
        start = end + 1
    if start < len(chunk):
        yield _span(chunk, start, len(chunk), first_line, ends, suspects)
    return len(ends)


def _span(chunk: bytes, start: int, stop: int, first_line: int, ends: np.ndarray, suspects: np.ndarray) -> Span:
    lo, hi = np.searchsorted(suspects, [start, stop])
    return Span(chunk[start:stop], first_line + int(np.searchsorted(ends, start)), bool(hi > lo))


def _line_ends(chunk: bytes) -> Tuple[np.ndarray, np.ndarray]:
    """Offsets of the chunk's newlines, and of those ending a line whose value is suspect."""
    a = np.frombuffer(chunk, np.uint8)
    ends = np.flatnonzero(a == _NL)
    # The last character of each line, stepping over a Windows "\r"; lines under four bytes
    # cannot hold a suspect value.
    stop = ends - (a[np.maximum(ends - 1, 0)] == _CR)
    stop = stop[stop >= 4]
    last = a[stop - 1]
    odd = (last == _N) | (last == _F) | ((a[stop - 3] == _PLUS) & (a[stop - 2] == _THREE) & (a[stop - 1] >= ord("7")))
    return ends, stop[odd]
