"""Key-value stores of Datums (LMDB, LevelDB): read in key order, a batch at a time, in
constant memory; count; copy without chosen records."""

from __future__ import annotations

import importlib
import os
import shutil
from contextlib import contextmanager
from itertools import islice
from typing import Iterator, List, Optional, Sequence, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.optional import install_hint
from caffe_nantools.scan.snapshot import private_copy, recovery_losses

BATCH = 1024  # records per write transaction
BATCH_BYTES = 2 << 20  # a read batch holds about this much, whatever the record size: small enough
# to stay in the CPU cache between the passes over it, also with a worker process on each core
# (measured in the image, 2 cores sharing 32 MB of L3: one process as fast as with 4 MB, two
# processes 1.2x faster than with 4 MB; 16 MB was slower)


class StoreError(NanToolsError):
    """A store that cannot be opened or read (the message names it)."""


def need(module: str):
    """The module, imported; a StoreError naming the package and the extra that install it
    where it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise StoreError(f"reading this source needs {install_hint(module)}") from None


class _Store:
    """``with open_store(...) as store``: closed at the end (a LevelDB's private copy removed)."""

    path: str
    _error: type = NanToolsError  # the store library's own error, set on opening

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    def read_views(self) -> None:
        """Values as views where the store can give them (LMDB); copies otherwise."""

    @contextmanager
    def _reading(self):
        """The store library's errors (a damaged page or table) as one-line StoreErrors."""
        try:
            yield
        except self._error as e:
            raise StoreError(f"{self.path}: read failed ({self._message(e)})") from None

    def _message(self, error: Exception) -> str:
        text = error.args[0] if error.args else error
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


class LMDBStore(_Store):
    backend = "lmdb"

    def __init__(self, path: str, views: bool = False) -> None:
        lmdb = need("lmdb")
        self.path = path
        subdir = os.path.isdir(path)
        if not os.path.exists(path):
            raise StoreError(f"{path}: no such LMDB")
        try:
            self.env = lmdb.open(
                path, subdir=subdir, readonly=True, lock=False, readahead=False, max_readers=256
            )
        except lmdb.Error as e:
            raise StoreError(f"{path}: cannot open as LMDB ({e})") from None
        self._error = lmdb.Error
        self._check_size()
        # One read transaction for the store's life. With ``views``, keys and values are
        # memoryviews into the map: one copy less, which pays in a process that reads and checks
        # by itself; beside a read-ahead thread the copies run faster (they hold the GIL less
        # long than the page faults of joining views).
        self.txn = self.env.begin(buffers=views)

    def _check_size(self) -> None:
        """A data.mdb shorter than its map's last page (an interrupted copy) would be read past
        its end: a SIGBUS, not an error. Its meta pages say how long it must be."""
        pages = self.env.info()["last_pgno"] + 1
        need = pages * self.env.stat()["psize"]
        have = lmdb_bytes(self.path)
        if have < need:
            self.env.close()
            raise StoreError(
                f"{self.path}: truncated LMDB ({have} of {need} bytes); an interrupted copy? copy it again"
            )

    def read_views(self) -> None:
        """From now on, values as memoryviews into the map (see ``views``)."""
        self.txn.abort()
        self.txn = self.env.begin(buffers=True)

    def close(self) -> None:
        self.txn.abort()
        self.env.close()

    def count(self) -> int:
        return int(self.env.stat()["entries"])

    def keys_at(self, positions: Sequence[int]) -> List[Optional[bytes]]:
        """The keys at these 0-based positions in key order (None past the end)."""
        with self._reading(), self.env.begin() as txn:
            return _keys_at(txn.cursor().iternext(keys=True, values=False), positions)

    def batches(
        self, start: Optional[bytes] = None, limit: Optional[int] = None
    ) -> Iterator[Tuple[List[bytes], List[bytes]]]:
        """(keys, values) batches in key order, from ``start`` on, at most ``limit`` records."""
        with self._reading():
            cursor = self.txn.cursor()
            if start is not None and not cursor.set_range(start):
                return
            yield from _batched(cursor.iternext(), limit)

    def write(self, path: str, items: Iterator[Tuple[bytes, bytes]]) -> int:
        import lmdb

        size = max(lmdb_bytes(self.path), 1 << 20)
        try:
            env = lmdb.open(path, map_size=2 * size, subdir=True)
            try:
                return _put_all(items, lambda: env.begin(write=True))
            finally:
                env.close()
        except lmdb.Error as e:
            raise StoreError(f"cannot write ({e})") from None


class LevelDBStore(_Store):
    """A LevelDB read through a private copy (see :mod:`caffe_nantools.scan.snapshot`), opened
    with paranoid checks; if those find damage, the copy is made again and opened as Caffe
    would open it, and :attr:`losses` says what its recovery dropped."""

    backend = "leveldb"

    def __init__(self, path: str, views: bool = False) -> None:  # plyvel always copies
        self._plyvel = need("plyvel")
        self.path, self.copy = path, ""
        self.losses: List[Tuple[str, str]] = []  # (file, what recovery dropped of it)
        if not os.path.isdir(path):
            raise StoreError(f"{path}: no such LevelDB folder")
        if not os.path.isfile(os.path.join(path, "CURRENT")):
            raise StoreError(
                f"{path}: not a LevelDB (no CURRENT file in it); check the path and the backend"
            )
        self._error = self._plyvel.Error
        try:
            try:
                self.db = self._open(paranoid=True)
            except self._plyvel.CorruptionError as e:
                self.losses = recovery_losses(self.copy) or [
                    (os.path.basename(path.rstrip("/")), self._message(e))
                ]
                self._discard()
                self.db = self._open(paranoid=False)
        except BaseException:
            self._discard()
            raise

    def _open(self, paranoid: bool):
        try:
            self.copy = private_copy(self.path)
        except OSError as e:
            raise StoreError(
                f"{self.path}: cannot copy the LevelDB to read it ({e}); "
                "set TMPDIR to a folder with room (on the store's filesystem, tables are hard-linked)"
            ) from None
        try:
            return self._plyvel.DB(self.copy, paranoid_checks=paranoid)
        except (OSError, self._plyvel.Error) as e:
            if paranoid and isinstance(e, self._plyvel.CorruptionError):
                raise
            raise StoreError(f"{self.path}: cannot open as LevelDB ({self._message(e)})") from None

    def _message(self, error: Exception) -> str:
        return (
            super()._message(error).replace(self.copy, self.path)
            if self.copy
            else super()._message(error)
        )

    def _discard(self) -> None:
        if self.copy:
            shutil.rmtree(self.copy, ignore_errors=True)

    def close(self) -> None:
        self.db.close()
        self._discard()

    def _items(self, **options):
        return self.db.iterator(verify_checksums=True, **options)

    def count(self) -> int:
        n = 0
        try:
            with self._reading():
                for _ in self._items(include_value=False):
                    n += 1
        except StoreError as e:
            raise unreadable_from(e, n) from None
        return n

    def keys_at(self, positions: Sequence[int]) -> List[Optional[bytes]]:
        with self._reading():
            return _keys_at(self._items(include_value=False), positions)

    def batches(
        self, start: Optional[bytes] = None, limit: Optional[int] = None
    ) -> Iterator[Tuple[List[bytes], List[bytes]]]:
        with self._reading():
            yield from _batched(self._items(start=start), limit)

    def write(self, path: str, items: Iterator[Tuple[bytes, bytes]]) -> int:
        import plyvel

        try:
            db = plyvel.DB(path, create_if_missing=True, error_if_exists=True)
            try:
                return _put_all(items, db.write_batch)
            finally:
                db.close()
        except plyvel.Error as e:
            raise StoreError(f"cannot write ({e})") from None


def unreadable_from(error: StoreError, index: int) -> StoreError:
    """``error`` (a damaged page or table) saying how far the store could be read."""
    return StoreError(f"{error}; records from number {index} on cannot be read")


def lmdb_bytes(path: str) -> int:
    """The size of an LMDB's data (the folder's data.mdb, or the file given); 0 if missing."""
    data = os.path.join(path, "data.mdb") if os.path.isdir(path) else path
    return os.path.getsize(data) if os.path.exists(data) else 0


def records_at(store, positions: Sequence[int]) -> Tuple[List[bytes], List[bytes]]:
    """The (keys, values) at these sorted 0-based positions in key order."""
    wanted, keys, values, index = set(positions), [], [], 0
    start = store.keys_at([positions[0]])[0]
    for batch_keys, batch_values in store.batches(start):
        for key, value in zip(batch_keys, batch_values):
            if positions[0] + index in wanted:
                keys.append(key)
                values.append(value)
            index += 1
        if positions[0] + index > positions[-1]:
            break
    return keys, values


def _keys_at(keys, positions: Sequence[int]) -> List[Optional[bytes]]:
    wanted, last, found = set(positions), max(positions), {}
    for i, key in enumerate(keys):
        if i in wanted:
            found[i] = key
        if i >= last:
            break
    return [found.get(p) for p in positions]


def _batched(items, limit: Optional[int]):
    """Batches of about BATCH_BYTES (memory stays flat for any record size), ending after
    ``limit`` records."""
    if limit is not None:
        items = islice(items, limit)
    size = 64
    while True:
        chunk = list(islice(items, size))
        if not chunk:
            return
        values = [v for _, v in chunk]
        yield [k for k, _ in chunk], values
        average = sum(map(len, values)) / len(values)
        size = int(min(max(BATCH_BYTES // max(average, 1), 16), 4096))


def _put_all(items: Iterator[Tuple[bytes, bytes]], open_batch) -> int:
    """Put ``items`` in write batches of BATCH records (``open_batch()`` gives a context with
    ``put``: an LMDB write transaction, a LevelDB write batch); returns how many."""
    written = 0
    for chunk in _chunks(items, BATCH):
        with open_batch() as batch:
            for key, value in chunk:
                batch.put(key, value)
        written += len(chunk)
    return written


def _chunks(items, size: int):
    while True:
        chunk = list(islice(items, size))
        if not chunk:
            return
        yield chunk


def open_store(path: str, backend: str, views: bool = False):
    return {"lmdb": LMDBStore, "leveldb": LevelDBStore}[backend](path, views)
