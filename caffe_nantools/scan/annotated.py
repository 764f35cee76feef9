"""The SSD fork's ``AnnotatedDatum`` records (weiliu89/caffe and the forks built on it), read
from their wire bytes as LMDB/LevelDB values: the embedded Datum is checked as a Datum is, and
every box as SSD's box encoding needs it (a zero-width box makes it take log(0)).

Field numbers (the fork's caffe.proto): AnnotatedDatum datum=1 (Datum), type=2 (enum, BBOX=0),
annotation_group=3; AnnotationGroup group_label=1, annotation=2; Annotation instance_id=1,
bbox=2; NormalizedBBox xmin=1, ymin=2, xmax=3, ymax=4 (floats), label=5, difficult=6, score=7,
size=8. Other fields (NVIDIA Caffe's record_id=4) are skipped, as protobuf skips them.
"""
from __future__ import annotations

import struct
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.datum import NotADatum, signed32, wire_fields
from caffe_nantools.scan.backends import RecordKind, register
from caffe_nantools.scan.checks import Collector, DatumChecker, Expect, key_text
from caffe_nantools.scan.report import ScanReport

BBOX = 0  # AnnotatedDatum.AnnotationType
_COORDS = ("xmin", "ymin", "xmax", "ymax")
#: A NormalizedBBox as Caffe writes the common one: four float tags and values, nothing between.
_FOUR_FLOATS = struct.Struct("<xfxfxfxf")
_FOUR_TAGS = (0x0D, 0x15, 0x1D, 0x25)
SHOWN = 3  # boxes named in one finding; the rest are counted


def _bbox(buf: bytes, a: int, b: int) -> Tuple[float, float, float, float]:
    if b - a >= 20 and all(buf[a + 5 * i] == tag for i, tag in enumerate(_FOUR_TAGS)):
        return _FOUR_FLOATS.unpack_from(buf, a)
    coords = [0.0, 0.0, 0.0, 0.0]  # protobuf's default for a field not written
    for number, wire, x, y in wire_fields(buf, a, b):
        if 1 <= number <= 4:
            if wire != 5:
                raise NotADatum(f"NormalizedBBox field {number} has wire type {wire}")
            coords[number - 1] = struct.unpack_from("<f", buf, x)[0]
    return coords[0], coords[1], coords[2], coords[3]


def _group(buf: bytes, a: int, b: int) -> Tuple[int, List[Tuple[float, float, float, float]]]:
    label, boxes = 0, []
    for number, wire, x, y in wire_fields(buf, a, b):
        if number == 1 and wire == 0:
            label = signed32(x)
        elif number == 2 and wire == 2:
            box = (0.0, 0.0, 0.0, 0.0)  # an Annotation without a bbox: protobuf's default one
            for n, w, c, d in wire_fields(buf, x, y):
                if n == 2 and w == 2:
                    box = _bbox(buf, c, d)
            boxes.append(box)
        elif number in (1, 2):
            raise NotADatum(f"AnnotationGroup field {number} has wire type {wire}")
    return label, boxes


def parse(buf: bytes) -> Tuple[Optional[bytes], Optional[int], List[Tuple[int, list]]]:
    """(the Datum's bytes or None, the type or None, [(group_label, boxes)]) of one record.

    Raises:
        NotADatum: not an AnnotatedDatum's wire format.
    """
    datum, kind, groups = None, None, []
    for number, wire, a, b in wire_fields(buf):
        if number == 1 and wire == 2:
            datum = buf[a:b]
        elif number == 2 and wire == 0:
            kind = signed32(a)
        elif number == 3 and wire == 2:
            groups.append(_group(buf, a, b))
        elif number in (1, 2, 3):
            raise NotADatum(f"field {number} has wire type {wire}")
    return datum, kind, groups


class _Rows:
    """A collector for the embedded Datums of some records of a batch: their findings at the
    records' own indices."""

    def __init__(self, collector: Collector, first_index: int, rows: Sequence[int]) -> None:
        self.collector, self.first_index, self.rows = collector, first_index, rows
        self.summary = collector.summary

    def add(self, index: int, key: str, field: str, problem: str, detail: str) -> None:
        self.collector.add(self.first_index + self.rows[index], key, field, problem, detail)


class AnnotatedChecker:
    """Checks batches of serialized AnnotatedDatums and keeps the summary."""

    def __init__(self, collector: Collector, expect: Expect) -> None:
        self.collector, self.expect = collector, expect
        # The Datum's own label is not what SSD learns from: the boxes' labels are.
        self.datums = DatumChecker(collector, replace(expect, class_labels=False), labels=False)
        self.no_boxes = 0
        self._first_empty = ""
        self._note: Optional[int] = None

    def check(self, keys: Sequence[bytes], values: Sequence[bytes], first_index: int) -> List[int]:
        """Check one batch; returns the batch rows found bad."""
        findings: Dict[Tuple[int, str, str], List[str]] = {}
        datum_rows, datums = [], []
        box_rows, where, coords, labels = [], [], [], []
        summary = self.collector.summary
        for row, value in enumerate(values):
            try:
                datum, kind, groups = parse(bytes(value))
            except NotADatum as e:
                findings[row, "annotated_datum", "not_datum"] = [f"not an AnnotatedDatum: {e}"]
                summary.records += 1
                continue
            if datum is None:
                findings[row, "datum", "empty"] = ["no Datum in the AnnotatedDatum: no image"]
                summary.records += 1
            else:
                datum_rows.append(row)
                datums.append(datum)
            self._check_type(row, kind, bool(groups), findings)
            boxes = 0
            for g, (label, group_boxes) in enumerate(groups):
                self._check_label(row, g, label, findings)
                for b, box in enumerate(group_boxes):
                    box_rows.append(row)
                    where.append(f"group {g} box {b}")
                    coords.append(box)
                    labels.append(label)
                boxes += len(group_boxes)
            summary.stats("boxes per record").update(boxes, boxes, boxes, 1)
            if not boxes:
                self._no_boxes(keys[row])
        if datum_rows:
            self.datums.collector = _Rows(self.collector, first_index, datum_rows)  # type: ignore[assignment]
            bad = {datum_rows[r] for r in self.datums.check([keys[r] for r in datum_rows], datums, 0)}
        else:
            bad = set()
        if coords:
            self._check_boxes(np.asarray(box_rows), where, np.asarray(coords, np.float32), findings)
            summary.count_labels(np.asarray(labels))
        for (row, field, problem), details in sorted(findings.items()):
            shown = "; ".join(details[:SHOWN]) + (f"; and {len(details) - SHOWN} more" if len(details) > SHOWN else "")
            self.collector.add(first_index + row, key_text(keys[row]), field, problem, shown)
            bad.add(row)
        return sorted(bad)

    def _check_type(self, row: int, kind: Optional[int], has_boxes: bool, findings) -> None:
        if self.expect.annotation_type is not None:
            return  # the layer's anno_type replaces the records'
        if kind is None and has_boxes:
            findings[row, "type", "annotation"] = ["boxes but no type: the AnnotatedData layer needs BBOX in every record "
                                                   "(or anno_type in annotated_data_param)"]
        elif kind is not None and kind != BBOX:
            findings[row, "type", "annotation"] = [f"annotation type {kind}: SSD knows only BBOX (0)"]

    def _check_label(self, row: int, group: int, label: int, findings) -> None:
        e = self.expect
        if label == e.background_label:
            why = f"is the background label (background_label_id {e.background_label}): a box of no class"
        elif label < 0:
            why = "is negative"
        elif e.num_classes is not None and label >= e.num_classes:
            why = f">= {e.num_classes}, MultiBoxLoss's num_classes"
        else:
            return
        findings.setdefault((row, "group_label", "label"), []).append(f"group {group}: label {label} {why}")

    def _check_boxes(self, rows: np.ndarray, where: List[str], coords: np.ndarray, findings) -> None:
        self.collector.summary.stats("bbox").add(coords)
        finite = np.isfinite(coords)
        for i in np.flatnonzero(~finite.all(axis=1)):
            named = ", ".join(f"{_COORDS[c]} {coords[i, c]}" for c in np.flatnonzero(~finite[i]))
            problem = "nan" if np.isnan(coords[i]).any() else "inf"
            findings.setdefault((int(rows[i]), "bbox", problem), []).append(f"{where[i]}: {named}")
        ok = finite.all(axis=1)
        for lo, hi, side in ((0, 2, "width"), (1, 3, "height")):
            for i in np.flatnonzero(ok & (coords[:, hi] <= coords[:, lo])):
                a, b = coords[i, lo], coords[i, hi]
                why = f"zero {side}: box encoding takes log(0)" if a == b else f"{_COORDS[hi]} below {_COORDS[lo]}: log of a negative {side}"
                findings.setdefault((int(rows[i]), "bbox", "box"), []).append(f"{where[i]}: {_COORDS[lo]} {a:g}, {_COORDS[hi]} {b:g} ({why})")
        past = np.where(ok[:, None], np.maximum(coords - 1, -coords), 0)
        for i in np.flatnonzero((past > 0).any(axis=1)):
            c = int(np.argmax(past[i]))
            pixels = " (pixel coordinates? NormalizedBBox holds fractions of the image)" if coords[i].max() > 2 else ""
            findings.setdefault((int(rows[i]), "bbox", "box"), []).append(
                f"{where[i]}: {_COORDS[c]} {coords[i, c]:g} is outside [0, 1] by {past[i, c]:.3g}{pixels}")

    def _no_boxes(self, key: bytes) -> None:
        """Said in a note, not a finding: SSD skips a record without boxes."""
        self.no_boxes += 1
        self._first_empty = self._first_empty or key_text(key)
        report: ScanReport = self.collector.report
        note = (f"{self.collector.source}: {self.no_boxes} records without boxes (the first: key {self._first_empty}); "
                "SSD skips them, so they are not counted as bad")
        if self._note is None:
            self._note = len(report.notes)
            report.notes.append(note)
        else:
            report.notes[self._note] = note


def _claims(record: bytes) -> bool:
    """An AnnotatedDatum as Caffe writes it starts with its Datum (field 1) or, without one,
    its groups (field 3), both length-delimited: wire types a Datum's fields 1 and 3 never have."""
    return record[:1] in (b"\x0a", b"\x1a")


register(RecordKind("AnnotatedDatum", _claims, AnnotatedChecker))
