"""Bytes of a chunk looked at eight at a time: a byte pattern at many offsets tested with a few
operations on one uint64 per offset, not on a row of bytes per offset.

A word is the eight bytes from an offset, little-endian (byte k of the text is bits 8k to 8k+7).
Per-byte tests give a *flag* word: 0x80 in each byte that passes, exactly (no carry crosses a
byte). :func:`compact` turns flags into a bit mask, bit k for byte k, for the tests that need a
position (the first space, the last digit).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

_ONES = np.uint64(0x0101010101010101)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
HIGH = np.uint64(0x8080808080808080)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_THREES = np.uint64(0x3030303030303030)
_SIXES = np.uint64(0x0606060606060606)
_GATHER = np.uint64(0x0102040810204080)
_7, _3, _56 = np.uint64(7), np.uint64(3), np.uint64(56)


def view(a: np.ndarray) -> np.ndarray:
    """The words of ``a`` (uint8): entry i holds ``a[i:i + 8]``."""
    if len(a) < 8:
        return np.zeros(0, np.uint64)
    return np.ndarray((len(a) - 7,), np.dtype("<u8"), buffer=a, strides=(1,))


def at(words: np.ndarray, offsets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The words from ``offsets``, and which of them lay inside the text (the others are 0)."""
    inside = (offsets >= 0) & (offsets < len(words))
    if len(words) == 0:
        return np.zeros(len(offsets), np.uint64), inside
    found = words[np.clip(offsets, 0, len(words) - 1)]
    found[~inside] = 0
    return found, inside


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
    """Flags as an 8-bit mask (bit k: byte k), in int64."""
    return (((flags >> _7) * _GATHER) >> _56).astype(np.int64)


def flags_of(positions: np.ndarray) -> np.ndarray:
    """Flags of the bytes ``0 .. positions - 1`` of a word (``positions`` from 0 to 8)."""
    return _PREFIX_FLAGS[np.clip(positions, 0, 8)]


_PREFIX_FLAGS = np.array([(1 << (8 * k)) - 1 & 0x8080808080808080 for k in range(9)], np.uint64)


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
