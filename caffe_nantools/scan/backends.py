"""The registry of what ``scan`` can read. A backend (a kind of source: LMDB, LevelDB, HDF5, an
image list) and a record kind (what a key-value store's values are: Datum, AnnotatedDatum)
each live in a module of their own that registers them when imported; the driver only looks
them up here. A new one is a new module and its name in :data:`MODULES`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from caffe_nantools.files import Outputs
from caffe_nantools.scan.checks import Collector, Expect
from caffe_nantools.scan.progress import Tally
from caffe_nantools.scan.report import ScanReport
from caffe_nantools.scan.source import Source

#: The modules that register backends and record kinds, in the order record kinds are tried.
MODULES = ("keyvalue", "hdf5", "imagelist", "annotated")


class RecordIndex:
    """A source's records in the order Caffe reads them: how many, and the key of the record
    at a position, as ``scan`` names them."""

    count: int

    def keys(self, indices: Sequence[int]) -> Dict[int, str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Backend:
    """How ``scan`` reads one kind of source.

    Attributes:
        name: the ``--backend`` name.
        scan: ``scan(source, report, *, limit, max_findings, shard, progress, one_core)``
            checks the records into ``report`` and returns the indices of the bad ones;
            ``one_core`` keeps it to one core (no read-ahead thread).
        write_clean: ``write_clean(source, bad, target, out)`` stages in ``out`` a copy of the
            source without the ``bad`` records at ``target``; returns the records kept.
        index: the :class:`RecordIndex` of a source (for ``scan --mode net``).
        outputs: the paths ``--write-clean target`` writes.
        data_bytes: the bytes a scan reads, where a process per core may pay (0: one process).
        bytes_per_worker: the bytes each process must get for a process per core to pay
            (measured in the image: where one process would take about 40 ms, starting a second
            one on a second core costs about what it saves); read only with ``data_bytes``.
        one_process: why the source is scanned in one process whatever ``--workers`` says
            (empty: it need not be).
        recheck: ``recheck(source, indices, collector)`` runs the direct checks on these
            records only (``scan --mode net``, where Caffe aborted); None: not possible.
        subset: ``subset(source, indices, path)`` writes the records at ``indices`` as a new
            source at ``path``; None: the source cannot be cut.
    """

    name: str
    scan: Callable[..., Set[int]]
    write_clean: Callable[[Source, Set[int], str, Outputs], int]
    index: Callable[[Source], RecordIndex]
    outputs: Callable[[Source, str], Tuple[str, ...]] = lambda source, target: (target,)
    data_bytes: Callable[[Source], int] = lambda source: 0
    bytes_per_worker: int = 256 << 20
    one_process: str = ""
    recheck: Optional[Callable[[Source, List[int], Collector], None]] = None
    subset: Optional[Callable[[Source, List[int], str], None]] = None


class Checker:
    """Checks batches of one record kind into a collector: ``check(keys, values, first_index)``
    returns the batch rows found bad. ``reference``: the shape every record must have (the
    store's first record's), None until a record gave one."""

    reference: Optional[Tuple[int, ...]] = None

    def check(
        self, keys: Sequence[bytes], values: Sequence[Union[bytes, memoryview]], first_index: int
    ) -> List[int]:
        raise NotImplementedError


@dataclass(frozen=True)
class RecordKind:
    """A message type a key-value store holds.

    Attributes:
        name: the message's name in caffe.proto.
        claims: whether a record's wire bytes are of this kind (and not of the others).
        checker: ``checker(collector, expect)``, a :class:`Checker` for its records.
        read_ahead: whether reading the next records in a thread while its checks run pays:
            not where the checks are Python work that holds the interpreter lock (the thread's
            copies then wait for it, and slow the checks down), which then read views in turn.
    """

    name: str
    claims: Callable[[bytes], bool]
    checker: Callable[[Collector, Expect], Checker]
    read_ahead: bool = True


_BACKENDS: Dict[str, Backend] = {}
_KINDS: List[RecordKind] = []


def register(item: Union[Backend, RecordKind]) -> None:
    """Make a backend or a record kind known to ``scan`` (called by its module on import)."""
    if isinstance(item, Backend):
        _BACKENDS[item.name] = item
    elif item not in _KINDS:
        _KINDS.append(item)


def _load() -> None:
    for module in MODULES:
        importlib.import_module(f"caffe_nantools.scan.{module}")


def backend_names() -> Tuple[str, ...]:
    _load()
    return tuple(_BACKENDS)


def backend_of(source: Source) -> Backend:
    _load()
    return _BACKENDS[source.backend]


def record_kinds() -> List[RecordKind]:
    """The record kinds, the most specific first (a Datum is what no other kind claims)."""
    _load()
    return list(_KINDS)


def scan_source(
    source: Source,
    report: ScanReport,
    *,
    limit: Optional[int] = None,
    max_findings: Optional[int] = None,
    shard: Optional[Tuple[int, int]] = None,
    progress: Union[bool, Tally] = False,
    one_core: bool = False,
) -> Set[int]:
    """Check the records of ``source`` (its shard, its first ``limit``) into ``report``;
    returns the indices of the bad ones."""
    bad = backend_of(source).scan(
        source,
        report,
        limit=limit,
        max_findings=max_findings,
        shard=shard,
        progress=progress,
        one_core=one_core,
    )
    summary = report.summaries.get(source.name)
    if summary is not None:
        report.notes.extend(summary.skipped_notes(source.name))
    return bad
