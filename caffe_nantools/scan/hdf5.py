"""HDF5 sources as Caffe's HDF5Data layer reads them: a list file naming .h5 files (or one .h5
file), each holding one dataset per top blob, the first axis being the row (the sample).

Rows are read in chunks into one reused buffer, which stays in the CPU cache for the checks
(reading ahead in a thread into more buffers measured slower); a chunk costs one all-finite
reduction unless something in it is bad, and only then are its rows looked at one by one.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from caffe_nantools.files import Outputs
from caffe_nantools.finite import finite_stats, finite_sum
from caffe_nantools.scan.backends import Backend, RecordIndex, register
from caffe_nantools.scan.checks import (
    FLT_MAX,
    Collector,
    contract_problems,
    problem_of,
    shape_text,
)
from caffe_nantools.scan.progress import Progress
from caffe_nantools.scan.report import ScanReport
from caffe_nantools.scan.source import ScanError, Source, shard_range
from caffe_nantools.scan.stores import need

CHUNK_BYTES = 4 << 20


def _h5py():
    return need("h5py")


def is_hdf5_file(path: str) -> bool:
    """Whether ``path`` is an HDF5 file itself (not a list of them)."""
    with open(path, "rb") as f:
        return f.read(4) == b"\x89HDF"


def list_files(path: str) -> List[Tuple[str, str]]:
    """The .h5 files of a source, as (name as listed, path to open). A list file's relative
    names are tried from the current folder (as Caffe does) and then from the list's folder.

    Raises:
        ScanError: ``path`` is a folder or cannot be read, or the list names a file that is not
            there (Caffe stops on it).
    """
    if os.path.isdir(path):
        raise ScanError(
            f"{path}: a folder, not an HDF5 file or a list of them; give the .h5 file or the list"
        )
    try:
        if is_hdf5_file(path):
            return [(path, path)]
        with open(path, encoding="utf-8") as f:
            lines = [(number, line.strip()) for number, line in enumerate(f, 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        why = (
            "no such file"
            if isinstance(e, FileNotFoundError)
            else f"cannot read the HDF5 list ({e})"
        )
        raise ScanError(f"{path}: {why}") from None
    here = os.path.dirname(os.path.abspath(path))
    files = []
    for number, name in lines:
        local = os.path.join(here, name)
        found = name if os.path.exists(name) or not os.path.exists(local) else local
        if not os.path.isfile(found):
            what = (
                "no such file"
                if not os.path.exists(found)
                else "a folder"
                if os.path.isdir(found)
                else "not a regular file"
            )
            raise ScanError(f"{path}:{number}: {name}: {what} (Caffe stops there); fix the list")
        files.append((name, found))
    return files


class _File:
    """One .h5 file, its datasets sorted into those that can be read as rows of numbers and
    ``problems``: (name, why) of the others (missing, a dangling link, text, a scalar...)."""

    def __init__(self, name: str, path: str, datasets: Optional[Sequence[str]]) -> None:
        h5py = _h5py()
        self.name = name
        try:
            self.h5 = h5py.File(path, "r")
        except (OSError, ValueError) as e:
            raise ScanError(f"{path}: cannot open as HDF5 ({e})") from None
        self.problems: List[Tuple[str, str]] = []
        self.datasets = {}
        for d in datasets or list(self.h5.keys()):
            dataset, why = self._dataset(h5py, d, named=bool(datasets))
            if why:
                self.problems.append((d, why))
            elif dataset is not None:
                self.datasets[d] = dataset
        self.rows = {d: ds.shape[0] for d, ds in self.datasets.items()}

    def _dataset(self, h5py, name: str, named: bool):
        """(the dataset, None), or (None, why it cannot be read); (None, None) for a group
        that the layer does not name."""
        try:
            link = self.h5.get(name, getlink=True)
            target = self.h5[name] if link is not None else None
        except (KeyError, OSError, ValueError):
            where = getattr(link, "path", "")
            return None, f"{name!r} is a link to {where!r}, which does not exist"
        if target is None:
            return None, f"no dataset {name!r} (the layer's top)"
        if not isinstance(target, h5py.Dataset):
            return None, (f"{name!r} is a group, not a dataset" if named else None)
        if not target.shape:
            return (
                None,
                f"dataset {name!r} is a single value, not rows (HDF5Data reads a row per sample)",
            )
        if target.dtype.kind not in "biuf":
            return (
                None,
                f"dataset {name!r} holds {target.dtype}, not numbers (HDF5Data reads floats)",
            )
        if 0 in target.shape[1:]:
            return (
                None,
                f"dataset {name!r} has no values in a row (shape {shape_text(target.shape)})",
            )
        return target, None

    @property
    def n(self) -> int:
        return min(self.rows.values()) if self.rows else 0


def scan_hdf5(
    source: Source,
    report: ScanReport,
    *,
    limit=None,
    max_findings=None,
    shard=None,
    progress=False,
    one_core: bool = False,
) -> Set[int]:
    """Scan the files of an HDF5 source into ``report``; returns the bad global row indices
    (one core always: the chunks are read in this thread)."""
    collector = Collector(report, source.name, "hdf5", max_findings)
    files = []
    try:
        for name, path in list_files(source.path):
            files.append(_File(name, path, source.datasets or None))
        total = sum(f.n for f in files)
        first, end = shard_range(total, shard, limit)
        bar = Progress(os.path.basename(source.path), end - first, progress)
        bad: Set[int] = set()
        offset = 0
        try:
            for f in files:
                lo, hi = max(first - offset, 0), min(end - offset, f.n)
                # A file of no rows is said by the slice holding the next row (or by the last).
                last = shard is None or shard[0] == shard[1] - 1
                if lo < hi or (
                    f.n == 0 and (first <= offset < end or (last and offset == end == total))
                ):
                    bad |= _scan_file(f, offset, lo, hi, source.expect, collector, bar)
                offset += f.n
        finally:
            bar.close()
    except OSError as e:
        raise ScanError(f"{source.path}: read failed ({e})") from None
    finally:
        for f in files:
            f.h5.close()
    return bad


def _scan_file(
    f: _File, offset: int, lo: int, hi: int, expect, collector: Collector, bar
) -> Set[int]:
    bad: Set[int] = set()
    summary = collector.summary
    key = f"{f.name}:{{}}".format
    if lo == 0:
        for d, why in f.problems:
            collector.add(
                offset, f.name, d, "missing" if why.startswith("no dataset") else "dataset", why
            )
        if len(set(f.rows.values())) > 1:
            counts = ", ".join(f"{d}: {n}" for d, n in f.rows.items())
            collector.add(
                offset, f.name, "rows", "rows", f"datasets differ in row count ({counts})"
            )
    summary.records += hi - lo
    for d, ds in f.datasets.items():
        summary.dtypes[str(ds.dtype)] += hi - lo
        shape = shape_text(ds.shape[1:]) or "scalar"
        summary.shapes[f"{d}: {shape}"] += hi - lo
        is_label = d == expect.label_top if expect.label_top else d == "label"
        stats = summary.stats(d)
        for a, b, chunk, why in _chunks(ds, lo, hi):
            if chunk is None:
                for row in range(a, b):
                    collector.add(
                        offset + row,
                        key(row),
                        d,
                        "unreadable",
                        f"cannot be read ({why}): a damaged compressed chunk",
                    )
                    bad.add(offset + row)
            else:
                for row in _check_chunk(
                    chunk, d, expect, is_label, key, offset + a, a, collector, stats
                ):
                    bad.add(offset + row)
                if is_label:
                    summary.count_labels(chunk.reshape(b - a, -1)[:, 0])
            if d == next(iter(f.datasets)):
                bar.update(b - a)
    return bad


def _chunks(ds, lo: int, hi: int):
    """(first row, end row, rows, None) of ``ds``, read CHUNK_BYTES at a time into one reused
    buffer; a stretch that cannot be read (a damaged compressed chunk) comes as (first row, end
    row, None, why), narrowed to the dataset's own chunks, and the reading goes on after it."""
    step = max(1, CHUNK_BYTES // max(int(np.prod(ds.shape[1:])) * ds.dtype.itemsize, 1))
    buffer = np.empty((min(step, hi - lo),) + ds.shape[1:], ds.dtype) if hi > lo else None
    for a in range(lo, hi, step):
        b = min(a + step, hi)
        try:
            ds.read_direct(buffer, np.s_[a:b], np.s_[0 : b - a])
            yield a, b, buffer[: b - a], None
        except OSError:
            yield from _narrowed(ds, a, b, buffer)


def _narrowed(ds, lo: int, hi: int, buffer):
    """Rows ``lo:hi`` read one HDF5 chunk at a time, to name the rows that cannot be read."""
    rows = ds.chunks[0] if ds.chunks else hi - lo
    a = lo
    while a < hi:
        b = min((a // rows + 1) * rows, hi)
        try:
            ds.read_direct(buffer, np.s_[a:b], np.s_[0 : b - a])
            yield a, b, buffer[: b - a], None
        except OSError as e:
            yield a, b, None, str(e)
        a = b


def _check_chunk(
    chunk, dataset, expect, is_label, key, global_start, local_start, collector, stats
) -> List[int]:
    """Check rows of one chunk; returns bad rows as offsets from the file's first row."""
    bad = []
    n = len(chunk)
    flat = chunk.reshape(n, -1)
    total = finite_sum(flat) if flat.dtype.kind == "f" else float(flat.sum(dtype=np.float64))
    if total is None:
        stats.add(flat)
        for i in np.flatnonzero(~np.isfinite(flat).all(axis=1)):
            s = finite_stats(flat[i])
            collector.add(
                global_start + int(i), key(local_start + int(i)), dataset, problem_of(s), s.counts
            )
            bad.append(local_start + int(i))
    elif flat.size:
        lo, hi = float(flat.min()), float(flat.max())
        stats.update(lo, hi, total, flat.size)
        if max(hi, -lo) > FLT_MAX:
            # Caffe reads HDF5 data as float: a float64 value past float32's range arrives as inf.
            for i in np.flatnonzero((np.abs(flat) > FLT_MAX).any(axis=1)):
                worst = float(np.abs(flat[i]).max())
                collector.add(
                    global_start + int(i),
                    key(local_start + int(i)),
                    dataset,
                    "overflow",
                    f"{worst:.3g} is past float32's range (3.4e38): Caffe reads it as inf",
                )
                bad.append(local_start + int(i))
    if expect.contracts is not None:
        for i, problem, why in contract_problems(flat, dataset, expect, collector):
            collector.add(global_start + i, key(local_start + i), dataset, problem, why)
            bad.append(local_start + i)
    elif is_label:
        for i, problem in _label_problems(flat, expect):
            collector.add(global_start + i, key(local_start + i), dataset, "label", problem)
            bad.append(local_start + i)
    return bad


def _label_problems(flat: np.ndarray, expect) -> List[Tuple[int, str]]:
    problems: Dict[int, str] = {}
    if expect.class_labels is False:
        return []
    values = flat[:, 0] if flat.shape[1] else np.zeros(0)
    finite = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if expect.ignore_label is not None:
        finite &= values != expect.ignore_label
    for i in np.flatnonzero(finite & (values < 0)):
        problems[int(i)] = f"label {values[i]:g} is negative"
    if expect.integer_labels and values.dtype.kind == "f":
        for i in np.flatnonzero(finite & (values != np.round(values))):
            problems.setdefault(
                int(i), f"label {values[i]:g} is not a whole number (a classification label)"
            )
    if expect.num_classes is not None:
        for i in np.flatnonzero(finite & (values >= expect.num_classes)):
            problems.setdefault(
                int(i), f"label {values[i]:g} >= {expect.num_classes}, the number of classes"
            )
    return sorted(problems.items())


def write_clean_hdf5(source, bad: Set[int], target: str, out: Outputs) -> int:
    """Copy the source's rows that are not in ``bad``: one .h5 (for an .h5 source) or a list
    file plus its .h5 files in ``<target>.files/`` (for a list), staged in ``out``. Streamed a
    chunk at a time, as the scan reads: memory stays flat whatever the size."""
    h5py = _h5py()
    files = list_files(source.path)
    single = len(files) == 1 and files[0][0] == source.path
    folder = None if single else target + ".files"
    staged = out.path(target if single else folder, new=True)
    if folder:
        os.makedirs(staged)
    dropped_rows = np.array(sorted(bad), np.int64)
    transform = source.transform  # a systematic breach's fix: the blob rewritten
    written, offset, names = 0, 0, []
    for name, path in files:
        f = _File(name, path, source.datasets or None)
        try:
            first, last = np.searchsorted(dropped_rows, [offset, offset + f.n])
            dropped = dropped_rows[first:last] - offset
            name = f"{len(names):04d}-{os.path.basename(path)}"
            with h5py.File(staged if single else os.path.join(staged, name), "w") as h5:
                for d, ds in f.datasets.items():
                    change = transform.apply if transform and transform.blob == d else None
                    shape = ds.shape[1:] if change is None or not transform.argmax else ()
                    copy = h5.create_dataset(d, (f.n - dropped.size,) + shape, ds.dtype)
                    _copy_rows(ds, copy, f.n, dropped, change)
        finally:
            f.h5.close()
        names.append(os.path.abspath(os.path.join(folder, name)) if folder else target)
        written += f.n - dropped.size
        offset += f.n
    if not single:
        # The list names the copies where they will be once moved into place.
        out.text(target, "".join(n + "\n" for n in names), new=True)
    return written


def _copy_rows(ds, out, n: int, dropped: np.ndarray, change=None) -> None:
    """Rows ``0:n`` of ``ds`` but ``dropped`` (sorted) into ``out``, in order, each chunk as
    ``change`` makes it. Unreadable rows are always among the dropped ones: the scan found them
    bad."""
    at = 0
    for a, b, chunk, _ in _chunks(ds, 0, n):
        keep = np.ones(b - a, bool)
        keep[dropped[(dropped >= a) & (dropped < b)] - a] = False
        if chunk is None or not keep.any():
            continue
        rows = chunk if keep.all() else chunk[keep]
        out[at : at + len(rows)] = rows if change is None else change(rows)
        at += len(rows)


def clean_outputs(source: Source, target: str) -> Tuple[str, ...]:
    """What ``--write-clean target`` writes: the target, and for a list of HDF5 files the
    folder of their copies."""
    if os.path.isfile(source.path) and not is_hdf5_file(source.path):
        return target, target + ".files"
    return (target,)


def data_bytes(source: Source) -> int:
    return sum(os.path.getsize(path) for _, path in list_files(source.path) if os.path.exists(path))


class RowIndex(RecordIndex):
    """Rows in file order, named ``file:row``."""

    def __init__(self, source: Source) -> None:
        self.files = []
        for name, path in list_files(source.path):
            f = _File(name, path, source.datasets or None)
            self.files.append((name, f.n))
            f.h5.close()
        self.count = sum(n for _, n in self.files)

    def keys(self, indices: Sequence[int]) -> Dict[int, str]:
        out, start = {}, 0
        for name, n in self.files:
            for i in indices:
                if start <= i < start + n:
                    out[i] = f"{name}:{i - start}"
            start += n
        return out


register(
    Backend(
        "hdf5",
        scan=scan_hdf5,
        write_clean=write_clean_hdf5,
        index=RowIndex,
        outputs=clean_outputs,
        data_bytes=data_bytes,
        # Read and checked at about 6 GB/s in one process: measured in the image, a second
        # process was slower up to 128 MB (0.9x there), and 1.7x faster on 1 GB.
        bytes_per_worker=256 << 20,
    )
)
