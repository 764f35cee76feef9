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
from caffe_nantools.scan.checks import Collector, describe, problem_of
from caffe_nantools.scan.report import ScanReport

CHUNK_BYTES = 4 << 20


def _h5py():
    from caffe_nantools.scan.stores import _need

    return _need("h5py", "hdf5")


def is_hdf5_file(path: str) -> bool:
    """Whether ``path`` is an HDF5 file itself (not a list of them)."""
    with open(path, "rb") as f:
        return f.read(4) == b"\x89HDF"


def list_files(path: str) -> List[Tuple[str, str]]:
    """The .h5 files of a source, as (name as listed, path to open). A list file's relative
    names are tried from the current folder (as Caffe does) and then from the list's folder."""
    from caffe_nantools.scan.scanner import ScanError

    if is_hdf5_file(path):
        return [(path, path)]
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ScanError(f"{path}: cannot read the HDF5 list ({e})") from None
    here = os.path.dirname(os.path.abspath(path))
    files = []
    for name in names:
        local = os.path.join(here, name)
        files.append((name, name if os.path.exists(name) or not os.path.exists(local) else local))
    return files


class _File:
    def __init__(self, name: str, path: str, datasets: Optional[Sequence[str]]) -> None:
        from caffe_nantools.scan.scanner import ScanError

        h5py = _h5py()
        self.name = name
        try:
            self.h5 = h5py.File(path, "r")
        except OSError as e:
            raise ScanError(f"{path}: cannot open as HDF5 ({e})") from None
        wanted = datasets or [k for k, v in self.h5.items() if isinstance(v, h5py.Dataset)]
        self.missing = [d for d in wanted if d not in self.h5]
        self.datasets = {d: self.h5[d] for d in wanted if d in self.h5}
        self.rows = {d: (ds.shape[0] if ds.shape else 1) for d, ds in self.datasets.items()}

    @property
    def n(self) -> int:
        return min(self.rows.values()) if self.rows else 0


def scan_hdf5(source, report: ScanReport, *, limit=None, max_findings=None, shard=None, progress=False) -> Set[int]:
    """Scan the files of an HDF5 source into ``report``; returns the bad global row indices."""
    from caffe_nantools.scan.scanner import Progress, ScanError, _shard_range

    collector = Collector(report, source.name, "hdf5", max_findings)
    datasets = source.datasets or None
    files = []
    for name, path in list_files(source.path):
        if not os.path.exists(path):
            files.append((name, path, None))
            continue
        files.append((name, path, _File(name, path, datasets)))
    total = sum(f.n for _, _, f in files if f is not None)
    first, end = _shard_range(total, shard)
    if limit is not None:
        end = min(end, first + limit)
    bar = Progress(os.path.basename(source.path), end - first, progress)
    bad: Set[int] = set()
    offset = 0
    try:
        for name, path, f in files:
            if f is None:
                if first <= offset < end or (first == offset == end == 0):
                    collector.add(offset, name, "file", "missing", f"{path}: no such file (Caffe stops here)")
                continue
            lo, hi = max(first - offset, 0), min(end - offset, f.n)
            if lo < hi or f.n == 0:
                bad |= _scan_file(f, offset, lo, hi, source.expect, collector, bar)
            offset += f.n
    except OSError as e:
        raise ScanError(f"{source.path}: read failed ({e})") from None
    finally:
        bar.close()
        for _, _, f in files:
            if f is not None:
                f.h5.close()
    return bad


def _scan_file(f: _File, offset: int, lo: int, hi: int, expect, collector: Collector, bar) -> Set[int]:
    bad: Set[int] = set()
    summary = collector.summary
    key = f"{f.name}:{{}}".format
    if lo == 0:
        for d in f.missing:
            collector.add(offset, f.name, d, "missing", f"no dataset {d!r} (the layer's top)")
        if len(set(f.rows.values())) > 1:
            counts = ", ".join(f"{d}: {n}" for d, n in f.rows.items())
            collector.add(offset, f.name, "rows", "rows", f"datasets differ in row count ({counts})")
    summary.records += hi - lo
    for d, ds in f.datasets.items():
        summary.dtypes[str(ds.dtype)] += hi - lo
        shape = "x".join(map(str, ds.shape[1:])) or "scalar"
        summary.shapes[f"{d}: {shape}"] += hi - lo
        is_label = d == expect.label_top if expect.label_top else d == "label"
        row_bytes = max(int(np.prod(ds.shape[1:])) * ds.dtype.itemsize, 1)
        step = max(1, CHUNK_BYTES // row_bytes)
        stats = summary.stats(d)
        for a, b, chunk in _chunks(ds, lo, hi, step):
            for row in _check_chunk(chunk, d, expect, is_label, key, offset + a, a, collector, stats):
                bad.add(offset + row)
            if is_label:
                summary.count_labels(chunk.reshape(b - a, -1)[:, 0] if chunk.ndim > 1 else chunk)
            if d == next(iter(f.datasets)):
                bar.update(b - a)
    return bad


def _chunks(ds, lo: int, hi: int, step: int):
    """(first row, end row, rows) of ``ds``, read into one reused buffer."""
    buffer = np.empty((min(step, hi - lo),) + ds.shape[1:], ds.dtype) if hi > lo else None
    for a in range(lo, hi, step):
        b = min(a + step, hi)
        chunk = buffer[: b - a]
        ds.read_direct(chunk, np.s_[a:b], np.s_[0 : b - a])
        yield a, b, chunk


def _check_chunk(chunk, dataset, expect, is_label, key, global_start, local_start, collector, stats) -> List[int]:
    """Check rows of one chunk; returns bad rows as offsets from the file's first row."""
    bad = []
    n = len(chunk)
    flat = chunk.reshape(n, -1)
    total = finite_sum(flat) if flat.dtype.kind == "f" else float(flat.sum(dtype=np.float64))
    if total is None:
        stats.add(flat)
        for i in np.flatnonzero(~np.isfinite(flat).all(axis=1)):
            s = finite_stats(flat[i])
            collector.add(global_start + int(i), key(local_start + int(i)), dataset, problem_of(s), describe(s))
            bad.append(local_start + int(i))
    elif flat.size:
        stats.update(float(flat.min()), float(flat.max()), total, flat.size)
    if is_label:
        for i, problem in _label_problems(flat, expect):
            collector.add(global_start + i, key(local_start + i), dataset, "label", problem)
            bad.append(local_start + i)
    return bad


def _label_problems(flat: np.ndarray, expect) -> List[Tuple[int, str]]:
    problems: Dict[int, str] = {}
    values = flat[:, 0] if flat.shape[1] else np.zeros(0)
    finite = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if expect.ignore_label is not None:
        finite &= values != expect.ignore_label
    for i in np.flatnonzero(finite & (values < 0)):
        problems[int(i)] = f"label {values[i]:g} is negative"
    if expect.integer_labels and values.dtype.kind == "f":
        for i in np.flatnonzero(finite & (values != np.round(values))):
            problems.setdefault(int(i), f"label {values[i]:g} is not a whole number (a classification label)")
    if expect.num_classes is not None:
        for i in np.flatnonzero(finite & (values >= expect.num_classes)):
            problems.setdefault(int(i), f"label {values[i]:g} >= {expect.num_classes}, the number of classes")
    return sorted(problems.items())


def write_clean_hdf5(source, bad: Set[int], target: str, out: Outputs) -> int:
    """Copy the source's rows that are not in ``bad``: one .h5 (for an .h5 source) or a list
    file plus its .h5 files in ``<target>.files/`` (for a list), staged in ``out``."""
    h5py = _h5py()
    files = [(n, p) for n, p in list_files(source.path) if os.path.exists(p)]
    single = len(files) == 1 and files[0][0] == source.path
    folder = None if single else target + ".files"
    staged = out.path(target if single else folder, new=True)
    if folder:
        os.makedirs(staged)
    written, offset, names = 0, 0, []
    for name, path in files:
        f = _File(name, path, source.datasets or None)
        keep = np.asarray([r for r in range(f.n) if offset + r not in bad], dtype=np.int64)
        name = f"{len(names):04d}-{os.path.basename(path)}"
        with h5py.File(staged if single else os.path.join(staged, name), "w") as copy:
            for d, ds in f.datasets.items():
                copy.create_dataset(d, data=ds[: f.n][keep] if keep.size else np.zeros((0,) + ds.shape[1:], ds.dtype))
        f.h5.close()
        names.append(os.path.abspath(os.path.join(folder, name)) if folder else target)
        written += keep.size
        offset += f.n
    if not single:
        # The list names the copies where they will be once moved into place.
        out.text(target, "".join(n + "\n" for n in names), new=True)
    return written
