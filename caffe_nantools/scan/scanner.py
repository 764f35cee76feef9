"""``scan``: every record of a data source read and checked, the bad ones named by key or row.

The driver: options checked, the sources found (a path, or a net's data layers), each scanned
by its backend (:mod:`caffe_nantools.scan.backends`) in one process or several, reports merged."""

from __future__ import annotations

import numbers
import os
import signal
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import List, Optional, Set, Tuple, Union

from caffe_nantools import arguments
from caffe_nantools.children import end_with_parent
from caffe_nantools.errors import NanToolsError, literal
from caffe_nantools.files import check_input, check_writable, writing
from caffe_nantools.prototxt import PHASES, Net
from caffe_nantools.scan.backends import backend_names, backend_of, scan_source
from caffe_nantools.scan.checks import Collector
from caffe_nantools.scan.judging import judge_contracts, mended_rows
from caffe_nantools.scan.cores import usable_cores
from caffe_nantools.scan.merging import fingerprint
from caffe_nantools.scan.progress import Progress, Tally
from caffe_nantools.scan.report import ScanReport, merge_reports
from caffe_nantools.scan.source import ScanError, Source


#: How scan reads a source: ``direct`` itself, ``net`` through Caffe's own data layers.
MODES = ("direct", "net")


def detect_backend(path: str) -> str:
    """Which backend ``path`` is: an LMDB or LevelDB folder, an HDF5 file or list of them, or
    an ImageData list."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "data.mdb")):
            return "lmdb"
        if os.path.exists(os.path.join(path, "CURRENT")):
            return "leveldb"
        raise ScanError(
            f"{literal(path)}: a folder that is neither an LMDB (data.mdb) nor a LevelDB "
            "(CURRENT); if it is one of them, say which: {backend=lmdb} or {backend=leveldb}",
            arguments={"backend": None},
        )
    if not os.path.exists(path):
        raise ScanError(f"{path}: no such file or folder")
    check_input(path, "data source")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\x89HDF"):
            return "hdf5"
        if os.path.basename(path) == "data.mdb":
            return "lmdb"
        with open(path, encoding="utf-8") as f:
            first = next((line.strip() for line in f if line.strip()), "")
    except OSError as e:
        raise ScanError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ScanError(
            f"{literal(path)}: not a store this tool knows; if it is one, say which: "
            + " or ".join(f"{{backend={name}}}" for name in backend_names()),
            arguments={"backend": None},
        ) from None
    if first.lower().endswith((".h5", ".hdf5", ".hdf")):
        return "hdf5"
    return "imagelist"


def is_net(path: str) -> bool:
    return path.endswith((".prototxt", ".pt"))


def scan(
    target: Union[str, Net],
    *,
    backend: Optional[str] = None,
    phase: str = "TRAIN",
    layer: Optional[str] = None,
    mode: str = "direct",
    limit: Optional[int] = None,
    max_findings: Optional[int] = None,
    shard: Optional[Tuple[int, int]] = None,
    workers: Optional[int] = None,
    write_clean: Optional[str] = None,
    progress: bool = False,
) -> ScanReport:
    """``caffe-nantools scan PATH``: check every record of a data source.

    Args:
        target: a net prototxt (its data layers in ``phase`` are scanned, with what the net
            expects of them), or a source: an LMDB or LevelDB folder, an HDF5 file or list
            file, an ImageData list; or a net parsed already (a
            :class:`~caffe_nantools.prototxt.net.Net`, of any file name).
        backend: ``lmdb``, ``leveldb``, ``hdf5`` or ``imagelist``; detected when None.
        phase: ``TRAIN`` or ``TEST``, for a net.
        layer: scan only this data layer of a net (with what the net expects of it), e.g. to
            write a clean copy of one source of a net that reads several.
        mode: ``direct`` reads the stores itself (no Caffe needed); ``net`` has Caffe read
            each data layer of the net (transform_param, mean file and Caffe's decoding
            included) and checks every sample of every batch.
        limit: scan only the first N records of each source.
        max_findings: list at most N findings (the rest are counted).
        shard: ``(k, n)``: scan only the k-th of n equal slices (0-based), for scanning a
            huge store in pieces; ``merge`` joins the reports.
        workers: scan the slices in this many processes, each on one core, and merge (not for
            a LevelDB, which one process at a time may open); None: one per core where
            the source holds its backend's ``bytes_per_worker`` for each, else one process (an
            LMDB or LevelDB read ahead in a thread).
        write_clean: copy the source to this new path without the bad records.
        progress: show records/s and ETA on stderr.

    Raises:
        ScanError: bad options, or a source that cannot be read (one line, naming it).
    """
    model = target if isinstance(target, Net) else None
    target = arguments.path("target", model.path if model is not None else target)
    net = model is not None or is_net(target)
    limit = arguments.whole("limit", limit, optional=True)
    max_findings = arguments.whole("max_findings", max_findings, optional=True)
    workers = arguments.whole("workers", workers, optional=True)
    write_clean = arguments.path("write_clean", write_clean, optional=True)
    shard = _shard(shard)
    _check_options(
        net,
        backend=backend,
        phase=phase,
        layer=layer,
        mode=mode,
        limit=limit,
        shard=shard,
        workers=workers,
        write_clean=write_clean,
    )
    if mode == "net":
        return _scan_through_caffe(target, phase, limit, max_findings, progress)
    report = ScanReport()
    sources = _sources(target, net, model, backend, phase, layer, report)
    if write_clean is not None:
        _check_clean_copy(sources, write_clean)
    report, bad = _scan_sources(
        sources,
        report,
        limit=limit,
        max_findings=max_findings,
        shard=shard,
        workers=workers,
        progress=progress,
    )
    if write_clean is not None:
        _clean_copy(sources[0], report, bad, write_clean)
    return report


def _scan_sources(
    sources: List[Source], report: ScanReport, *, shard, **reading
) -> Tuple[ScanReport, Set[int]]:
    """Each source scanned into ``report`` (``reading``: how, as :func:`_scan_one` takes it)
    and, whole, judged against the contracts of the net that reads it; the findings in order,
    each source's fingerprint. Returns the report and the bad records of the last source."""
    bad: Set[int] = set()
    for source in sources:
        report, bad = _scan_one(source, report, shard=shard, **reading)
        if shard is None:
            judge_contracts(source, report)
    report.sort()
    report.shard = shard
    report.origin = {source.name: fingerprint(source.path, source.backend) for source in sources}
    return report, bad


def _scan_through_caffe(
    target: str, phase: str, limit: Optional[int], max_findings: Optional[int], progress: bool
) -> ScanReport:
    """``mode="net"``: Caffe reads each data layer of the net, the samples of every batch are
    checked, then what the net expects of each source."""
    from caffe_nantools.pycaffe import load_caffe
    from caffe_nantools.scan.netmode import scan_net_mode

    load_caffe()  # a clear error now rather than in the child process
    report = ScanReport()
    sources = scan_net_mode(
        target, phase, report, limit=limit, max_findings=max_findings, progress=progress
    )
    for source in sources:
        judge_contracts(source, report)
    report.sort()
    return report


def _check_clean_copy(sources: List[Source], write_clean: str) -> None:
    """Before anything is read: one source, and a copy of it that can be written as new files."""
    if len(sources) != 1:
        raise _not_one_whole_source(write_clean)
    for path in backend_of(sources[0]).outputs(sources[0], write_clean):
        check_writable(path, new=True)


def _clean_copy(source: Source, report: ScanReport, bad: Set[int], write_clean: str) -> None:
    """The scanned ``source`` copied to ``write_clean`` without its ``bad`` records: a breach of
    the net's contract that a transform mends is mended in the copy (its rows are not bad), one
    that only the net can fix is noted."""
    breach = next((b for b in report.breaches if b.source == source.name), None)
    if breach is not None and breach.transform is not None:
        source = replace(source, transform=breach.transform)
    elif breach is not None:
        report.notes.append(
            f"{source.name}: {breach.what}: the fix is the net's ({breach.fix}); the copy "
            "keeps the records that breach it"
        )
    if breach is not None:
        bad = bad - mended_rows(report, breach)
    kept = _write_clean(source, bad, write_clean)
    how = f", {breach.transform.words}" if source.transform is not None else ""
    report.notes.append(f"wrote {write_clean}: {kept} records{how}, {len(bad)} bad ones left out")


def _check_options(net: bool, **arguments) -> None:
    """Options that cannot go together, or values scan does not take, before anything is read
    (``net``: the target is a net; ``arguments``: scan's, which the messages name)."""
    backend, phase, mode, limit = (arguments[k] for k in ("backend", "phase", "mode", "limit"))
    shard, workers, write_clean = (arguments[k] for k in ("shard", "workers", "write_clean"))

    def refuse(message: str) -> ScanError:
        return ScanError(message, arguments=arguments)

    if backend is not None and backend not in backend_names():
        raise refuse("{backend}: not one of " + ", ".join(backend_names()))
    if phase not in PHASES:
        raise refuse("{phase}: TRAIN or TEST")
    several = workers is not None and workers > 1
    if shard is not None and several:
        raise refuse("{shard} and {workers} exclude each other (run one process per shard)")
    if several and limit is not None:
        raise refuse("{limit} and {workers} exclude each other")
    if mode not in MODES:
        raise refuse("{mode}: direct or net")
    if arguments["layer"] is not None and not net:
        raise refuse("{layer} is for a net: a source path is one source already")
    if mode == "net":
        if not net:
            raise refuse("{mode} needs a net prototxt: it runs the net's own data layers")
        if several or shard is not None or write_clean is not None or backend is not None:
            raise refuse(
                "{mode} takes no {workers:name}, {shard:name}, {write_clean:name} or {backend:name}"
            )
        if arguments["layer"] is not None:
            raise refuse("{mode} runs every data layer of the net; it takes no {layer:name}")
    if net and backend is not None:
        raise refuse("{backend} is for a source path; a net names its sources' backends")
    if write_clean is not None and (shard is not None or limit is not None):
        raise _not_one_whole_source(write_clean)


def _shard(shard: object) -> Optional[Tuple[int, int]]:
    """``(k, n)``: slice k of n, 0-based."""
    if shard is None:
        return None
    if (
        isinstance(shard, tuple)
        and len(shard) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shard)
        and 0 <= shard[0] < shard[1]
    ):
        return int(shard[0]), int(shard[1])
    raise arguments.ArgumentError(
        "{shard}: must be (k, n), slice k of n with 0 <= k < n", arguments={"shard": shard}
    )


def _not_one_whole_source(write_clean: str) -> ScanError:
    return ScanError(
        "{write_clean} needs one whole source: no {shard:name} or {limit:name}, one data layer",
        arguments={"write_clean": write_clean, "shard": None, "limit": None},
    )


def _sources(
    target: str,
    net: bool,
    model: Optional[Net],
    backend: Optional[str],
    phase: str,
    layer: Optional[str],
    report: ScanReport,
) -> List[Source]:
    """What to scan: the data layers of a net in ``phase`` (only ``layer``, when given), or the
    one source given (``net``: the target is a net; ``model``: that net, parsed already)."""
    if not net:
        return [Source(target, backend or detect_backend(target))]
    from caffe_nantools.scan.net_sources import sources_from_net

    sources, notes = sources_from_net(target, phase, model)
    report.notes.extend(notes)
    if layer is not None:
        sources = [s for s in sources if s.layer == layer]
        if not sources:
            raise ScanError(
                f"{target}: no Data, HDF5Data or ImageData layer named {layer!r} in phase {phase}"
            )
    if not sources:
        raise ScanError(f"{target}: no Data, HDF5Data or ImageData layer in phase {phase}")
    return sources


def _scan_one(
    source: Source, report: ScanReport, *, limit, max_findings, shard, workers, progress
) -> Tuple[ScanReport, Set[int]]:
    """Scan one source into ``report`` (in as many processes as it is worth); returns the
    report (a merged one for several processes) and the source's bad record indices."""
    if os.path.exists(source.path) and not os.path.isdir(source.path):
        check_input(source.path, "data source")
    _check_mean(source, report)
    processes = workers or (1 if limit is not None or shard is not None else auto_workers(source))
    if processes > 1 and backend_of(source).one_process:
        report.notes.append(
            f"scanned in one process, not {processes}: {backend_of(source).one_process}"
        )
        processes = 1
    if processes > 1:
        part, bad = _scan_in_processes(source, processes, max_findings, progress)
        report = merge_reports([report, part])
    else:
        # --workers 1 asks for one core's work (a scheduler's slot of one CPU, say): no
        # read-ahead thread on a second core.
        bad = scan_source(
            source,
            report,
            limit=limit,
            max_findings=max_findings,
            shard=shard,
            progress=progress,
            one_core=workers == 1,
        )
    if shard is None and report.summaries[source.name].records == 0:
        Collector(report, source.name, source.backend).add(
            -1, source.name, "source", "empty", "no records at all: Caffe stops on an empty source"
        )
    return report, bad


def auto_workers(source: Source) -> int:
    """How many processes scan ``source`` when not told: one per core the process may use,
    for a source with at least its backend's ``bytes_per_worker`` for each."""
    backend = backend_of(source)
    return max(1, min(usable_cores(), backend.data_bytes(source) // backend.bytes_per_worker))


def _check_mean(source: Source, report: ScanReport) -> None:
    """Findings for a broken mean file; its shape becomes the one records must have."""
    if not source.mean_file:
        return
    from caffe_nantools.finite import finite_stats, is_finite
    from caffe_nantools.scan.net_sources import read_mean

    collector = Collector(report, source.name, source.backend)
    path = source.mean_file
    if os.path.exists(path) and not os.path.isfile(path):
        collector.add(-1, path, "mean_file", "mean", f"{path}: not a regular file")
        return
    try:
        mean = read_mean(path)
    except FileNotFoundError:
        collector.add(-1, path, "mean_file", "missing", f"{path}: no such file (Caffe stops here)")
        return
    except (OSError, ValueError) as e:
        collector.add(-1, path, "mean_file", "mean", f"{path}: not a readable BlobProto ({e})")
        return
    if not is_finite(mean):
        collector.add(
            -1, path, "mean_file", "mean", f"{path}: " + finite_stats(mean.reshape(1, -1)).counts
        )
    if mean.ndim == 3:
        source.expect.shape = tuple(int(d) for d in mean.shape)


def _scan_shard(
    source: Source, k: int, n: int, max_findings, progress: Union[bool, Tally]
) -> Tuple[ScanReport, Set[int]]:
    report = ScanReport()
    bad = scan_source(
        source, report, max_findings=max_findings, shard=(k, n), progress=progress, one_core=True
    )
    return report, bad


#: The signals a worker must not handle as the parent does: Ctrl-C is the parent's to answer
#: (it stops the children), and SIGTERM/SIGHUP (the parent's way to stop them) must end a worker
#: quietly, not raise the CLI's exception in it.
_HELD = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())


@contextmanager
def _signals_held():
    """Those signals held back from a child process being started (it inherits the mask),
    until it has its own handlers: otherwise each child could print a traceback."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _scan_child(source: Source, k: int, n: int, max_findings, counts, send, parent: int) -> None:
    """A worker process: its slice's (report, bad indices), or the error that stopped it, sent
    to the parent."""
    for signum in _HELD:
        signal.signal(signum, signal.SIG_IGN if signum == signal.SIGINT else signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    end_with_parent(parent)
    try:
        result = _scan_shard(
            source, k, n, max_findings, Tally(counts, k) if counts is not None else False
        )
    except NanToolsError as e:
        result = e
    except Exception as e:  # a bug, not bad input: the parent names it rather than hang
        result = ScanError(f"{source.path}: worker {k} of {n} failed ({type(e).__name__}: {e})")
    send.send(result)
    send.close()


def _scan_in_processes(
    source: Source, workers: int, max_findings, progress: bool
) -> Tuple[ScanReport, Set[int]]:
    """The first slices scanned by child processes, the last by this process meanwhile: one
    process less to start, and this one seeks its slice's first key while the first child,
    which needs none, gets going."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    counts = None
    if progress:
        # Without shared memory (a chroot without /dev/shm) each shows its own slice's progress.
        with suppress(OSError):
            counts = context.RawArray("q", 2 * workers)
    last = workers - 1
    mine = Tally(counts, last, draws=True) if counts is not None else progress
    children = []
    finished = False
    try:
        for k in range(last):
            children.append(_start_child(context, source, k, workers, max_findings, counts))
        own = _scan_shard(source, last, workers, max_findings, mine)
        # Then the children's progress, where their counts can be seen.
        bar = Progress(
            os.path.basename(source.path.rstrip("/")), None, mine if counts is not None else False
        )
        results = _children_results(children, bar, source, workers) + [own]
        report = merge_reports(part for part, _ in results)  # while the children exit
        finished = True
    finally:
        if not finished:  # stopped by an error or Ctrl-C: the others need not go on
            for child, _ in children:
                child.terminate()
        for child, _ in children:
            child.join()
    if max_findings is not None and len(report.findings) > max_findings:
        report.unlisted += len(report.findings) - max_findings
        del report.findings[max_findings:]
    return report, {i for _, bad in results for i in bad}


def _start_child(context, source: Source, k: int, workers: int, max_findings, counts):
    """A child process scanning slice ``k`` of ``workers``, and the end of the pipe its result
    comes through."""
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_scan_child,
        args=(source, k, workers, max_findings, counts, send, os.getpid()),
        daemon=True,
    )
    with _signals_held():
        child.start()
    send.close()
    return child, receive


def _children_results(
    children, bar: Progress, source: Source, workers: int
) -> List[Tuple[ScanReport, Set[int]]]:
    """Each child's (report, bad indices), in slice order, waited for as they come (the bar
    drawn meanwhile); the error that stopped a child is raised, as is a child that died without
    a word (killed, out of memory)."""
    from multiprocessing.connection import wait

    outcome = {}
    pending = [receive for _, receive in children]
    while pending:
        for receive in wait(pending, timeout=0.2):
            try:
                outcome[receive] = receive.recv()
            except EOFError:
                outcome[receive] = None
            pending.remove(receive)
        bar.draw()
    bar.close()
    results = []
    for k, (child, receive) in enumerate(children):
        result = outcome[receive]
        if result is None:
            child.join()
            raise ScanError(
                f"{source.path}: worker {k} of {workers} ended without a report (exit code {child.exitcode})"
            )
        if isinstance(result, BaseException):
            raise result
        results.append(result)
    return results


def _write_clean(source: Source, bad: Set[int], target: str) -> int:
    """Copy ``source`` without the ``bad`` records to ``target``: written under temporary names
    and moved into place when complete, so an interrupted or failed copy leaves nothing at
    ``target`` (nor a partial copy that looks whole)."""
    try:
        with writing() as out:
            return backend_of(source).write_clean(source, bad, target, out)
    except OSError as e:
        why = f"cannot write ({e.strerror or e})"
    except NanToolsError as e:
        why = str(e)
    raise ScanError(
        "{write_clean}: " + literal(why) + "; nothing was written",
        arguments={"write_clean": target},
    )
