"""The LMDB and LevelDB backends: a store's records read in key order, a batch at a time, each
batch checked by the checker of the store's record kind (found from the wire bytes of its
first records: Datum, AnnotatedDatum...)."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from caffe_nantools.datum import parse_header, with_label
from caffe_nantools.files import Outputs
from caffe_nantools.scan.backends import (
    Backend,
    Checker,
    RecordIndex,
    RecordKind,
    record_kinds,
    register,
)
from caffe_nantools.scan.checks import Collector, DatumChecker, Expect, key_text
from caffe_nantools.scan.prefetch import prefetched
from caffe_nantools.scan.progress import Progress, Tally
from caffe_nantools.scan.report import ScanReport
from caffe_nantools.scan.source import ScanError, Source, shard_range
from caffe_nantools.scan.stores import (
    StoreError,
    lmdb_bytes,
    open_store,
    records_at,
    unreadable_from,
)

SNIFFED = 16  # first records whose wire bytes decide the store's record kind
#: First tags a Datum can start with: fields 1-7 with their wire types (field 6 packed or not).
_DATUM_TAGS = frozenset((0x08, 0x10, 0x18, 0x22, 0x28, 0x32, 0x35, 0x38))


def record_kind(store) -> RecordKind:
    """The record kind that claims most of the store's first records (the first registered,
    Datum, where none does: its checker then says what is wrong with them). Every shard of a
    store reads the same first records, so all find the same kind."""
    kinds = record_kinds()
    sample = [bytes(v) for _, values in store.batches(limit=SNIFFED) for v in values]
    votes = [sum(kind.claims(record) for record in sample) for kind in kinds]
    return kinds[votes.index(max(votes))]


def checker_for(store, collector: Collector, expect: Expect) -> Checker:
    return record_kind(store).checker(collector, expect)


def scan_store(
    source: Source,
    report: ScanReport,
    *,
    limit: Optional[int] = None,
    max_findings: Optional[int] = None,
    shard: Optional[Tuple[int, int]] = None,
    progress: Union[bool, Tally] = False,
    one_core: bool = False,
) -> Set[int]:
    """Scan an LMDB or LevelDB into ``report``; returns the bad record indices.

    Without ``one_core``, records are read in a thread while the checks run (for a process
    alone on the machine); with it, LMDB values are read as views into the map, no copy.
    """
    try:
        with open_store(source.path, source.backend, views=one_core) as store:
            return _scan_open_store(
                store, source, report, limit, max_findings, shard, progress, not one_core
            )
    except StoreError as e:
        raise ScanError(str(e)) from None


def _scan_open_store(
    store, source: Source, report: ScanReport, limit, max_findings, shard, progress, read_ahead
) -> Set[int]:
    collector = Collector(report, source.name, source.backend, max_findings)
    if shard is None or shard[0] == 0:  # said once, by the first slice
        for name, lost in getattr(store, "losses", ()):
            collector.add(
                -1,
                name,
                "store",
                "corrupt",
                f"damaged: {lost}; the records in it cannot be read (Caffe's LevelDB drops them too, without a word)",
            )
    first, end = shard_range(store.count(), shard, limit)
    if first >= end:
        return set()
    bar = Progress(os.path.basename(source.path.rstrip("/")), end - first, progress)
    bad: Set[int] = set()
    index = first
    try:
        kind = record_kind(store)
        checker = kind.checker(collector, source.expect)
        if first and checker.reference is None:
            # A slice (a worker's, a shard's) compares with the store's first record, not its own.
            checker.reference = _first_shape(store, kind, source, first)
        if read_ahead and not kind.read_ahead:
            read_ahead = False
            store.read_views()  # as one process of one core reads
        start_key = store.keys_at([first])[0] if first else None  # a slice ends by its count
        batches = store.batches(start_key, limit=end - first)
        for keys, values in prefetched(batches) if read_ahead else batches:
            bad.update(index + row for row in checker.check(keys, values, index))
            index += len(keys)
            bar.update(len(keys))
    except StoreError as e:  # a damaged page or table: say how far the store could be read
        raise unreadable_from(e, index) from None
    finally:
        bar.close()
    return bad


def _first_shape(store, kind: RecordKind, source: Source, before: int) -> Optional[Tuple[int, ...]]:
    """The shape of the store's first record that has one, among its first ``before`` (checked
    into a report of their own: the slice that holds them reports them)."""
    checker = kind.checker(Collector(ScanReport(), source.name, source.backend), source.expect)
    for keys, values in store.batches(limit=before):
        checker.check(keys, values, 0)  # the indices of a report no one reads
        if checker.reference is not None:
            break
    return checker.reference


def _copy(source: Source, keep, path: str, change=bytes) -> int:
    """Write the records whose index ``keep`` accepts to a new store at ``path``, in order,
    each as ``change`` makes it."""
    with open_store(source.path, source.backend) as store:

        def kept():
            index = 0
            for keys, values in store.batches():
                for key, value in zip(keys, values):
                    if keep(index):
                        yield key, change(value)
                    index += 1

        return store.write(path, kept())


def write_clean_store(source: Source, bad: Set[int], target: str, out: Outputs) -> int:
    transform = source.transform
    change = bytes
    if transform is not None:
        if transform.argmax or transform.blob != source.expect.label_top:
            raise ScanError(
                f"{source.path}: a Datum holds one label; {transform.words} needs another store"
            )

        def change(value) -> bytes:
            return with_label(bytes(value), transform.label(parse_header(bytes(value)).label))

    return _copy(source, lambda index: index not in bad, out.path(target, new=True), change)


def subset_store(source: Source, indices: List[int], path: str) -> None:
    wanted = set(indices)
    _copy(source, wanted.__contains__, path)


def recheck_store(source: Source, indices: List[int], collector: Collector) -> None:
    """The direct checks of the records at ``indices`` (sorted), findings at those indices."""
    with open_store(source.path, source.backend) as store:
        keys, values = records_at(store, indices)
        checker = checker_for(store, collector, source.expect)
    for row in range(len(keys)):  # one at a time: each finding takes its record's index
        checker.check(keys[row : row + 1], values[row : row + 1], indices[row])


class StoreIndex(RecordIndex):
    def __init__(self, source: Source) -> None:
        self.source = source
        # Closed again at once: Caffe must be able to open a LevelDB while it runs.
        with open_store(source.path, source.backend) as store:
            self.count = store.count()

    def keys(self, indices: Sequence[int]) -> Dict[int, str]:
        with open_store(self.source.path, self.source.backend) as store:
            return {
                i: key_text(k)
                for i, k in zip(indices, store.keys_at(list(indices)))
                if k is not None
            }


def _claims_datum(record: bytes) -> bool:
    return record[:1] != b"" and record[0] in _DATUM_TAGS


register(RecordKind("Datum", _claims_datum, DatumChecker))
_STORE = dict(
    scan=scan_store,
    write_clean=write_clean_store,
    index=StoreIndex,
    recheck=recheck_store,
    subset=subset_store,
)
# An LMDB is read and checked at 1-2 GB/s in one process (an HDF5 file at about 6 GB/s).
# Measured in the image on 2 cores, two processes against one: 1.3-1.8x faster on stores of 60
# to 200 MB (30-100 MB a process), about as fast on 30-40 MB (1.3x for AnnotatedDatums). 64 MB
# a process keeps a margin for machines where more processes share the memory bandwidth.
register(
    Backend(
        "lmdb",
        data_bytes=lambda source: lmdb_bytes(source.path),
        bytes_per_worker=64 << 20,
        **_STORE,
    )
)
register(Backend("leveldb", one_process="a LevelDB opens in one process at a time", **_STORE))
