"""The checks a scan runs on a batch of records, whatever store they came from."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.datum import Batch, decode_batch
from caffe_nantools.finite import finite_stats, finite_sum
from caffe_nantools.scan.contracts import Bound, check_rows, problem_name
from caffe_nantools.scan.report import FieldStats, Finding, ScanReport, Summary
from caffe_nantools.scan.stores import need

FLT_MAX = float(np.finfo(np.float32).max)
INT_MAX = 2**31 - 1  # a blob's count is a C int


@dataclass
class Expect:
    """What the net says about its input, where it says it.

    Attributes:
        shape: (channels, height, width) a record must have (from a mean file); else the first
            record's shape is the reference.
        num_classes: labels must be below it (num_output of the layer feeding the loss).
        scale, mean: the data layer's transform_param; values that they push past float32's
            range are reported.
        integer_labels: labels must be whole numbers (HDF5 labels of a classification loss).
        label_top: the name of the label blob (HDF5 dataset); without a net, "label".
        ignore_label: the loss's ignore_label, a label that is always fine.
        crop_size: records must be at least this high and wide (Caffe CHECKs it).
        class_labels: whether the net reads the labels as classes (None: no net to say; they
            are checked as classes). False for a regression target (EuclideanLoss), where any
            finite value is fine.
        background_label: the detection loss's background class (MultiBoxLoss
            ``background_label_id``, SSD's default 0): no box may carry it.
        annotation_type: the AnnotatedData layer's ``anno_type``, which overrides the records'
            own ``type``; None where it sets none.
        contracts: by the layer's top (an HDF5 dataset, a Datum's label), what the net's loss
            and metric layers require of it (:mod:`caffe_nantools.scan.contracts`); None
            without a net, where labels are checked as classes.
    """

    shape: Optional[Tuple[int, ...]] = None
    num_classes: Optional[int] = None
    scale: float = 1.0
    mean: float = 0.0
    integer_labels: bool = False
    label_top: Optional[str] = None
    ignore_label: Optional[int] = None
    crop_size: int = 0
    class_labels: Optional[bool] = None
    background_label: int = 0
    annotation_type: Optional[int] = None
    contracts: Optional[Dict[str, Tuple[Bound, ...]]] = None


def shape_text(shape) -> str:
    """A shape as the reports write it: ``3x32x32``."""
    return "x".join(str(int(d)) for d in shape)


class Collector:
    """Gathers findings into a report, up to ``max_findings`` listed (the rest counted)."""

    def __init__(
        self, report: ScanReport, source: str, backend: str, max_findings: Optional[int] = None
    ) -> None:
        self.report = report
        self.source = source
        self.max_findings = max_findings
        if source not in report.sources:
            report.sources.append(source)
        self.summary = report.summaries.setdefault(source, Summary(backend))

    def add(self, index: int, key: str, field: str, problem: str, detail: str) -> None:
        if self.max_findings is not None and len(self.report.findings) >= self.max_findings:
            self.report.unlisted += 1
            return
        self.report.findings.append(Finding(self.source, index, key, field, problem, detail))


#: Control characters (NUL, line breaks...) written as ``\xNN`` like the bytes that are not UTF-8:
#: raw, they would break a CSV row or a terminal line.
_CONTROLS = {c: f"\\x{c:02x}" for c in list(range(0x20)) + [0x7F]}


def key_text(key: bytes) -> str:
    """A store key (bytes or a memoryview) as text: UTF-8 where it is, ``\\xNN`` escapes for
    other bytes and for control characters."""
    return bytes(key).decode("utf-8", "backslashreplace").translate(_CONTROLS)


def problem_of(stats) -> str:
    return "nan" if stats.nan else "inf"


@dataclass
class _Measured:
    rows: np.ndarray
    field: str
    dtype: str
    stats: Optional[tuple]  # (min, max, sum, count) of the finite values
    problems: List[tuple]  # (row, problem, detail)


@dataclass
class DatumChecker:
    """Checks batches of serialized Datums (LMDB, LevelDB) and keeps the summary.

    ``labels``: whether the Datum's label is the record's (not in an AnnotatedDatum, whose boxes
    carry the labels), to be counted in the summary."""

    collector: Collector
    expect: Expect = field(default_factory=Expect)
    reference: Optional[Tuple[int, int, int]] = None
    labels: bool = True

    def __post_init__(self) -> None:
        if self.expect.shape is not None:
            self.reference = tuple(self.expect.shape)  # type: ignore[assignment]

    def check(self, keys: Sequence[bytes], values: Sequence[bytes], first_index: int) -> List[int]:
        """Check one batch; returns the batch rows found bad."""
        batch = decode_batch(values)
        measured = [self._measure(rows, array) for rows, array in batch.groups]
        images = [(row, decode_problem(image)) for row, image in batch.encoded]
        return self._report(batch, measured, images, keys, first_index)

    def _report(self, batch: Batch, measured, images, keys, first_index: int) -> List[int]:
        add = self.collector.add
        bad: set = set()

        def report(row: int, field_name: str, problem: str, detail: str) -> None:
            bad.add(row)
            add(first_index + row, key_text(keys[row]), field_name, problem, detail)

        for row, why in batch.broken:
            report(row, "datum", "not_datum", f"not a Datum: {why}")
        for row in batch.empty:
            report(row, "data", "empty", "no data, float_data or encoded image")
        ok = np.ones(len(keys), bool)
        for row, _ in batch.broken:
            ok[row] = False
        self._check_shapes(batch, ok, report)
        summary = self.collector.summary
        for m in measured:
            summary.dtypes[m.dtype] += len(m.rows)
            if m.stats:
                summary.stats(m.field).update(*m.stats)
            for row, problem, detail in m.problems:
                report(row, m.field, problem, detail)
        for row, problem in images:
            summary.dtypes["encoded"] += 1
            if problem:
                report(row, "data", "decode", problem)
        self._check_labels(batch.labels[ok], np.flatnonzero(ok), report)
        summary.records += len(keys)
        shapes = batch.shapes[ok]
        if shapes.size:
            if (shapes == shapes[0]).all():  # the usual case, without a sort
                kinds, counts = shapes[:1], [len(shapes)]
            else:
                kinds, counts = np.unique(shapes, axis=0, return_counts=True)
            summary.shapes.update(
                {shape_text(k): int(c) for k, c in zip(kinds.tolist(), list(counts))}
            )
            if self.labels:
                summary.count_labels(batch.labels[ok])
        return sorted(bad)

    def _check_shapes(self, batch: Batch, ok: np.ndarray, report) -> None:
        shapes = batch.shapes
        ok = ok & ~self._impossible_shapes(shapes, report)
        rows = np.flatnonzero(ok)
        if rows.size and self.reference is None:
            self.reference = tuple(int(v) for v in shapes[rows[0]])
        reference = np.asarray(self.reference)
        source = "the mean file's" if self.expect.shape is not None else "the first record's"
        wrong = (shapes[rows] != reference).any(axis=1)
        for row in rows[wrong]:
            report(
                int(row),
                "shape",
                "shape",
                f"{shape_text(shapes[row])}, not {shape_text(reference)} ({source})",
            )
        crop = self.expect.crop_size
        if crop:
            for row in rows[~wrong & ((shapes[rows, 1] < crop) | (shapes[rows, 2] < crop))]:
                report(
                    int(row),
                    "shape",
                    "shape",
                    f"{shape_text(shapes[row])} is smaller than crop_size {crop}",
                )
        for group_rows, values in batch.groups:
            expected = np.prod(shapes[group_rows], axis=1)
            for row in group_rows[(expected != values.shape[1]) & ok[group_rows]]:
                c, h, w = (int(d) for d in shapes[row])
                report(
                    int(row),
                    "data",
                    "shape",
                    f"{values.shape[1]} values, but channels x height x width = {c * h * w}",
                )

    @staticmethod
    def _impossible_shapes(shapes: np.ndarray, report) -> np.ndarray:
        """Rows whose dimensions no Caffe blob can take (negative, or more than INT_MAX values:
        Caffe CHECK-fails on them), reported; the other shape checks skip them."""
        impossible = (shapes < 0).any(axis=1) | (shapes.astype(np.float64).prod(axis=1) > INT_MAX)
        for row in np.flatnonzero(impossible):
            c, h, w = (int(d) for d in shapes[row])
            why = (
                "a negative dimension"
                if min(c, h, w) < 0
                else f"{c * h * w} values, more than a Caffe blob holds (2^31 - 1)"
            )
            report(int(row), "shape", "shape", f"{c}x{h}x{w}: {why}")
        return impossible

    def _measure(self, rows: np.ndarray, values: np.ndarray) -> _Measured:
        """The numbers of one group of values, touching nothing shared."""
        kind = values.dtype
        name = "float_data" if kind.kind == "f" else "data"
        if kind.kind != "f":
            return _Measured(
                rows, name, str(kind), byte_stats(values, self.collector.summary.stats(name)), []
            )
        # One contiguous copy makes the all-finite check and the summary's min/max cheap; the
        # check's own sum gives the mean.
        dense = np.ascontiguousarray(values)
        total = finite_sum(dense)
        if total is not None:
            problems = (
                self._overflows(rows, dense)
                if self.expect.scale != 1.0 or self.expect.mean != 0.0
                else []
            )
            return _Measured(
                rows,
                name,
                str(kind),
                (float(dense.min()), float(dense.max()), total, dense.size),
                problems,
            )
        finite = dense[np.isfinite(dense)]
        stats = (
            (
                float(finite.min()),
                float(finite.max()),
                float(finite.sum(dtype=np.float64)),
                finite.size,
            )
            if finite.size
            else None
        )
        problems = []
        for i in np.flatnonzero(~np.isfinite(dense).all(axis=1)):
            s = finite_stats(dense[i])
            problems.append((int(rows[i]), problem_of(s), s.counts))
        return _Measured(rows, name, str(kind), stats, problems)

    def _overflows(self, rows: np.ndarray, dense: np.ndarray) -> List[tuple]:
        e = self.expect
        hi, lo = dense.max(axis=1).astype(np.float64), dense.min(axis=1).astype(np.float64)
        worst = np.maximum(np.abs(hi - e.mean), np.abs(lo - e.mean)) * abs(e.scale)
        return [
            (
                int(rows[i]),
                "overflow",
                f"(x - {e.mean:g}) * {e.scale:g} reaches {worst[i]:.3g}, past float32's range: inf in the net",
            )
            for i in np.flatnonzero(worst > FLT_MAX)
        ]

    def _check_labels(self, labels: np.ndarray, rows: np.ndarray, report) -> None:
        if self.expect.contracts is not None:
            top = self.expect.label_top
            for row, problem, why in contract_problems(labels, top, self.expect, self.collector):
                report(int(rows[row]), "label", problem, why)
            return
        if self.expect.class_labels is False:
            return
        if self.expect.ignore_label is not None:
            keep = labels != self.expect.ignore_label
            labels, rows = labels[keep], rows[keep]
        for row, label in zip(rows[labels < 0], labels[labels < 0]):
            report(int(row), "label", "label", f"label {int(label)} is negative")
        n = self.expect.num_classes
        if n is not None:
            high = labels >= n
            for row, label in zip(rows[high], labels[high]):
                report(
                    int(row), "label", "label", f"label {int(label)} >= {n}, the number of classes"
                )


def contract_problems(
    values: np.ndarray, blob: Optional[str], expect: Expect, collector: Collector
) -> List[Tuple[int, str, str]]:
    """(row, problem, why) of the rows of ``values`` (one record each) that break a
    contract the net holds on ``blob``, the first breach of each row; every contract's tally
    takes them in."""
    found: Dict[int, Tuple[str, str]] = {}
    for bound in (expect.contracts or {}).get(blob or "", ()):
        tally = collector.summary.tally(bound.layer, bound.blob)
        for row, why in check_rows(values, bound, tally):
            found.setdefault(row, (problem_name(bound), why))
    return [(row, *found[row]) for row in sorted(found)]


def byte_stats(values: np.ndarray, seen: FieldStats) -> tuple:
    """(min, max, sum, count) of uint8 values, for the summary.

    numpy 1.x finds the min or max of uint8 at about 2 GB/s, slower than reading the store, but
    compares them with a number ten times faster: an extreme that earlier batches reached is
    looked for again only when this batch goes past it, and after 0 and 255 never. (The
    returned min/max may be the earlier ones: the summary keeps the overall range.)
    """
    lo, hi = (None, None) if seen.min is None else (int(seen.min), int(seen.max))
    if lo is None or (lo > 0 and (values < lo).any()):
        lo = int(values.min())
    if hi is None or (hi < 255 and (values > hi).any()):
        hi = int(values.max())
    # Column sums in uint32 cannot overflow within a batch (at most 4096 rows of 255).
    total = int(values.sum(axis=0, dtype=np.uint32).sum(dtype=np.uint64))
    return float(lo), float(hi), float(total), values.size


def decode_problem(image: bytes) -> Optional[str]:
    """Why an encoded image does not decode, or None if it does."""
    Image = need("PIL.Image")
    try:
        with Image.open(io.BytesIO(image)) as img:
            img.load()
    except Exception as e:  # PIL raises many kinds for a broken file
        return f"the encoded image does not decode ({type(e).__name__}: {e})"
    return None
