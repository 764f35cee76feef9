"""Bytes of a chunk looked at eight at a time: a byte pattern at many offsets tested with a few
operations on one uint64 per offset, not on a row of bytes per offset.

A word is the eight bytes from an offset, little-endian (byte k of the text is bits 8k to 8k+7);
:func:`at` copies a few words in a row from each offset.
Per-byte tests give a *flag* word: 0x80 in each byte that passes, exactly (no carry crosses a
byte). :func:`compact` turns flags into a bit mask, bit k for byte k, for the tests that need a
position (the first space, the last digit).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
HIGH = np.uint64(0x8080808080808080)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_THREES = np.uint64(0x3030303030303030)
_SIXES = np.uint64(0x0606060606060606)
_GATHER = np.uint64(0x0102040810204080)
_7, _3, _56 = np.uint64(7), np.uint64(3), np.uint64(56)


def at(a: np.ndarray, offsets: np.ndarray, count: int = 1) -> np.ndarray:
    """The ``count`` words from each offset into ``a`` (uint8), one row each (row k: the words
    at ``offsets[k]``, ``offsets[k] + 8``, ...), bytes outside ``a`` read as 0. One copy of
    ``8 * count`` bytes per row: far cheaper than a gather per word."""
    width = 8 * count
    n = len(offsets)
    room = len(a) - width + 1
    if n == 0 or room <= 0:
        found = np.zeros((n, width), np.uint8)
    elif offsets.min() >= 0 and offsets.max() < room:
        return _rows(a, width)[offsets].view(np.uint64).reshape(n, count)
    else:
        found = _rows(a, width)[np.clip(offsets, 0, room - 1)].view(np.uint8).reshape(n, width)
    # Rows across an end (a few): from a copy of that end between zeros.
    zeros = np.zeros(width, np.uint8)
    head, tail = a[:width], a[-width:]
    for rows, base, edge in (
        (np.flatnonzero(offsets < 0), -width, np.concatenate((zeros, head, zeros))),
        (
            np.flatnonzero(offsets >= max(room, 0)),
            len(a) - len(tail) - width,
            np.concatenate((zeros, tail, zeros)),
        ),
    ):
        where = offsets[rows] - base
        keep = (where >= 0) & (where <= len(edge) - width)
        found[rows] = 0
        found[rows[keep]] = _rows(edge, width)[where[keep]].view(np.uint8).reshape(-1, width)
    return found.view(np.uint64)


def _rows(a: np.ndarray, width: int) -> np.ndarray:
    """Every ``width`` bytes of ``a`` as one item (the items overlap)."""
    return np.ndarray((len(a) - width + 1,), np.dtype((np.void, width)), buffer=a, strides=(1,))


def pattern(text: bytes) -> Tuple[np.uint64, np.uint64]:
    """``(value, mask)`` that tell a word starting with ``text`` (at most 8 bytes; the bytes
    after it are free): ``word & mask == value``."""
    value = int.from_bytes(text.ljust(8, b"\0"), "little")
    mask = int.from_bytes(b"\xff" * len(text) + b"\0" * (8 - len(text)), "little")
    return np.uint64(value), np.uint64(mask)


def starts_with(words: np.ndarray, text: bytes) -> np.ndarray:
    value, mask = pattern(text)
    return (words & mask) == value


def zeros(x: np.ndarray) -> np.ndarray:
    """Flags of the zero bytes of ``x``."""
    return ~(((x & _LOW7) + _LOW7) | x) & HIGH


def equal(words: np.ndarray, byte: int) -> np.ndarray:
    """Flags of the bytes equal to ``byte``."""
    return zeros(words ^ np.uint64(byte * 0x0101010101010101))


def digits(words: np.ndarray) -> np.ndarray:
    """Flags of the bytes ``0`` to ``9``: high nibble 3, and a low one that 6 does not carry
    past 15."""
    high = zeros((words & _HIGH_NIBBLES) ^ _THREES)
    return high & ~(((words & _LOW_NIBBLES) + _SIXES) << _3)


def compact(flags: np.ndarray) -> np.ndarray:
    """Flags as an 8-bit mask (bit k: byte k), in int64; flags of a row of words (the last
    axis) as one mask, the first word's bytes lowest."""
    masks = (((flags >> _7) * _GATHER) >> _56).astype(np.int64)
    if masks.ndim == 1:
        return masks
    joined = masks[:, 0].copy()
    for k in range(1, masks.shape[1]):
        joined |= masks[:, k] << (8 * k)
    return joined


def flags_below(positions: np.ndarray) -> np.ndarray:
    """Flags of the bytes ``0 .. positions - 1`` of a word (``positions`` clipped to 0..8)."""
    return _BELOW[np.clip(positions, 0, 8)]


_BELOW = np.array([(1 << (8 * k)) - 1 & 0x8080808080808080 for k in range(9)], np.uint64)


def _bit_tables() -> Tuple[np.ndarray, np.ndarray]:
    masks = np.arange(1, 1 << 16)
    highest = np.floor(np.log2(masks))  # exact: 16 bits fit a double
    lowest = np.log2(masks & -masks)
    return (
        np.concatenate(([16], lowest)).astype(np.int8),
        np.concatenate(([-1], highest)).astype(np.int8),
    )


#: Of a 16-bit mask: the lowest set bit (16 for none) and the highest (-1 for none).
LOWEST, HIGHEST = _bit_tables()
