"""The solver's display lines told apart with numpy, a chunk at a time, so that a log of little
else (a training without debug_info) is read at the speed of its bytes.

A line is taken here as a loss (``Iteration N (...), loss = X``) or a rate
(``Iteration N, lr = Y``) only when the line-by-line reading would take it as one with a value
that needs no second look: a canonical glog line (level I, W or E), the message right after its
first ``] ``, the value a plain decimal that ends the line, far below 1e37 and not near 87.3365
(:data:`caffe_nantools.diagnose.reading.SATURATED_SOFTMAX_LOSS`). The shapes checked are
narrower than the parser's: a line in doubt is left to the parser, never taken wrongly.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

import caffe_nantools.logs.words as words

#: Kinds of a line: any other line, a loss line, a rate line.
OTHER, LOSS, RATE = 0, 1, 2

# glog's fixed-width prefix ``LMMDD HH:MM:SS.uuuuuu `` as three words: where the digits are, and
# the literal bytes (the level is checked apart; the last word's two free bytes are the tid's).
_TEMPLATE = "L0000 00:00:00.000000 "
_PREFIX = []
for _k in range(0, 24, 8):
    _part = _TEMPLATE[_k : _k + 8]
    _PREFIX.append(
        (
            np.uint64(sum(0x80 << (8 * j) for j, c in enumerate(_part) if c == "0")),
            words.pattern(bytes(0 if c in "L0" else ord(c) for c in _part))[0],
            words.pattern(bytes(0 if c in "L0" else 255 for c in _part))[0],
        )
    )
_LEVELS = np.zeros(256, bool)
_LEVELS[[ord(c) for c in "IWE"]] = True
_PAREN_WORDS = 5  # "(x iter/s, y s/n iters)" of up to 40 bytes
_BYTE = np.uint64(0xFF)
_16 = np.int64(0xFFFF)


def rows(a: np.ndarray, at: np.ndarray, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """The ``width`` bytes of ``a`` from each offset of ``at``, one row each (a view's rows: no
    index array per byte), and which rows lay inside ``a`` (the others are garbage)."""
    room = len(a) - width
    if room < 0:
        return np.zeros((len(at), width), np.uint8), np.zeros(len(at), bool)
    windows = as_strided(a, shape=(room + 1, width), strides=(1, 1), writeable=False)
    inside = (at >= 0) & (at <= room)
    return windows[np.clip(at, 0, room)], inside


def kinds(a: np.ndarray, starts: np.ndarray, stops: np.ndarray, at: np.ndarray) -> np.ndarray:
    """LOSS, RATE or OTHER for each line from ``starts`` to ``stops`` (its line break, or the
    text's end) whose first ``]`` is at ``at`` and is followed by ``" Iteration "`` and a digit.

    Each test reads a few words per line (:mod:`caffe_nantools.logs.words`): the prefix and the
    thread id, the iteration's digits, what follows them, the value at the line's end."""
    n = len(at)
    if n == 0:
        return np.zeros(0, np.int8)
    w = words.view(a)
    ok = _LEVELS[a[starts]] & _prefix(w, starts)
    length, inside = _digits(w, at + 12)
    ok &= inside & (length >= 1) & (length <= 15)
    after = at + 12 + length
    ends = stops - (a[np.maximum(stops - 1, 0)] == 13)  # a Windows "\r" is not the value's
    first, inside = words.at(w, after)
    rate = ok & inside & words.starts_with(first, b", lr = ")
    value = _Value(w, ends)
    # A loss's value follows the line's last space; a rate's, the ", lr = ".
    begins = np.where(rate, after + 7, ends - 16 + value.last_space + 1)
    good = value.plain(begins)
    sep, inside = words.at(w, begins - 9)
    loss = ok & ~rate & inside & words.starts_with(sep, b", loss =") & (value.last_space >= 0)
    loss &= _paren(w, after, begins - 9) & ~value.near_saturated(begins)
    return np.where(rate & good, RATE, np.where(loss & good, LOSS, OTHER)).astype(np.int8)


def _prefix(w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Whether each line starts with glog's prefix up to its thread id, a space after it."""
    ok = np.ones(len(starts), bool)
    tail = None
    for k, (digit_flags, value, mask) in enumerate(_PREFIX):
        word, inside = words.at(w, starts + 8 * k)
        ok &= inside & ((words.digits(word) & digit_flags) == digit_flags)
        ok &= (word & mask) == value
        tail = word
    # " *(\d+) " from byte 22 on: the last word's two free bytes and eight more.
    more, inside = words.at(w, starts + 24)
    ok &= inside
    spaces = _mask16(tail, more, lambda x: words.equal(x, 32)) >> 6
    digits = _mask16(tail, more, words.digits) >> 6
    f = words.LOWEST[~spaces & _16]
    g = f + words.LOWEST[~(digits >> np.minimum(f, 15)) & _16]
    return ok & (f < 10) & (g > f) & (g < 10) & (((spaces >> np.minimum(g, 15)) & 1) == 1)


def _digits(w: np.ndarray, at: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """How many digits stand from ``at`` on (16 for 16 or more), and whether they lay inside."""
    lo, inside = words.at(w, at)
    hi, inside_hi = words.at(w, at + 8)
    mask = _mask16(lo, hi, words.digits)
    return words.LOWEST[~mask & _16].astype(np.int64), inside & inside_hi


def _mask16(lo: np.ndarray, hi: np.ndarray, flags) -> np.ndarray:
    """The 16-bit mask of a per-byte test over two words that follow each other."""
    return words.compact(flags(lo)) | (words.compact(flags(hi)) << 8)


def _paren(w: np.ndarray, after: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """Whether what stands between an iteration's digits (``after``) and ``", loss = "``
    (``sep``) is nothing or ``" (...)"`` with no ``)`` inside, of up to 40 bytes."""
    length = sep - after
    ok = length == 0
    head, _ = words.at(w, after)
    close, _ = words.at(w, sep - 1)
    wrapped = words.starts_with(head, b" (") & words.starts_with(close, b")")
    wrapped &= (length >= 3) & (length <= 8 * _PAREN_WORDS)
    # The inner bytes: from after + 2 to sep - 2.
    inner = length - 3
    for k in range(_PAREN_WORDS):
        word, _ = words.at(w, after + 2 + 8 * k)
        stray = words.equal(word, ord(")")) & words.flags_of(inner - 8 * k)
        wrapped &= stray == 0
    return ok | wrapped


class _Value:
    """The last 16 bytes before each line's end (``ends``) as 16-bit masks of their kinds of
    byte (bit k: byte ``ends - 16 + k``)."""

    def __init__(self, w: np.ndarray, ends: np.ndarray) -> None:
        self.ends = ends
        self.lo, inside = words.at(w, ends - 16)
        self.hi, inside_hi = words.at(w, ends - 8)
        self.inside = inside & inside_hi
        lo, hi = self.lo, self.hi

        def kind(byte: int) -> np.ndarray:
            return _mask16(lo, hi, lambda x: words.equal(x, byte))

        self.digit = _mask16(lo, hi, words.digits)
        self.dot, self.minus, self.plus, self.eight = (kind(ord(c)) for c in ".-+8")
        self.e = _mask16(
            lo | np.uint64(0x2020202020202020),
            hi | np.uint64(0x2020202020202020),
            lambda x: words.equal(x, ord("e")),
        )
        space = kind(32)
        self.last_space = words.HIGHEST[space].astype(np.int64)

    def byte(self, k: np.ndarray) -> np.ndarray:
        """Byte ``k`` (0 to 15) of each line's last 16."""
        k = np.clip(k, 0, 15)
        word = np.where(k < 8, self.lo, self.hi)
        return ((word >> (8 * (k % 8)).astype(np.uint64)) & _BYTE).astype(np.int64)

    def plain(self, begins: np.ndarray) -> np.ndarray:
        """Whether the value from ``begins`` to the end is ``-?d[digits and one .]`` with an
        optional exponent: a number ``float`` reads, below 1e26 in magnitude."""
        k0 = begins - (self.ends - 16)
        ok = self.inside & (k0 >= 0) & (k0 <= 15)
        k0 = np.clip(k0, 0, 15)
        region = (_16 << k0) & _16
        digit, dot, e = self.digit, self.dot & region, self.e & region
        sign = (self.minus | self.plus) & region
        ok &= (region & ~(digit | dot | e | sign)) == 0
        ok &= (digit >> 15) == 1  # ends in a digit
        minus_first = (self.minus >> k0) & 1
        # A digit first, or "-" and a digit; no leading zero (a way round the 87 test).
        lead = k0 + minus_first
        ok &= ((digit >> lead) & 1) == 1
        ok &= ~((self.byte(lead) == ord("0")) & (((digit >> (lead + 1)) & 1) == 1))
        ok &= ((dot & (dot - 1)) == 0) & ((e & (e - 1)) == 0)
        # A sign only first or right after the exponent's e; no "." in the exponent.
        ok &= (sign & ~((1 << k0) | (e << 1))) == 0
        ok &= (e == 0) | ((dot & ~(e - 1)) == 0)
        # A positive exponent of one digit, or two starting with 0.
        at_e = words.LOWEST[e].astype(np.int64)
        signed = (sign >> np.minimum(at_e + 1, 15)) & 1
        negative = (self.minus >> np.minimum(at_e + 1, 15)) & 1
        count = 15 - at_e - signed
        small = (
            (negative == 1)
            | (count == 1)
            | ((count == 2) & (self.byte(np.full_like(k0, 14)) == ord("0")))
        )
        return ok & ((e == 0) | small)

    def near_saturated(self, begins: np.ndarray) -> np.ndarray:
        """Whether a loss from ``begins`` may lie within 0.01 of 87.3365: ``87.`` first, or an
        8 in a mantissa before an exponent, unless the exponent is negative and the mantissa has
        one digit before its point (below 1 then, as Caffe prints small values)."""
        k0 = np.clip(begins - (self.ends - 16), 0, 15)
        near = (self.byte(k0) == ord("8")) & (self.byte(k0 + 1) == ord("7"))
        near &= self.byte(k0 + 2) == ord(".")
        region = (_16 << k0) & _16
        e = self.e & region
        at_e = words.LOWEST[e].astype(np.int64)
        negative = ((self.minus >> np.minimum(at_e + 1, 15)) & 1) == 1
        lead = k0 + ((self.minus >> k0) & 1)
        small = negative & ((self.dot >> np.minimum(lead + 1, 15)) & 1 == 1)
        return near | ((e != 0) & ((self.eight & region) != 0) & ~small)
