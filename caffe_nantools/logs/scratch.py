"""One chunk-sized buffer for the byte-per-byte temporaries of a chunk's full passes, used in
turn. A new array the size of a chunk lies above glibc's mmap threshold: each of its pages
faults on first touch, which costs more than the pass itself."""

from __future__ import annotations

import numpy as np


class Scratch:
    def __init__(self) -> None:
        self._buffer = np.empty(0, np.uint8)

    def take(self, size: int) -> np.ndarray:
        """``size`` bytes of uninitialised uint8, valid until the next ``take``."""
        if len(self._buffer) < size:
            self._buffer = np.empty(size, np.uint8)
        return self._buffer[:size]

    def offsets(self, a: np.ndarray, byte: int) -> np.ndarray:
        """The offsets of ``byte`` in ``a``."""
        return np.flatnonzero(np.equal(a, byte, out=self.take(len(a)).view(bool)))
