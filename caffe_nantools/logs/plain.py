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

#: Kinds of a line: any other line, a loss line, a rate line.
OTHER, LOSS, RATE = 0, 1, 2

# glog's fixed-width prefix ``LMMDD HH:MM:SS.uuuuuu `` as (byte - low) < span, in unsigned bytes:
# a digit column is (b - '0') < 10, a literal column (b - c) < 1; the level is checked apart.
_TEMPLATE = "L0000 00:00:00.000000 "
_LOW = np.array([0 if c == "L" else 48 if c == "0" else ord(c) for c in _TEMPLATE], np.uint8)
_SPAN = np.array([255 if c == "L" else 10 if c == "0" else 1 for c in _TEMPLATE], np.uint8)
_TID = 12  # spaces and thread id looked at after the fixed part
_DIGITS = 19  # an iteration has at most 18 digits
_VALUE = 16  # longest value taken
_PAREN = 40  # longest "(x iter/s, y s/n iters)" taken
_LOSS_SEP = np.frombuffer(b", loss = ", np.uint8)
_RATE_SEP = np.frombuffer(b", lr = ", np.uint8)
# Characters of a value: 1 digit, 2 '.', 3 'e', 4 sign, 0 anything else (5 marks the padding).
_CLASS = np.zeros(256, np.uint8)
_CLASS[ord("0") : ord("9") + 1] = 1
_CLASS[[ord("."), ord("e"), ord("E"), ord("+"), ord("-")]] = [2, 3, 3, 4, 4]
_PAD = 5
_E_AT = np.arange(_VALUE)


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
    text's end) whose first ``]`` is at ``at`` and is followed by ``" Iteration "`` and a digit."""
    n = len(at)
    if n == 0:
        return np.zeros(0, np.int8)
    r = np.arange(n)
    head, ok = rows(a, starts, len(_TEMPLATE))
    ok &= ((head - _LOW) < _SPAN).all(1)
    level = head[:, 0]
    ok &= (level == ord("I")) | (level == ord("W")) | (level == ord("E"))
    # " +(\d+) ": more spaces, the thread id, a space.
    tid, inside = rows(a, starts + len(_TEMPLATE), _TID)
    ok &= inside
    space = tid == 32
    digit = (tid - 48) < 10
    f = np.argmax(~space, 1)
    past = ~digit & (np.arange(_TID) > f[:, None])
    g = np.argmax(past, 1)
    ok &= digit[r, f] & past[r, g] & space[r, g]
    # The iteration's digits, then ", lr = " or the loss's layout.
    number, inside = rows(a, at + 12, _DIGITS)
    ok &= inside
    length = np.argmax((number - 48) >= 10, 1)
    ok &= (length >= 1) & (length <= 18)
    after = at + 12 + length
    ends = stops - (a[np.maximum(stops - 1, 0)] == 13)  # a Windows "\r" is not the value's
    sep, inside = rows(a, after, len(_RATE_SEP))
    rate = ok & inside & (sep == _RATE_SEP).all(1)
    value, inside = rows(a, ends - _VALUE, _VALUE)
    ok &= inside
    # A loss's value follows the line's last space.
    space = value == 32
    begins = np.where(rate, after + len(_RATE_SEP), ends - np.argmax(space[:, ::-1], 1))
    loss = ok & ~rate & space.any(1)
    sep, inside = rows(a, begins - len(_LOSS_SEP), len(_LOSS_SEP))
    loss &= inside & (sep == _LOSS_SEP).all(1)
    loss &= _paren(a, after, begins - len(_LOSS_SEP))
    width = ends - begins
    kind = np.where(rate & ok, RATE, np.where(loss, LOSS, OTHER)).astype(np.int8)
    kind[(width < 1) | (width > _VALUE) | ~_plain_value(value, width, loss)] = OTHER
    return kind


def _paren(a: np.ndarray, after: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """Whether what stands between an iteration's digits (``after``) and ``", loss = "``
    (``sep``) is nothing or ``" (...)"`` with no ``)`` or ``=`` inside (no ``", lr = "``)."""
    length = sep - after - 3
    inner, inside = rows(a, sep - 1 - _PAREN, _PAREN)  # right-aligned: it ends at the ")"
    stray = (inner == ord(")")) | (inner == ord("=")) | (inner == 10)
    clean = inside & ~(stray & (np.arange(_PAREN, 0, -1) <= length[:, None])).any(1)
    last = np.maximum(sep - 1, 0)
    wrapped = (a[after] == 32) & (a[np.minimum(after + 1, len(a) - 1)] == ord("("))
    wrapped &= (a[last] == ord(")")) & (length >= 0) & (length <= _PAREN) & clean
    return (sep == after) | wrapped


def _plain_value(value: np.ndarray, width: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Whether each right-aligned value (its last ``width`` bytes) is ``-?d[digits and one .]``
    with an optional exponent: a number ``float`` reads, below 1e26 in magnitude, and, for a
    ``loss``, not possibly within 0.01 of 87.3365."""
    n = len(width)
    r = np.arange(n)
    first = np.clip(_VALUE - width, 0, _VALUE - 1)
    cls = _CLASS[value]
    cls[first[:, None] > _E_AT] = _PAD
    ok = (cls != 0).all(1) & (cls[:, -1] == 1)
    second = np.minimum(first + 1, _VALUE - 1)
    lead, next_ = value[r, first], value[r, second]
    ok &= (cls[r, first] == 1) | ((lead == ord("-")) & (cls[r, second] == 1) & (width >= 2))
    ok &= ~((lead == ord("0")) & (cls[r, second] == 1))  # no leading zeros
    dot, e = cls == 2, cls == 3
    ok &= (dot.sum(1) <= 1) & (e.sum(1) <= 1)
    # A sign only first or right after the exponent's e; no '.' in the exponent.
    ok &= ~((cls[:, 1:] == 4) & ~e[:, :-1] & (_E_AT[1:] > first[:, None])).any(1)
    has_e = e.any(1)
    at_e = np.argmax(e, 1)
    ok &= ~(has_e & (dot & (at_e[:, None] < _E_AT)).any(1))
    # A positive exponent of one digit, or two starting with 0.
    sign = value[r, np.minimum(at_e + 1, _VALUE - 1)]
    digits = _VALUE - 1 - at_e - (cls[r, np.minimum(at_e + 1, _VALUE - 1)] == 4)
    ok &= ~has_e | (sign == ord("-")) | (digits == 1) | ((digits == 2) & (value[:, -2] == 48))
    # Near 87.3365: "87." first, or "87" / "8.7" in a mantissa before an exponent.
    third = value[r, np.minimum(first + 2, _VALUE - 1)]
    near = (lead == ord("8")) & (next_ == ord("7")) & (third == ord("."))
    eight = value[:, :-1] == ord("8")
    eight &= (_E_AT[:-1] >= first[:, None]) & (_E_AT[:-1] < at_e[:, None])
    pair = eight & (value[:, 1:] == ord("7"))
    pair[:, :-1] |= eight[:, :-1] & dot[:, 1:-1] & (value[:, 2:] == ord("7"))
    near |= has_e & pair.any(1)
    return ok & ~(loss & near)
