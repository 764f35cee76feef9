"""A source's records in the order Caffe's data layers read them: how many, and the key of the
record at a position (an LMDB/LevelDB key as text, ``file:row`` for HDF5, the image path of a
list line), as ``scan`` names them."""

from __future__ import annotations

from typing import Dict, Sequence

from caffe_nantools.scan.backends import backend_of
from caffe_nantools.scan.source import Source


class Records:
    """Record count and keys of a source, in the order Caffe reads it."""

    def __init__(self, source: Source) -> None:
        self._index = backend_of(source).index(source)
        self.count = self._index.count

    def keys(self, indices: Sequence[int]) -> Dict[int, str]:
        return self._index.keys(indices) if indices else {}
