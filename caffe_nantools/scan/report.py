"""What a scan found: one Finding per bad record, a summary per source, and the renderings
(a table for people, JSON and CSV for machines). Reports from shards merge into one."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from caffe_nantools import jsontext
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK
from caffe_nantools.scan.contracts import Breach, Tally


@dataclass(frozen=True)
class Finding:
    """One problem with one record.

    Attributes:
        source: the store, file or list scanned.
        index: 0-based position of the record in scan order (key order, file row order).
        key: LMDB/LevelDB key as text (bytes escaped), ``<file>:<row>`` for HDF5, the image
            path as listed for ImageData.
        field: what part of the record (``data``, ``label``, ``float_data``, a dataset...).
        problem: ``nan``, ``inf``, ``decode``, ``not_datum``, ``shape``, ``empty``, ``label``,
            ``missing``, ``rows``, ``overflow``, ``mean``, ``dataset`` (an HDF5 dataset that is
            not rows of numbers), ``unreadable`` (HDF5 rows in a damaged chunk), ``corrupt`` (a
            damaged LevelDB file: what its recovery drops), ``target`` (a value a loss
            layer's contract does not allow: a SigmoidCrossEntropyLoss target past [0, 1]),
            ``contract`` (a whole source that breaks a loss or metric layer's contract, index
            -1, its key the layer: labels 1..K, a 'void' label, 0..255 targets; the detail
            says the fix).
        detail: the numbers, in words.
    """

    source: str
    index: int
    key: str
    field: str
    problem: str
    detail: str


class FieldStats:
    """Running min/max/mean of the finite values of one field."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.min: Optional[float] = None
        self.max: Optional[float] = None

    def update(self, lo: float, hi: float, total: float, count: int) -> None:
        if count == 0:
            return
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.total += total
        self.count += count

    def add(self, values: np.ndarray) -> None:
        """Take the finite values of ``values`` into account."""
        if values.size == 0:
            return
        finite = values if values.dtype.kind in "ui" else values[np.isfinite(values)]
        if finite.size:
            self.update(
                float(finite.min()),
                float(finite.max()),
                float(finite.sum(dtype=np.float64)),
                int(finite.size),
            )

    @property
    def mean(self) -> Optional[float]:
        return self.total / self.count if self.count else None

    def to_dict(self) -> dict:
        return jsontext.fields_dict(
            self, names=("min", "max", "mean", "count"), keys={"count": "values"}
        )

    @classmethod
    def from_dict(cls, d: dict) -> FieldStats:
        stats = cls()
        if d["values"]:
            stats.update(d["min"], d["max"], d["mean"] * d["values"], d["values"])
        return stats


@dataclass
class Skipped:
    """Records of one kind that Caffe's data layer skips, so not bad and not findings: why it
    skips them, how many there are and the first (its index and key)."""

    why: str
    count: int = 0
    index: int = -1
    key: str = ""

    def add(self, count: int, index: int, key: str) -> None:
        if count and (self.index < 0 or index < self.index):
            self.index, self.key = index, key
        self.count += count

    def note(self, source: str, what: str) -> str:
        records = "record" if self.count == 1 else "records"
        return f"{source}: {self.count} {records} {what} (the first: key {self.key}); {self.why}"


@dataclass
class Summary:
    """Counts and ranges for one source. ``skipped``: per kind of record the data layer
    skips (``without boxes``), those records."""

    backend: str
    records: int = 0
    shapes: Counter = field(default_factory=Counter)
    dtypes: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    fields: Dict[str, FieldStats] = field(default_factory=dict)
    skipped: Dict[str, Skipped] = field(default_factory=dict)
    #: (layer, blob) -> what the records held of a blob a loss or metric layer has a contract
    #: on; kept in memory for the judgement of the whole source, not written to JSON.
    tallies: Dict[Tuple[str, str], Tally] = field(default_factory=dict)

    def tally(self, layer: str, blob: str) -> Tally:
        return self.tallies.setdefault((layer, blob), Tally())

    def skip(self, what: str, why: str, count: int, index: int, key: str) -> None:
        """``count`` records more of a kind the data layer skips, the first at ``index``."""
        self.skipped.setdefault(what, Skipped(why)).add(count, index, key)

    def skipped_notes(self, source: str) -> List[str]:
        return [skipped.note(source, what) for what, skipped in self.skipped.items()]

    def stats(self, name: str) -> FieldStats:
        return self.fields.setdefault(name, FieldStats())

    def count_labels(self, labels: np.ndarray) -> None:
        values, counts = np.unique(labels, return_counts=True)
        self.labels.update(dict(zip(values.tolist(), counts.tolist())))

    def merge(self, other: Summary) -> None:
        self.records += other.records
        self.shapes.update(other.shapes)
        self.dtypes.update(other.dtypes)
        self.labels.update(other.labels)
        for name, stats in other.fields.items():
            if stats.count:
                self.stats(name).update(stats.min, stats.max, stats.total, stats.count)
        for what, skipped in other.skipped.items():
            self.skip(what, skipped.why, skipped.count, skipped.index, skipped.key)
        for (layer, blob), tally in other.tallies.items():
            self.tally(layer, blob).merge(tally)

    def to_dict(self) -> dict:
        return jsontext.fields_dict(
            self,
            convert={"shapes": _sorted_counts, "dtypes": _sorted_counts, "labels": _label_counts},
            leave_out={"tallies"},
            unless_empty={"skipped"},
        )

    @classmethod
    def from_dict(cls, d: dict) -> Summary:
        summary = cls(
            d["backend"], _count(d["records"]), _counts(d["shapes"]), _counts(d["dtypes"])
        )
        summary.labels = _counts({_label_key(k): v for k, v in d["labels"].items()})
        summary.fields = {name: FieldStats.from_dict(s) for name, s in d["fields"].items()}
        for what, s in d.get("skipped", {}).items():
            summary.skip(what, str(s["why"]), _count(s["count"]), int(s["index"]), str(s["key"]))
        return summary


def _count(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"a count of {value!r}")
    return value


def _counts(d: dict) -> Counter:
    return Counter({key: _count(value) for key, value in d.items()})


def _label_key(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def _label_order(label) -> tuple:
    return (0, label) if isinstance(label, (int, float)) else (1, str(label))


def _sorted_counts(counts: Counter) -> dict:
    return dict(sorted(counts.items()))


def _label_counts(labels: Counter) -> dict:
    """The labels' counts, numbers first in their order, as JSON keys (text)."""
    return {str(k): v for k, v in sorted(labels.items(), key=lambda kv: _label_order(kv[0]))}


@dataclass
class ScanReport:
    """Everything a scan found. ``return_code``: 0 clean, 1 bad records found."""

    sources: List[str] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    summaries: Dict[str, Summary] = field(default_factory=dict)
    unlisted: int = 0  # findings beyond --max-findings, counted but not listed
    notes: List[str] = field(default_factory=list)
    shard: Optional[Tuple[int, int]] = None  # (K, N) of a --shard scan
    #: Each source's fingerprint (see :func:`caffe_nantools.scan.merging.fingerprint`); None
    #: for a report read from an older caffe-nantools, which wrote none.
    origin: Optional[Dict[str, str]] = field(default_factory=dict)
    #: The sources' systematic breaches of a loss or metric layer's contract (each is a
    #: ``contract`` finding too), with their fixes.
    breaches: List[Breach] = field(default_factory=list)

    @property
    def return_code(self) -> int:
        return EXIT_FINDINGS if self.findings or self.unlisted else EXIT_OK

    def sort(self) -> None:
        """Findings in source order, then record order."""
        order = {s: i for i, s in enumerate(self.sources)}
        self.findings.sort(key=lambda f: (order.get(f.source, len(order)), f.index))

    def to_dict(self) -> dict:
        return jsontext.fields_dict(
            self,
            keys={"summaries": "summary", "unlisted": "unlisted_findings"},
            convert={"shard": _shard_list},
            leave_out={"breaches"},  # each is a contract finding, its fix in the detail
        )

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict()) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> ScanReport:
        return cls(
            sources=list(d["sources"]),
            findings=[Finding(**f) for f in d["findings"]],
            summaries={source: Summary.from_dict(s) for source, s in d["summary"].items()},
            unlisted=_count(d.get("unlisted_findings", 0)),
            notes=list(d.get("notes", [])),
            shard=_shard(d.get("shard")),
            origin=_origin(d["origin"]) if "origin" in d else None,
        )

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["source", "index", "key", "field", "problem", "detail"])
        for f in self.findings:
            writer.writerow([f.source, f.index, f.key, f.field, f.problem, f.detail])
        return out.getvalue()

    def format_table(self) -> str:
        lines = []
        if self.findings:
            rows = [("index", "key", "field", "problem", "detail")]
            rows += [(str(f.index), f.key, f.field, f.problem, f.detail) for f in self.findings]
            widths = [min(max(len(r[i]) for r in rows), 40) for i in range(4)]
            by_source: Dict[str, List[Finding]] = {}
            for f in self.findings:
                by_source.setdefault(f.source, []).append(f)
            for source, findings in by_source.items():
                lines.append(f"{source}: {len(findings)} bad records")
                lines.append(
                    "  " + "  ".join(rows[0][i].ljust(widths[i]) for i in range(4)) + "  detail"
                )
                for f in findings:
                    cells = (str(f.index), f.key, f.field, f.problem)
                    lines.append(
                        "  "
                        + "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells))
                        + "  "
                        + f.detail
                    )
                lines.append("")
        if self.unlisted:
            lines.append(f"... and {self.unlisted} more findings, past the most to list")
        for source, s in self.summaries.items():
            lines.append(f"{source} ({s.backend}): {s.records} records")
            if s.shapes:
                lines.append(
                    "  shapes: " + ", ".join(f"{k} x{v}" for k, v in s.shapes.most_common(5))
                )
            if s.dtypes:
                lines.append(
                    "  dtypes: " + ", ".join(f"{k} x{v}" for k, v in s.dtypes.most_common())
                )
            if s.labels:
                shown = sorted(s.labels.items(), key=lambda kv: _label_order(kv[0]))
                text = ", ".join(f"{k}: {v}" for k, v in shown[:20])
                more = f", ... ({len(shown)} labels)" if len(shown) > 20 else ""
                lines.append(f"  labels: {text}{more}")
            for name, stats in s.fields.items():
                d = stats.to_dict()
                if d["values"]:
                    lines.append(
                        f"  {name}: min {d['min']:.6g}, max {d['max']:.6g}, mean {d['mean']:.6g}"
                    )
        for note in self.notes:
            lines.append(f"note: {note}")
        verdict = (
            f"{len(self.findings) + self.unlisted} bad records"
            if self.return_code
            else "no bad records"
        )
        lines.append(verdict)
        return "\n".join(lines) + "\n"


def _shard_list(shard: Optional[Tuple[int, int]]) -> Optional[List[int]]:
    return list(shard) if shard else None


def _shard(value) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    k, n = value
    if not (isinstance(k, int) and isinstance(n, int) and 0 <= k < n):
        raise ValueError(f"shard {value!r} is not K/N")
    return k, n


def _origin(value) -> Dict[str, str]:
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise ValueError(f"origin {value!r} is not sources and their fingerprints")
    return value


def merge_reports(reports: Iterable[ScanReport]) -> ScanReport:
    """One report from the reports of shards of the same scan (findings in index order); it is
    a whole scan's, of the sources of all the parts (unknown if a part's are)."""
    merged = ScanReport()
    reports = list(reports)
    # A part's notes on skipped records count its own records only: said again for the whole.
    derived = {
        note
        for report in reports
        for source, summary in report.summaries.items()
        for note in summary.skipped_notes(source)
    }
    for report in reports:
        if merged.origin is not None:
            merged.origin = None if report.origin is None else {**merged.origin, **report.origin}
        for source in report.sources:
            if source not in merged.sources:
                merged.sources.append(source)
        merged.findings.extend(report.findings)
        merged.breaches.extend(report.breaches)
        merged.unlisted += report.unlisted
        merged.notes.extend(n for n in report.notes if n not in merged.notes and n not in derived)
        for source, summary in report.summaries.items():
            if source in merged.summaries:
                merged.summaries[source].merge(summary)
            else:
                merged.summaries[source] = Summary.from_dict(summary.to_dict())
                merged.summaries[source].merge(Summary(summary.backend, tallies=summary.tallies))
    for source, summary in merged.summaries.items():
        merged.notes.extend(summary.skipped_notes(source))
    merged.sort()
    return merged
