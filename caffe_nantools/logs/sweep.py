"""The second pass over a log: every line looked at for a non-finite number in a value position
and for a crash or abort marker, whatever the line's layout.

The structured reading (:mod:`caffe_nantools.logs.chunks`, the solver and trace parsers) knows
the layouts of Caffe's lines; a NaN in a line it does not know (a fork's loss layer, a Python
layer's print, two records glued together, a record wrapped over two lines) or a crash the shell
reports (``Segmentation fault (core dumped)``, ``Killed``) passes it by. This pass knows no layout:
it only looks for the tokens, so that an all-clear is never given on a log that holds one.

A value position: after ``=``, ``:``, ``(``, ``[``, ``{``, ``,``, ``|`` or ``]`` (spaces
allowed), after a number and a space (a row of values), at the start of a line or alone at its
end (``loss nan``). Names are not values: ``nan_layer``, ``inference.py``, ``banana`` and a
speed field (``-nan iter/s``) are passed over.

On a chunk of a big log the cost is a few numpy passes (:func:`sweep_chunk`): non-finite tokens
all hold an ``n`` (``nan``, ``inf``, ``1.#IND``: any case), so only the ``n`` s of the chunk are
looked at, and crash words are looked for in the lines that are not glog ``I`` lines (a crash is
never logged at INFO: the shell, the C++ runtime, CUDA and glog's ``E``/``F`` lines report it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Union

import numpy as np

from caffe_nantools.logs.glog import DATE
from caffe_nantools.logs.scratch import Scratch

#: A non-finite number as C runtimes and Python print it: ``nan``, ``-nan``, ``NaN``, ``inf``,
#: ``-Infinity``, MSVC's ``-nan(ind)``, ``1.#QNAN``, ``-1.#IND``, ``1.#INF`` (and their padding
#: zeros), standing alone (no letter, digit, ``_`` or ``.`` joined to it).
_TOKEN = re.compile(
    r"(?<![\w.#])([+-]?(?:nan(?:\(\w*\))?|inf(?:inity)?|1\.#(?:qnan|ind|inf)\d*))(?![\w.])",
    re.IGNORECASE,
)
#: What stands before a value: a separator (spaces allowed), glog's ``] `` (a layer's own
#: line of values), another number and a space (a row of values: ``0.07 nan 0.04``), or the start
#: of the line (behind quoting: ``>``, backticks, spaces).
_BEFORE = re.compile(r"(?:[=:(\[{,|\t\]]|\d\s|^[\s>`*]*)\s*\Z")
#: A rate after the token: ``-nan iter/s`` is the speed of a first iteration timed at 0 s.
_SPEED = re.compile(r"\s*\w*/s\b")

#: A crash or abort, with or without glog's prefix: the shell's reports of a signal, the C++
#: runtime's, CUDA's and its libraries' errors, a job runner's exit status, glog's and Python's.
_CRASH = re.compile(
    r"Segmentation fault|Bus error|Illegal instruction|Floating point exception|"
    r"(?<![\w-])(?:Killed|Aborted)\b|terminate called|std::bad_alloc|core dumped|"
    r"CUDA error|CUDA_ERROR_\w+|cudaError\w*|(?:CUDNN|CUBLAS|CURAND|CUFFT|NCCL)_STATUS_(?!SUCCESS)\w+|"
    r"\b(?:cuDNN|cuBLAS|NCCL) error|out of memory|illegal memory access|unspecified launch failure|"
    r"(?:error|exit) code -\d+|(?:terminated|killed) by signal \d+|exit(?:ed with)? (?:code|status) 1(?:3[4-9]|4[0-3])\b|"
    r"Check failed|Check failure stack trace|\*\*\\?\* Aborted at|Traceback \(most recent call last\)|"
    rf"(?<![A-Za-z_])F{DATE} \d\d:\d\d:\d\d\.\d{{6}} "
)
#: Lowercase text that every non-finite token holds one of, and every crash marker but glog's F
#: line: a line without any is passed over before a regex looks at it.
_TOKEN_HINTS = ("nan", "inf", "ind")
_CRASH_HINTS = (
    "fault",
    "bus error",
    "illegal",
    "exception",
    "killed",
    "abort",
    "terminate",
    "alloc",
    "dumped",
    "cuda",
    "_status_",
    "error",
    "memory",
    "launch",
    "code",
    "status",
    "check fail",
    "traceback",
)
# An F record may be glued to a value (``= 0.5F1121 ...``), not to a word. The F first: a
# literal the regex skips ahead to, then what stands before it.
_FATAL = re.compile(rf"F(?<![A-Za-z_]F){DATE} ")
_FATAL_BYTES = re.compile(_FATAL.pattern.encode())
_CRASH_HINT_BYTES = [hint.encode() for hint in _CRASH_HINTS]
#: The same markers in bytes: on ASCII text (where ``\w``, ``\d`` and ``\b`` mean the same in
#: both), the lines it finds nothing in are passed over without being decoded one by one.
_CRASH_BYTES = re.compile(_CRASH.pattern.encode())
#: glog's prefix of an INFO line: ``I`` and the month's first digit at the start of the line.
_I, _NL, _N, _LOWER, _BRACKET = ord("I"), ord("\n"), ord("n"), 0x20, ord("]")
_DIGIT = np.zeros(256, bool)
_DIGIT[ord("0") : ord("9") + 1] = True
_AFD = np.zeros(256, bool)
_AFD[[ord(c) for c in "afdAFD"]] = True
_A, _F, _D, _Q, _I_LOWER, _HASH = (ord(c) for c in "afdqi#")
#: What a token cannot follow (the ``(?<![\w.#])`` of its regex, in ASCII).
_JOINED = np.zeros(256, bool)
_JOINED[[ord(c) for c in "_.#0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]] = (
    True
)


@dataclass(frozen=True)
class Finding:
    """A line the second pass stopped at.

    ``kind`` is ``nonfinite`` (``token``: the value as written, e.g. ``-nan``, ``1.#QNAN``) or
    ``crash`` (``token``: the marker, e.g. ``Segmentation fault``, ``Check failed``); ``line`` is
    1-based; ``text`` is the line as the log has it, without its line break.
    """

    line: int
    kind: str
    token: str
    text: str


def line_findings(text: str, line: int) -> List[Finding]:
    """The non-finite values and the crash marker of one line (each its first), in order."""
    found = []
    value, crash = _first_value(text), _crash_marker(text)
    if value is not None:
        found.append((value.start(), Finding(line, "nonfinite", value.group(1), text)))
    if crash is not None:
        found.append((crash.start(), Finding(line, "crash", crash.group(0).strip(), text)))
    return [f for _, f in sorted(found, key=lambda pair: pair[0])]


def _first_value(text: str) -> Optional[re.Match]:
    """The first non-finite value in a value position of ``text``, or None."""
    if not any(hint in text.lower() for hint in _TOKEN_HINTS):
        return None
    for m in _TOKEN.finditer(text):
        if _BEFORE.search(text, 0, m.start()) is None and text[m.end() :].strip():
            continue  # a word inside a sentence, not a value
        if _SPEED.match(text, m.end()):
            continue
        return m
    return None


def _crash_marker(text: str) -> Optional[re.Match]:
    lowered = text.lower()
    if any(hint in lowered for hint in _CRASH_HINTS) or _FATAL.search(text):
        return _CRASH.search(text)
    return None


def _value_finding(text: str, line: int) -> Optional[Finding]:
    m = _first_value(text)
    return Finding(line, "nonfinite", m.group(1), text) if m is not None else None


def _crash_finding(text: str, line: int) -> Optional[Finding]:
    m = _crash_marker(text)
    return Finding(line, "crash", m.group(0).strip(), text) if m is not None else None


def sweep_lines(lines: Iterable[Union[str, bytes]], first_line: int = 1) -> Iterator[Finding]:
    """Every finding of ``lines`` (a log's lines, with or without their line breaks, as read one
    by one: ``watch`` and ``hunt`` feed a training's output), numbered from ``first_line``."""
    for number, raw in enumerate(lines, first_line):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        yield from line_findings(text.rstrip("\r\n"), number)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Lines of a chunk that may hold a non-finite value (an n where a token's spelling can
    start: :func:`_token_candidates`), each looked at only when asked: a reader that has its
    run's first value passes them over.

    ``lines`` are 1-based numbers, ``begins``/``stops`` the lines' bounds in ``chunk``."""

    chunk: bytes
    lines: np.ndarray
    begins: np.ndarray
    stops: np.ndarray

    @classmethod
    def none(cls, chunk: bytes) -> Candidates:
        return cls(chunk, *(np.zeros(0, np.int64) for _ in range(3)))

    def part(self, first: int, stop: int) -> Candidates:
        return Candidates(
            self.chunk, self.lines[first:stop], self.begins[first:stop], self.stops[first:stop]
        )

    def first(self) -> Optional[Finding]:
        """The first non-finite value among the lines, or None."""
        for line, begin, stop in zip(
            self.lines.tolist(), self.begins.tolist(), self.stops.tolist()
        ):
            found = _value_finding(_text(self.chunk, begin, stop), line)
            if found is not None:
                return found
        return None


@dataclass(frozen=True, eq=False)
class Swept:
    """The second pass over a chunk: its crash markers found, its non-finite values to be
    looked for in ``candidates`` (in line order both)."""

    crashes: List[Finding]
    candidates: Candidates


def sweep_chunk(
    chunk: bytes, end: int, first_line: int, ends: Optional[np.ndarray] = None
) -> List[Finding]:
    """Every finding of the whole lines ``chunk[:end]``, the first numbered ``first_line``;
    ``ends``: the offsets of its newlines, when the caller has them already. The same as
    :func:`sweep_lazily` finds, each candidate looked at."""
    swept = sweep_lazily(chunk, end, first_line, ends)
    found = {f.line: [f] for f in swept.crashes}
    c = swept.candidates
    for line, begin, stop in zip(c.lines.tolist(), c.begins.tolist(), c.stops.tolist()):
        text = _text(chunk, begin, stop)
        value = _value_finding(text, line)
        if value is not None:
            # With a crash marker on the line too: the two in the order they stand.
            found[line] = line_findings(text, line) if line in found else [value]
    return [f for line in sorted(found) for f in found[line]]


def sweep_lazily(
    chunk: bytes,
    end: int,
    first_line: int,
    ends: Optional[np.ndarray] = None,
    values: bool = True,
    scratch: Optional[Scratch] = None,
    brackets: Optional[np.ndarray] = None,
) -> Swept:
    """:func:`sweep_chunk` with the non-finite values left to be looked for when wanted (a log
    whose NaN persists holds millions of them, and a reading needs a run's first); without
    ``values``, the crashes alone. ``ends``, ``brackets``: the offsets of the chunk's line
    breaks and ``]`` s, when the caller has them already."""
    if end == 0:
        return Swept([], Candidates.none(chunk))
    a = np.frombuffer(chunk, np.uint8, count=end)
    scratch = scratch or Scratch()
    if ends is None:
        ends = scratch.offsets(a, _NL)
    begins = np.concatenate(([0], ends + 1))
    stops = np.append(ends, end)
    # A candidate for a crash: every line that is not a glog INFO line, and every INFO line a
    # record was glued onto (a paste that lost its line breaks).
    starts = begins[begins < end]
    info = (a[starts] == _I) & _DIGIT[a[np.minimum(starts + 1, end - 1)]]
    if brackets is None:
        brackets = scratch.offsets(a, _BRACKET)
    info[_glued(a, ends, brackets)] = False
    crashes = []
    for k in _may_crash(chunk, ends, end, np.flatnonzero(~info)).tolist():
        found = _crash_finding(_text(chunk, int(begins[k]), int(stops[k])), first_line + k)
        if found is not None:
            crashes.append(found)
    if not values:
        return Swept(crashes, Candidates.none(chunk))
    lines = np.searchsorted(ends, _token_candidates(a, scratch))  # in order: once each is a diff
    lines = lines[np.concatenate(([True], lines[1:] != lines[:-1]))] if len(lines) else lines
    return Swept(crashes, Candidates(chunk, first_line + lines, begins[lines], stops[lines]))


def _glued(a: np.ndarray, ends: np.ndarray, brackets: np.ndarray) -> np.ndarray:
    """The lines (numbers in the chunk) where a ``]`` that is not the line's first follows a
    digit, as a glued glog record's ``file.cpp:123]`` does (debug_info's ``[Forward]`` does
    not)."""
    line = np.searchsorted(ends, brackets)
    later = np.flatnonzero(line[1:] == line[:-1]) + 1
    return line[later[_DIGIT[a[brackets[later] - 1]]]]


def _text(chunk: bytes, begin: int, stop: int) -> str:
    return chunk[begin:stop].decode("utf-8", "replace").rstrip("\r")


def may_be_nonfinite(chunk: bytes, end: Optional[int] = None) -> bool:
    """Whether ``chunk[:end]`` holds a candidate for a non-finite token at all (a look at its
    n's, a few numpy passes): False means :func:`sweep_chunk` would find no non-finite value."""
    count = len(chunk) if end is None else end
    return len(_token_candidates(np.frombuffer(chunk, np.uint8, count=count), Scratch())) > 0


def _token_candidates(a: np.ndarray, scratch: Scratch) -> np.ndarray:
    """The offsets of the n of every spelling of a non-finite token, in any case: an n before
    an a, f or d (the n's first: one pass and one index, then the letter after each), where a
    token can stand: ``nan`` after no letter, digit, ``_``, ``.`` or ``#``, nor can ``inf``
    before its i, except after Windows' ``1.#`` (``1.#QNAN``, ``1.#INF``, ``1.#IND``). A name
    such as ``loss_final`` or ``seg_nd`` is no candidate."""
    low = np.bitwise_or(a, _LOWER, out=scratch.take(len(a)))
    candidates = np.flatnonzero(np.equal(low, _N, out=low.view(bool)))
    candidates = candidates[candidates + 1 < len(a)]
    candidates = candidates[_AFD[a[candidates + 1]]]
    after = a[candidates + 1] | _LOWER
    # What stands before: a line's start (or the text's) stands for none.
    one = np.where(candidates >= 1, a[np.maximum(candidates - 1, 0)], _NL)
    two = np.where(candidates >= 2, a[np.maximum(candidates - 2, 0)], _NL)
    windows = two == _HASH
    i_before = (one | _LOWER) == _I_LOWER
    nan = (after == _A) & (~_JOINED[one] | (((one | _LOWER) == _Q) & windows))
    inf = (after == _F) & i_before & (~_JOINED[two] | windows)
    ind = (after == _D) & i_before & windows
    return candidates[nan | inf | ind]


def _may_crash(chunk: bytes, ends: np.ndarray, end: int, lines: np.ndarray) -> np.ndarray:
    """Of ``lines`` (numbers in the chunk), those that may hold a crash marker: all of them
    when any is not ASCII, else those the marker's regex finds one in, run once over them
    all (no marker spans a line break), and only when a hint or an F line is among them (the
    regex has no literal to skip ahead with: a debug_info log's E lines would cost it dear)."""
    if len(lines) == 0:
        return lines
    begins = np.concatenate(([0], ends + 1))[lines]
    stops = np.append(ends, end)[lines]
    texts = [chunk[b:e] for b, e in zip(begins.tolist(), stops.tolist())]
    joined = b"\n".join(texts)
    if not joined.isascii():
        return lines
    lowered = joined.lower()
    if not any(hint in lowered for hint in _CRASH_HINT_BYTES) and not _FATAL_BYTES.search(joined):
        return lines[:0]
    offsets = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    hits = [m.start() for m in _CRASH_BYTES.finditer(joined)]
    return lines[np.unique(np.searchsorted(offsets, hits, "right") - 1)]
