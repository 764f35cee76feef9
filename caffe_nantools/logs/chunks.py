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

#: The solver's and the check layer's unindented messages (train and test outputs are indented
#: and stay inside spans: they follow the lines marked here). Every glog line has "] " before
#: its message, which gives the regex a literal to skip ahead with.
_MARKED = re.compile(rb"\] (?:Iteration \d|Solving |Gradient clipping|caffe-nantools )")
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
        while True:
            chunk = f.read(CHUNK_BYTES)
            if not chunk:
                return
            end = chunk.rfind(b"\n") + 1
            while end == 0:  # a line longer than a chunk, or the last line without a newline
                more = f.read(CHUNK_BYTES)
                if not more:
                    end = len(chunk)
                    break
                chunk += more
                end = chunk.rfind(b"\n") + 1
            if end < len(chunk):
                f.seek(end - len(chunk), 1)  # the cut line is read again with the next chunk
            first_line += yield from _pieces(chunk, end, first_line)


def _pieces(chunk: bytes, end: int, first_line: int):
    """Spans and Marked lines of ``chunk[:end]``; returns its line count."""
    ends, suspects = _line_ends(chunk, end)
    marks = []
    for m in _MARKED.finditer(chunk, 0, end):
        begin = chunk.rfind(b"\n", 0, m.start()) + 1
        if marks and begin <= marks[-1][1]:
            continue  # two marks on one line
        stop = chunk.find(b"\n", m.end(), end)
        marks.append((begin, stop if stop >= 0 else end))
    # Spans run from the end of one mark to the start of the next; line numbers and suspect
    # counts for all of them come from one searchsorted each.
    starts = [0] + [stop + 1 for _, stop in marks]
    stops = [begin for begin, _ in marks] + [end]
    first = first_line + np.searchsorted(ends, starts)
    flagged = np.searchsorted(suspects, stops) > np.searchsorted(suspects, starts)
    mark_lines = first_line + np.searchsorted(ends, stops[:-1])
    for k, (begin, stop) in enumerate(marks):
        if begin > starts[k]:
            yield Span(chunk[starts[k]:begin], int(first[k]), bool(flagged[k]))
        yield Marked(chunk[begin:stop].rstrip(b"\r").decode("utf-8", "replace"), int(mark_lines[k]))
    if end > starts[-1]:
        yield Span(chunk[starts[-1]:end], int(first[-1]), bool(flagged[-1]))
    return len(ends)


def _line_ends(chunk: bytes, end: int) -> Tuple[np.ndarray, np.ndarray]:
    """Offsets of the newlines in ``chunk[:end]`` (and of ``end`` when the text stops without
    one), and of those ending a line whose value is suspect."""
    a = np.frombuffer(chunk, np.uint8, count=end)
    ends = np.flatnonzero(a == _NL)
    stops = ends if end == 0 or a[end - 1] == _NL else np.append(ends, end)
    # The last character of each line, stepping over a Windows "\r"; lines under four bytes
    # cannot hold a suspect value.
    stops = stops - (a[np.maximum(stops - 1, 0)] == _CR)
    stops = stops[stops >= 4]
    last = a[stops - 1]
    odd = (last == _N) | (last == _F) | ((a[stops - 3] == _PLUS) & (a[stops - 2] == _THREE) & (last >= ord("7")))
    return ends, stops[odd]
