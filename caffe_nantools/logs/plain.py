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

import caffe_nantools.logs.words as words

#: Kinds of a line: any other line, a loss line, a rate line.
OTHER, LOSS, RATE = 0, 1, 2

# glog's fixed-width prefix ``LMMDD HH:MM:SS.uuuuuu `` in three words: where its digits are, and
# its literal bytes (the level is checked apart; the third word's last two bytes are the tid's).
_TEMPLATE = "L0000 00:00:00.000000 ".ljust(24, "?")
_DIGIT_FLAGS = np.array(
    [
        sum(0x80 << (8 * j) for j, c in enumerate(_TEMPLATE[k : k + 8]) if c == "0")
        for k in (0, 8, 16)
    ],
    np.uint64,
)
_LITERAL = np.array(
    [
        words.pattern(bytes(0 if c in "L0?" else ord(c) for c in _TEMPLATE[k : k + 8]))[0]
        for k in (0, 8, 16)
    ],
    np.uint64,
)
_LITERAL_MASK = np.array(
    [
        words.pattern(bytes(0 if c in "L0?" else 255 for c in _TEMPLATE[k : k + 8]))[0]
        for k in (0, 8, 16)
    ],
    np.uint64,
)
_YEAR_FLAGS = np.uint64(0x8080808000)  # bytes 1 to 4: the year's digits
_LEVELS = np.zeros(256, bool)
_LEVELS[[ord(c) for c in "IWE"]] = True
_PAREN_WORDS = 5  # " (x iter/s, y s/n iters)" of up to 40 bytes
_16 = np.int64(0xFFFF)
_CASE = np.uint64(0x2020202020202020)


def kinds(a: np.ndarray, starts: np.ndarray, stops: np.ndarray, at: np.ndarray) -> np.ndarray:
    """LOSS, RATE or OTHER for each line from ``starts`` to ``stops`` (its line break, or the
    text's end) whose first ``]`` is at ``at`` and is followed by ``" Iteration "`` and a digit.

    A few rows of words per line are read (:mod:`caffe_nantools.logs.words`): the prefix and
    the thread id, the iteration's digits, what follows them, the value at the line's end. A
    row that reaches past the text's ends reads zeros there, which no test takes."""
    if len(at) == 0:
        return np.zeros(0, np.int8)
    ok = _LEVELS[a[starts]] & _prefix(a, starts)
    digits = words.at(a, at + 12, 2)
    length = words.LOWEST[~words.compact(words.digits(digits)) & _16].astype(np.int64)
    ok &= (length >= 1) & (length <= 15)
    after = at + 12 + length
    ends = stops - (a[np.maximum(stops - 1, 0)] == 13)  # a Windows "\r" is not the value's
    following = words.at(a, after, _PAREN_WORDS)
    rate = ok & words.starts_with(following[:, 0], b", lr = ")
    value = _Value(a, ends)
    # A loss's value follows the line's last space; a rate's, the ", lr = ".
    begins = np.where(rate, after + 7, ends - 16 + value.last_space + 1)
    good, near = value.read(begins)
    sep = words.at(a, begins - 9)
    loss = ok & ~rate & words.starts_with(sep[:, 0], b", loss =")
    loss &= (value.last_space >= 0) & _paren(following, begins - 9 - after)
    loss &= ~near
    return np.where(rate & good, RATE, np.where(loss & good, LOSS, OTHER)).astype(np.int8)


def _prefix(a: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Whether each line starts with glog's prefix up to its thread id, a space after it (its
    date with the year first, as glog 0.5 and later write it, too)."""
    year = a[np.minimum(starts + 5, len(a) - 1)] != 32
    first = words.at(a, starts)
    dated = (words.digits(first[:, 0]) & _YEAR_FLAGS) == _YEAR_FLAGS
    head = words.at(a, starts + 4 * year, 4)  # the rest as without a year
    ok = ~year | dated
    for k in range(3):  # column by column: numpy's row-wise all() is slow on short rows
        word = head[:, k]
        ok &= (words.digits(word) & _DIGIT_FLAGS[k]) == _DIGIT_FLAGS[k]
        ok &= (word & _LITERAL_MASK[k]) == _LITERAL[k]
    # " *(\d+) " from byte 22 on (bits 6 and up of the last two words' masks).
    spaces = words.compact(words.equal(head[:, 2:], 32)) >> 6
    digits = words.compact(words.digits(head[:, 2:])) >> 6
    f = words.LOWEST[~spaces & _16]
    g = f + words.LOWEST[~(digits >> np.minimum(f, 15)) & _16]
    return ok & (f < 10) & (g > f) & (g < 10) & (((spaces >> np.minimum(g, 15)) & 1) == 1)


def _paren(following: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Whether the ``length`` bytes after an iteration's digits (``following``: its words) up
    to ``", loss = "`` are nothing or ``" (...)"`` with no ``)`` inside, of up to 40 bytes."""
    as_bytes = following.view(np.uint8)
    r = np.arange(len(length))
    last = as_bytes[r, np.clip(length - 1, 0, 8 * _PAREN_WORDS - 1)]
    wrapped = words.starts_with(following[:, 0], b" (") & (last == ord(")"))
    wrapped &= (length >= 3) & (length <= 8 * _PAREN_WORDS)
    # No ")" from byte 2 up to the last.
    stray = words.equal(following, ord(")"))
    for k in range(_PAREN_WORDS):
        inner = words.flags_below(length - 1 - 8 * k) & ~words.flags_below(2 - 8 * k)
        wrapped &= (stray[:, k] & inner) == 0
    return (length == 0) | wrapped


class _Value:
    """The last 16 bytes before each line's end (``ends``) as 16-bit masks of their kinds of
    byte (bit k: byte ``ends - 16 + k``)."""

    def __init__(self, a: np.ndarray, ends: np.ndarray) -> None:
        self.ends = ends
        tail = words.at(a, ends - 16, 2)
        self.bytes = tail.view(np.uint8)
        self.rows = np.arange(len(ends))

        def kind(byte: int, text: np.ndarray = tail) -> np.ndarray:
            return words.compact(words.equal(text, byte))

        self.digit = words.compact(words.digits(tail))
        self.dot, self.minus, self.plus, self.eight = (kind(ord(c)) for c in ".-+8")
        self.e = kind(ord("e"), tail | _CASE)
        self.last_space = words.HIGHEST[kind(32)].astype(np.int64)

    def byte(self, k: np.ndarray) -> np.ndarray:
        """Byte ``k`` (clipped to 0..15) of each line's last 16."""
        return self.bytes[self.rows, np.clip(k, 0, 15)]

    def read(self, begins: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """For the values from ``begins`` to the end: whether each is ``-?d[digits and one .]``
        with an optional exponent (a number ``float`` reads, below 1e26 in magnitude), and
        whether, as a loss, it may lie within 0.01 of 87.3365 (``87.`` first, or an 8 in a
        mantissa before an exponent, unless the exponent is negative and the mantissa has one
        digit before its point: below 1 then, as Caffe prints small values)."""
        k0 = begins - (self.ends - 16)
        ok = (k0 >= 0) & (k0 <= 15)
        k0 = np.clip(k0, 0, 15)
        region = (_16 << k0) & _16
        digit, dot, e = self.digit, self.dot & region, self.e & region
        sign = (self.minus | self.plus) & region
        ok &= (region & ~(digit | dot | e | sign)) == 0
        ok &= (digit >> 15) == 1  # ends in a digit
        # A digit first, or "-" and a digit; no leading zero (a way round the 87 test).
        lead = k0 + ((self.minus >> k0) & 1)
        ok &= ((digit >> lead) & 1) == 1
        ok &= ~((self.byte(lead) == ord("0")) & (((digit >> (lead + 1)) & 1) == 1))
        ok &= ((dot & (dot - 1)) == 0) & ((e & (e - 1)) == 0)
        # A sign only first or right after the exponent's e; no "." in the exponent.
        ok &= (sign & ~((1 << k0) | (e << 1))) == 0
        ok &= (e == 0) | ((dot & ~(e - 1)) == 0)
        # A positive exponent of one digit, or two starting with 0.
        after_e = np.minimum(words.LOWEST[e].astype(np.int64) + 1, 15)
        signed = (sign >> after_e) & 1
        negative = ((self.minus >> after_e) & 1) == 1
        count = 16 - after_e - signed
        small = negative | (count == 1) | ((count == 2) & (self.bytes[:, 14] == ord("0")))
        plain = ok & ((e == 0) | small)
        near = (self.byte(k0) == ord("8")) & (self.byte(k0 + 1) == ord("7"))
        near &= self.byte(k0 + 2) == ord(".")
        below_one = negative & (((dot >> np.minimum(lead + 1, 15)) & 1) == 1)
        near |= (e != 0) & ((self.eight & region) != 0) & ~below_one
        return plain, near
