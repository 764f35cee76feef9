"""A Caffe log read fast: big byte chunks, the few lines that matter picked out by one regex pass.

A debug_info log is almost all ``[Forward]``/``[Backward]`` lines, and a diagnosis needs them
only around the first non-finite value. So the reader hands out the solver's lines (the check
layer's, and those of an abort) one by one, and everything between them as opaque :class:`Span` s,
each flagged when one of its lines ends in a value that is ``nan``, ``inf`` or >= 1e37. Telling
that takes a look at the last bytes before each newline, done with numpy over the whole chunk.

Logs as users have them (quoted, numbered, prefixed, retyped) are read too: a chunk in which a
line holding a known message does not start with glog's prefix is made canonical line by line
first (:func:`caffe_nantools.logs.glog.canonical`), keeping line numbers and the original text.
Plain logs never take that path: telling costs one look at the first bytes of each line.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

import caffe_nantools.logs.plain as plain
from caffe_nantools.logs.glog import KNOWN, canonical
from caffe_nantools.logs.opening import open_log
from caffe_nantools.logs.scratch import Scratch
import caffe_nantools.logs.words as words
from caffe_nantools.logs.sweep import Candidates, Finding, Swept, sweep_lazily

#: Small enough that the per-line arrays of a chunk stay in the cache and in the allocator's heap
#: (a temporary over its mmap threshold costs page faults each time it is made).
CHUNK_BYTES = 2 << 20

#: The solver's (snapshots too), the check layer's and an abort's unindented messages (train and test outputs
#: are indented and stay inside spans: they follow the lines marked here). Every glog line has
#: "] " before its message, which gives the regex a literal to skip ahead with. glog's F lines
#: are marked too, whatever their message.
_MARKED = re.compile(
    rb"\] (?:Iteration \d|Solving |Snapshotting |Optimization Done|Gradient clipping|caffe-nantools |Check failed|\*\*\\?\* |"
    rb"Traceback \(most recent call last\))"
)
_KNOWN = re.compile(KNOWN.encode())
#: First letters of the marked messages after "] ", and "Iteration " (found without the regex).
_MARK_LETTERS = np.zeros(256, bool)
_MARK_LETTERS[[ord(c) for c in "ISOGcC*T"]] = True
_I, _BRACKET = ord("I"), ord("]")
#: Marks in a row read as one :class:`Displays`: below it, one by one costs as little.
_RUN = 32
#: Lines between two marks of a run at most (its train outputs).
_RUN_GAP = 64
_N, _F, _PLUS, _THREE, _CR, _NL, _T, _C = (ord(c) for c in "nf+3\r\nTc")
#: Last characters of Windows' spellings: 1.#QNAN, 1.#INF, -1.#IND, -nan(ind).
_UPPER_N, _UPPER_F, _UPPER_D, _D, _CLOSE = (ord(c) for c in "NFDd)")
_FATAL = ord("F")
_BYTE, _8, _24, _32 = (np.uint64(x) for x in (0xFF, 8, 24, 32))
_LEVELS = np.zeros(256, bool)
_LEVELS[[ord(c) for c in "IWEF"]] = True
_DIGITS = np.zeros(256, bool)
_DIGITS[ord("0") : ord("9") + 1] = True


@dataclass(frozen=True)
class Span:
    """Lines between two marked lines, undecoded.

    ``line`` is the 1-based number of the first; ``suspect`` is set when a line ends in ``nan``/
    ``inf`` (any sign) or in an exponent of 37 or more; ``originals`` holds, by line number, the
    text of lines that were made canonical.
    """

    data: bytes
    line: int
    suspect: bool
    originals: Optional[Dict[int, str]] = None

    def original(self, line: int, text: str) -> str:
        """The text of ``line`` as the log has it (``text`` is the line as read here)."""
        return self.originals.get(line, text) if self.originals else text


@dataclass(frozen=True, eq=False)
class Displays:
    """A run of display lines (losses, rates, and the lines between them: train outputs),
    handed out whole for a reader to take in bulk; :meth:`pieces` gives the Spans and Marked
    lines the run is made of. No line holds a suspect value or a finding, none is made
    canonical.

    ``line`` is the 1-based number of the first; ``kinds`` holds each line's
    (:data:`~caffe_nantools.logs.plain.LOSS`, ``RATE`` or ``OTHER``: a line inside a span);
    ``breaks`` the offsets of the line breaks in ``data`` (which ends without one).
    """

    data: bytes
    line: int
    kinds: np.ndarray
    breaks: np.ndarray

    def text(self, k: int) -> str:
        """Line ``k`` (0-based) without its line break."""
        begin = int(self.breaks[k - 1]) + 1 if k else 0
        stop = int(self.breaks[k]) if k < len(self.breaks) else len(self.data)
        return self.data[begin:stop].rstrip(b"\r").decode("utf-8", "replace")

    def pieces(self, first: int = 0, stop: Optional[int] = None) -> Iterator[Union[Span, Marked]]:
        """The Spans and Marked lines of lines ``first`` to ``stop`` (a loss or rate each, or
        the ends), as the reader hands them out one by one."""
        stop = len(self.kinds) if stop is None else stop
        kinds = self.kinds[first:stop].tolist()
        k = first
        while k < stop:
            if kinds[k - first] != plain.OTHER:
                yield Marked(self.text(k), self.line + k)
                k += 1
                continue
            last = k
            while last + 1 < stop and kinds[last + 1 - first] == plain.OTHER:
                last += 1
            begin = int(self.breaks[k - 1]) + 1
            yield Span(self.data[begin : int(self.breaks[last]) + 1], self.line + k, False)
            k = last + 1


@dataclass(frozen=True)
class Marked:
    """One solver, check-layer or abort line, decoded, without its line break; ``original`` is
    the line as the log has it when it was made canonical."""

    text: str
    line: int
    original: Optional[str] = None

    @property
    def shown(self) -> str:
        return self.original if self.original is not None else self.text


def read_log(
    path: str,
    *,
    sweep: bool = False,
    displays: bool = False,
    wants_values: Optional[Callable[[], bool]] = None,
) -> Iterator[Union[Span, Marked, Finding, Candidates, Displays]]:
    """The log as Spans and Marked lines, in file order, in constant memory (compressed logs
    decompressed on the way). ``sweep``: the second pass's crash :class:`Finding` s and
    :class:`Candidates` too, each before the first piece that starts after its lines;
    ``displays``: long runs of display lines as :class:`Displays`; ``wants_values``: asked
    before each chunk, False spares the look for :class:`Candidates` in a chunk where no run
    starts (a reader that has its run's first non-finite value needs no more of them).

    Raises:
        FileError: the log cannot be opened or read, or its compressed data is corrupt.
    """
    with open_log(path) as (f, compressed):
        stream = LogStream(sweep=sweep, displays=displays, wants_values=wants_values)
        cr_only = None
        while True:
            chunk = f.read(CHUNK_BYTES)
            if not chunk:
                break
            if cr_only is None:
                # Lines ended by a lone carriage return (classic Mac tools, some terminals' copy).
                cr_only = b"\r" in chunk and b"\n" not in chunk
            if cr_only:
                chunk = chunk.replace(b"\r", b"\n")
            elif not compressed:
                # A plain file gives its cut last line again with the next read: no copy of the
                # chunk to join it to (a compressed one cannot seek back cheaply).
                end = chunk.rfind(b"\n") + 1
                if 0 < end < len(chunk) and not stream.holding:
                    f.seek(end - len(chunk), 1)
                    yield from stream.whole(chunk, end)
                    continue
            yield from stream.feed(chunk)
        yield from stream.close()


class Lines:
    """Bytes that arrive in pieces cut anywhere, handed back as whole lines: what follows the
    last line break is held until the piece that ends its line."""

    def __init__(self) -> None:
        self._held: List[bytes] = []

    def feed(self, data: bytes) -> Tuple[bytes, int]:
        """``(text, end)``: ``text[:end]`` is every line completed by ``data`` (``text`` is
        ``data`` itself when nothing was held, so a big piece is not copied)."""
        end = data.rfind(b"\n") + 1
        if end == 0:
            if data:
                self._held.append(data)  # joined once, when the line ends: no quadratic copying
            return b"", 0
        if self._held:
            end += sum(len(h) for h in self._held)
            data = b"".join(self._held + [data])
        self._held = [data[end:]] if end < len(data) else []
        return data, end

    @property
    def held(self) -> bool:
        return bool(self._held)

    def rest(self) -> bytes:
        """What is held (a last line without its line break), given up."""
        rest, self._held = b"".join(self._held), []
        return rest


class LogStream:
    """A log read as it is written: pieces cut anywhere go in, Spans and Marked lines of the
    lines they complete come out, numbered as in the whole log (with ``sweep``, the second
    pass's :class:`Finding` s and :class:`Candidates` among them, in line order). Each call's pieces must be taken in
    full before the next call."""

    def __init__(
        self,
        *,
        sweep: bool = False,
        displays: bool = False,
        wants_values: Optional[Callable[[], bool]] = None,
    ) -> None:
        self._lines = Lines()
        self._next_line = 1
        self._sweep = sweep
        self._displays = displays
        self._wants_values = wants_values
        self._scratch = Scratch()

    @property
    def lines_read(self) -> int:
        return self._next_line - 1

    def feed(self, data: bytes) -> Iterator[Union[Span, Marked]]:
        yield from self._read(*self._lines.feed(data))

    @property
    def holding(self) -> bool:
        """Whether the start of a line waits for the piece that ends it."""
        return bool(self._lines.held)

    def whole(self, data: bytes, end: int) -> Iterator[Union[Span, Marked]]:
        """The lines of ``data[:end]``, which are whole (nothing is held before them)."""
        yield from self._read(data, end)

    def close(self) -> Iterator[Union[Span, Marked]]:
        """The last line, when the log ends without a line break."""
        rest = self._lines.rest()
        yield from self._read(rest, len(rest))

    def _read(self, text: bytes, end: int) -> Iterator[Union[Span, Marked, Finding, Candidates]]:
        if end:
            values = self._sweep and (
                self._wants_values is None
                or self._wants_values()
                or text.find(b"Solving ", 0, end) >= 0  # a new run wants its own
            )
            self._next_line += yield from _pieces(
                text, end, self._next_line, self._sweep, self._displays, values, self._scratch
            )


def _pieces(
    chunk: bytes,
    end: int,
    first_line: int,
    sweep: bool = False,
    displays: bool = False,
    values: bool = True,
    scratch: Optional[Scratch] = None,
):
    """Spans and Marked lines of ``chunk[:end]`` (and the second pass's crash findings, and
    with ``values`` its :class:`Candidates`, with ``sweep``; :class:`Displays` for long runs of
    display lines, with ``displays``); returns its line count."""
    scratch = scratch or Scratch()
    ends, suspects, fatal = _line_ends(chunk, end, scratch)
    a = np.frombuffer(chunk, np.uint8, count=end)
    brackets = scratch.offsets(a, _BRACKET)
    if sweep:
        # On the lines as the log has them, before any is made canonical.
        swept = sweep_lazily(chunk, end, first_line, ends, values, scratch, brackets)
        lines = np.concatenate((swept.candidates.lines, [f.line for f in swept.crashes])).astype(
            np.int64
        )
        found = lines - first_line
        pieces = _split(
            chunk, end, first_line, ends, brackets, suspects, fatal, scratch, displays, found
        )
        yield from _with_findings(pieces, swept)
    else:
        yield from _split(
            chunk, end, first_line, ends, brackets, suspects, fatal, scratch, displays
        )
    return len(ends)


def _with_findings(pieces, swept: Swept):
    """``pieces`` with the second pass's among them: each crash finding, and the candidates
    for a non-finite value, before the first piece that starts after their lines."""
    crashes, candidates = swept.crashes, swept.candidates
    if not crashes and not len(candidates.lines):  # most chunks: nothing to put among them
        yield from pieces
        return
    lines = candidates.lines.tolist()
    k = c = 0
    while True:
        piece = next(pieces, None)
        start = piece.line if piece is not None else None
        upto = len(lines) if start is None else bisect_left(lines, start)
        if upto > c:
            yield candidates.part(c, upto)
            c = upto
        while k < len(crashes) and (start is None or crashes[k].line < start):
            yield crashes[k]
            k += 1
        if piece is None:
            return
        yield piece


def _split(
    chunk, end, first_line, ends, brackets, suspects, fatal, scratch, displays=False, found=None
):
    """Spans and Marked lines of ``chunk[:end]``, whose line ends and ``]`` s are known
    (``found``: the chunk's lines with a finding, kept out of Displays)."""
    originals = None
    if fatal is None:
        chunk, originals = _canonical(chunk, end, first_line)
        end = len(chunk)
        ends, suspects, fatal = _line_ends(chunk, end, scratch)
        brackets = scratch.offsets(np.frombuffer(chunk, np.uint8, count=end), _BRACKET)
        displays = False
    a = np.frombuffer(chunk, np.uint8, count=end)
    starts = np.concatenate(([0], ends + 1))
    stops = np.append(ends, end)
    if len(starts) and starts[-1] >= end:
        starts, stops = starts[:-1], stops[:-1]
    iteration, marked = _marks(chunk, a, brackets, ends, fatal)
    lines = _Chunk(chunk, a, first_line, starts, stops, ends, brackets)
    runs = _runs(lines, iteration, marked, suspects, found) if displays else []
    yield from _handed_out(lines, marked, runs, suspects, originals)


@dataclass(frozen=True, eq=False)
class _Chunk:
    """A chunk's bytes (also as an array), its first line's number, and where its lines start
    and stop (their line breaks, or the end), its line breaks and its ``]``s."""

    data: bytes
    a: np.ndarray
    first_line: int
    starts: np.ndarray
    stops: np.ndarray
    ends: np.ndarray
    brackets: np.ndarray


def _marks(chunk: bytes, a: np.ndarray, brackets: np.ndarray, ends: np.ndarray, fatal):
    """The offsets of the ``]`` of ``Iteration N`` messages, and the numbers (0-based, in
    order, once each) of the marked lines: those, the other marked messages', glog's F lines."""
    iteration, other = _mark_candidates(a, brackets)
    other = np.array([p for p in other.tolist() if _MARKED.match(chunk, p, len(a))], np.int64)
    lines = np.searchsorted(ends, np.concatenate((iteration, other, fatal))).astype(np.int64)
    lines.sort()  # one line may hold several marks
    return iteration, lines[np.concatenate((lines[:1] >= 0, lines[1:] != lines[:-1]))]


def _handed_out(lines: _Chunk, marked, runs, suspects, originals):
    """The chunk's pieces in file order: the Span before each marked line (when a line lies
    between them), the Marked line or the Displays of a run starting there, the last Span."""
    chunk, first_line, starts, stops = lines.data, lines.first_line, lines.starts, lines.stops
    n = len(marked)
    # Span k runs from the end of mark k - 1 to the start of mark k. Only the marks outside
    # runs and each run's first are visited: a Displays stands for the rest of its run.
    visit = np.ones(n + 1, bool)
    for lo, hi, _ in runs:
        visit[lo + 1 : hi + 1] = False
    ks = np.flatnonzero(visit)
    before = marked[np.maximum(ks - 1, 0)] if n else np.zeros(1, np.int64)
    at = marked[np.minimum(ks, n - 1)] if n else np.zeros(1, np.int64)
    span_starts = np.where(ks > 0, stops[before] + 1, 0)
    span_stops = np.where(ks < n, starts[at], len(lines.a))
    first = first_line + np.where(ks > 0, before + 1, 0)
    flagged = np.searchsorted(suspects, span_stops) > np.searchsorted(suspects, span_starts)
    run_from = {lo: (hi, kind) for lo, hi, kind in runs}
    for k, begin, stop, line, suspect, mark in zip(
        ks.tolist(), *(x.tolist() for x in (span_starts, span_stops, first, flagged, at))
    ):
        if stop > begin:
            yield Span(chunk[begin:stop], line, suspect, originals)
        if k == n:
            break
        if k in run_from:  # a run of display lines, handed out whole
            hi, kind = run_from[k]
            last = int(marked[hi])
            yield Displays(
                chunk[starts[mark] : stops[last]],
                first_line + mark,
                kind[mark : last + 1],
                lines.ends[mark:last] - starts[mark],
            )
            continue
        yield Marked(
            chunk[starts[mark] : stops[mark]].rstrip(b"\r").decode("utf-8", "replace"),
            first_line + mark,
            originals.get(first_line + mark) if originals else None,
        )


def _mark_candidates(a: np.ndarray, brackets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Of the ``]`` at ``brackets``, those followed by ``" Iteration "`` and a digit, and those
    followed by a space and a letter that starts another marked message (for the regex)."""
    at = brackets[brackets + 2 < len(a)]
    at = at[(a[at + 1] == 32) & _MARK_LETTERS[a[at + 2]]]  # a byte each first: most go here
    after = words.at(a, at + 1, 2)  # " Iterati", "on 5...."
    head, tail = after[:, 0], after[:, 1]
    iteration = words.starts_with(head, b" Iterati") & words.starts_with(tail, b"on ")
    iteration &= _DIGITS[((tail >> _24) & _BYTE).astype(np.intp)]
    letter = ((head >> _8) & _BYTE).astype(np.intp)
    other = letter != _I
    # "Train net output" would go to the regex by the thousand: a "T" is "Traceback" or nothing.
    other &= (letter != _T) | (((head >> _32) & _BYTE) == _C)
    return at[iteration], at[other]


def _runs(lines: _Chunk, iteration, marked, suspects, found):
    """``(first, last, kinds)`` of each long run of marks (indices into ``marked``) that are all
    plain display lines with nothing between them but plain lines (:mod:`caffe_nantools.logs.plain`);
    ``kinds``: every line's."""
    if len(iteration) < _RUN or not _long(np.diff(marked) <= _RUN_GAP):
        return []  # a debug_info log: its blocks keep its marks apart
    noisy = _noisy(lines, suspects, found)
    before = np.concatenate(([0], np.cumsum(noisy)))
    clear = before[marked[1:]] == before[marked[:-1] + 1]
    # Only the lines of marks that could make a long run are told apart (a debug_info log has
    # none: its blocks lie between its marks).
    near = np.zeros(len(lines.starts), bool)
    for lo, hi in _long(clear):
        near[marked[lo : hi + 1]] = True
    kind = np.zeros(len(lines.starts), np.int8)
    at = np.searchsorted(lines.ends, iteration)
    iteration, at = iteration[near[at]], at[near[at]]
    brackets = lines.brackets
    lead = brackets[np.searchsorted(brackets, lines.starts[at])] == iteration
    at = at[lead]
    kind[at] = plain.kinds(lines.a, lines.starts[at], lines.stops[at], iteration[lead])
    # A display line the second pass may find a value in is read alone, where it stands.
    bulk = (kind[marked] != plain.OTHER) & ~noisy[marked]
    return [(lo, hi, kind) for lo, hi in _long(bulk[:-1] & bulk[1:] & clear)]


def _long(links: np.ndarray) -> List[Tuple[int, int]]:
    """``(first, last)`` of each run of at least ``_RUN`` marks joined by ``links`` (link j
    joins marks j and j + 1)."""
    edges = np.diff(np.concatenate(([0], links.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = ends - starts + 1 >= _RUN
    return list(zip(starts[long].tolist(), ends[long].tolist()))


def _noisy(lines: _Chunk, suspects, found) -> np.ndarray:
    """Which lines keep the marks around them apart: a suspect value, a finding, debug_info
    text (which holds a "] " of its own: a line with one "]" is plain unless it is
    "[Forward]" or "[Backward]", both ending in "d]")."""
    a, starts, stops, brackets = lines.a, lines.starts, lines.stops, lines.brackets
    first = np.searchsorted(brackets, starts)
    count = np.searchsorted(brackets, stops) - first
    one = brackets[np.minimum(first, max(len(brackets) - 1, 0))]
    maybe = np.flatnonzero((count == 1) & (a[one - 1] == _D))
    at = one[maybe]
    debug = words.starts_with(words.at(a, at - 8)[:, 0], b"[Forward")
    debug |= words.starts_with(words.at(a, at - 9)[:, 0], b"[Backwar")
    noisy = count > 1
    noisy[maybe[debug]] = True
    noisy[np.searchsorted(lines.ends, suspects)] = True
    if found is not None and len(found):
        noisy[found] = True
    return noisy


def _canonical(chunk: bytes, end: int, first_line: int) -> Tuple[bytes, Dict[int, str]]:
    """``chunk[:end]`` with every line that holds a known message made a canonical glog line, one
    line for one (so numbers stay), and the original text of the lines changed."""
    lines = chunk[:end].split(b"\n")
    originals = {}
    for k, raw in enumerate(lines):
        text = raw.decode("utf-8", "replace").rstrip("\r")
        fixed = canonical(text)
        if fixed is not None and fixed != text:
            lines[k] = fixed.encode()
            originals[first_line + k] = text
    return b"\n".join(lines), originals


def _line_ends(
    chunk: bytes, end: int, scratch: Scratch
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Offsets of the newlines in ``chunk[:end]``, of the ends of the lines whose value is
    suspect (just past each one's last character, a Windows "\r" left out), and of the starts of
    glog's F lines;
    the last is None when a line holding a known message lacks glog's prefix (the chunk must be
    made canonical first)."""
    a = np.frombuffer(chunk, np.uint8, count=end)
    ends = scratch.offsets(a, _NL)
    stops = ends if end == 0 or a[end - 1] == _NL else np.append(ends, end)
    # A glog line starts with its level and a digit; an empty line holds nothing.
    starts = np.concatenate(([0], stops[:-1] + 1)) if len(stops) else stops
    level, digit = a[starts], a[np.minimum(starts + 1, max(end - 1, 0))]
    glog = _LEVELS[level] & _DIGITS[digit]
    fatal = starts[glog & (level == _FATAL)]
    other = np.flatnonzero(~glog & (starts < stops) & (level != _CR))
    for k in other.tolist():
        if _KNOWN.search(chunk, int(starts[k]), int(stops[k])):
            fatal = None
            break
    # The last character of each line, stepping over a Windows "\r"; lines under four bytes
    # cannot hold a suspect value.
    stops = stops - (a[np.maximum(stops - 1, 0)] == _CR)
    stops = stops[stops >= 4]
    last = a[stops - 1]
    odd = (
        (last == _N)
        | (last == _F)
        | ((a[stops - 3] == _PLUS) & (a[stops - 2] == _THREE) & (last >= ord("7")))
    )
    odd |= (
        (last == _UPPER_N)
        | (last == _UPPER_F)
        | (last == _UPPER_D)
        | ((last == _CLOSE) & (a[stops - 2] == _D))
    )
    return ends, stops[odd], fatal
