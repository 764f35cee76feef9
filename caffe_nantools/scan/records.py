"""A source's records in the order Caffe's data layers read them: how many, and the key of the
record at a position (an LMDB/LevelDB key as text, ``file:row`` for HDF5, the image path of a
list line), as ``scan`` names them."""
from __future__ import annotations

from typing import Dict, List


class Records:
    """Record count and keys of a source, in the order Caffe reads it."""

    def __init__(self, source) -> None:
        self.source = source
        if source.backend in ("lmdb", "leveldb"):
            from caffe_nantools.scan.stores import open_store

            # Closed again at once: Caffe must be able to open a LevelDB while it runs.
            with open_store(source.path, source.backend) as store:
                self.count = store.count()
        elif source.backend == "hdf5":
            from caffe_nantools.scan.hdf5 import _File, list_files

            self.files = []
            for name, path in list_files(source.path):
                f = _File(name, path, source.datasets or None)
                self.files.append((name, f.n))
                f.h5.close()
            self.count = sum(n for _, n in self.files)
        else:
            from caffe_nantools.scan.imagelist import read_list

            self.names = [name for _, name, _ in read_list(source.path)]
            self.count = len(self.names)

    def keys(self, indices: List[int]) -> Dict[int, str]:
        if not indices:
            return {}
        if self.source.backend in ("lmdb", "leveldb"):
            from caffe_nantools.scan.checks import key_text
            from caffe_nantools.scan.stores import open_store

            with open_store(self.source.path, self.source.backend) as store:
                return {i: key_text(k) for i, k in zip(indices, store.keys_at(indices)) if k is not None}
        if self.source.backend == "hdf5":
            out, start = {}, 0
            for name, n in self.files:
                for i in indices:
                    if start <= i < start + n:
                        out[i] = f"{name}:{i - start}"
                start += n
            return out
        return {i: self.names[i] for i in indices if i < len(self.names)}
