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
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from caffe_nantools.datum import NotADatum, read_tag, read_varint, signed32, wire_fields
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


class _Template:
    """The bytes after the Datum of a record as Caffe lays them out, to recognize the next
    records with the same number of groups and boxes by a few numpy comparisons: they differ
    only in the coordinates, the labels and the instance ids."""

    def __init__(self, tail: bytes) -> None:
        """Raises ValueError (or NotADatum) where the layout is not one this takes (a label of
        more than one byte, a box not of four floats, other fields); such records are read one
        at a time."""
        self.length = len(tail)
        self.kind: Optional[int] = None
        self.variable: List[int] = []  # bytes that differ between records of this layout
        self.one_byte: List[int] = []  # varints that must stay one byte: labels, instance ids
        self.labels: List[int] = []  # per group, where its label is
        self.floats: List[int] = []  # per box, where its xmin's first byte is
        self.box_group: List[int] = []
        self.box_index: List[int] = []
        pos = 0
        while pos < self.length:
            number, wire, pos = read_tag(tail, pos)
            if number == 2 and wire == 0:
                self.kind, pos = read_varint(tail, pos)
            elif number == 3 and wire == 2:
                length, pos = read_varint(tail, pos)
                _within(pos + length, self.length)
                self._group(tail, pos, pos + length)
                pos += length
            else:
                raise ValueError("not a layout a template takes")
        fixed = np.ones(self.length, bool)
        fixed[self.variable] = False
        self.fixed = np.flatnonzero(fixed)
        self.fixed_bytes = np.frombuffer(tail, np.uint8)[self.fixed]
        self.float_bytes = (np.asarray(self.floats, np.int64)[:, None] + _FLOAT_BYTES).reshape(-1)

    def _one_byte(self, tail: bytes, pos: int) -> int:
        if pos >= len(tail) or tail[pos] >= 0x80:
            raise ValueError("a varint of more than one byte")
        self.variable.append(pos)
        self.one_byte.append(pos)
        return pos + 1

    def _group(self, tail: bytes, pos: int, end: int) -> None:
        group, boxes, label = len(self.labels), 0, None
        while pos < end:
            number, wire, pos = read_tag(tail, pos)
            if number == 1 and wire == 0 and label is None:
                label, pos = pos, self._one_byte(tail, pos)
            elif number == 2 and wire == 2:
                length, pos = read_varint(tail, pos)
                _within(pos + length, end)
                self._annotation(tail, pos, pos + length, group, boxes)
                boxes += 1
                pos += length
            else:
                raise ValueError("not a layout a template takes")
        if label is None:
            raise ValueError("a group without a label")
        self.labels.append(label)

    def _annotation(self, tail: bytes, pos: int, end: int, group: int, box: int) -> None:
        has_box = False
        while pos < end:
            number, wire, pos = read_tag(tail, pos)
            if number == 1 and wire == 0:
                pos = self._one_byte(tail, pos)
            elif number == 2 and wire == 2 and not has_box:
                length, pos = read_varint(tail, pos)
                _within(pos + length, end)
                if length < 20 or any(tail[pos + 5 * i] != tag for i, tag in enumerate(_FOUR_TAGS)):
                    raise ValueError("a box not of four floats")
                self.floats.append(pos + 1)
                self.variable += (pos + 1 + _FLOAT_BYTES).tolist()
                self.box_group.append(group)
                self.box_index.append(box)
                has_box = True
                pos += length
            else:
                raise ValueError("not a layout a template takes")
        if not has_box:
            raise ValueError("an annotation without a box")

    def take(self, tails: List[bytes]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Of ``tails`` (all of this length): which match, and their labels (rows, groups)
        and boxes (rows, boxes, 4)."""
        table = np.frombuffer(b"".join(tails), np.uint8).reshape(len(tails), self.length)
        ok = (table[:, self.fixed] == self.fixed_bytes).all(axis=1) & (
            table[:, self.one_byte] < 0x80
        ).all(axis=1)
        table = table[ok]
        coords = (
            np.ascontiguousarray(table[:, self.float_bytes])
            .view("<f4")
            .reshape(len(table), len(self.floats), 4)
        )
        return ok, table[:, self.labels].astype(np.int64), coords


def _within(stop: int, end: int) -> None:
    if stop > end:
        raise ValueError("a field runs past the end of its message")


_FLOAT_BYTES = np.array(
    [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18]
)  # four floats between tags
TEMPLATES = (
    64  # layouts remembered per store: records with more distinct ones are read one at a time
)


class _Rows:
    """A collector for the embedded Datums of some records of a batch: their findings at the
    records' own indices."""

    def __init__(self, collector: Collector, first_index: int, rows: Sequence[int]) -> None:
        self.collector, self.first_index, self.rows = collector, first_index, rows
        self.summary = collector.summary

    def add(self, index: int, key: str, field: str, problem: str, detail: str) -> None:
        self.collector.add(self.first_index + self.rows[index], key, field, problem, detail)


class _Decoded:
    """A batch of AnnotatedDatums, decoded into arrays: per record its type (-1: none), per
    group its record and label, per box its record, group, place and coordinates."""

    def __init__(self, n: int) -> None:
        self.kinds = np.full(n, -1, np.int64)
        self.datum_rows: List[int] = []
        self.datums: List[bytes] = []
        self.groups: List[Tuple[np.ndarray, np.ndarray]] = []  # (rows, labels)
        self.boxes: List[
            Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
        ] = []  # rows, group, index, label, coords

    def add_alone(self, row: int, datum: Optional[bytes], kind: Optional[int], groups) -> None:
        if datum is not None:
            self.datum_rows.append(row)
            self.datums.append(datum)
        self.kinds[row] = -1 if kind is None else kind
        self.groups.append(
            (np.full(len(groups), row), np.asarray([label for label, _ in groups], np.int64))
        )
        for g, (label, boxes) in enumerate(groups):
            if boxes:
                k = len(boxes)
                self.boxes.append(
                    (
                        np.full(k, row),
                        np.full(k, g),
                        np.arange(k),
                        np.full(k, label, np.int64),
                        np.asarray(boxes, np.float32).reshape(k, 4),
                    )
                )

    def add_matched(
        self, rows: np.ndarray, template: _Template, labels: np.ndarray, coords: np.ndarray
    ) -> None:
        self.kinds[rows] = -1 if template.kind is None else template.kind
        self.groups.append((np.repeat(rows, labels.shape[1]), labels.reshape(-1)))
        nbox = len(template.floats)
        if nbox:
            group = np.asarray(template.box_group)
            self.boxes.append(
                (
                    np.repeat(rows, nbox),
                    np.tile(group, len(rows)),
                    np.tile(template.box_index, len(rows)),
                    labels[:, group].reshape(-1),
                    coords.reshape(-1, 4),
                )
            )

    def arrays(self, parts, widths):
        if not parts:
            return [np.zeros((0,) + w, t) for w, t in widths]
        return [np.concatenate(column) for column in zip(*parts)]


def _datum_span(value: bytes) -> Optional[Tuple[int, int]]:
    """Where the Datum (the first field, as Caffe writes it) of a record is, or None."""
    if value[:1] != b"\x0a":
        return None
    try:
        length, pos = read_varint(value, 1)
    except NotADatum:
        return None
    return (pos, pos + length) if pos + length <= len(value) else None


class AnnotatedChecker:
    """Checks batches of serialized AnnotatedDatums and keeps the summary."""

    def __init__(self, collector: Collector, expect: Expect) -> None:
        self.collector, self.expect = collector, expect
        # The Datum's own label is not what SSD learns from: the boxes' labels are.
        self.datums = DatumChecker(collector, replace(expect, class_labels=False), labels=False)
        self.no_boxes = 0
        self._first_empty = ""
        self._note: Optional[int] = None
        self._templates: Dict[int, List[_Template]] = {}
        self._tried = 0  # templates made, or tried on records of no layout one takes

    def _decode(self, values: Sequence[bytes], findings) -> _Decoded:
        decoded = _Decoded(len(values))
        by_length: Dict[int, List[int]] = {}
        records = [bytes(v) for v in values]
        tails: List[bytes] = [b""] * len(records)
        spans: List[Optional[Tuple[int, int]]] = [None] * len(records)
        alone = []
        for row, record in enumerate(records):
            span = spans[row] = _datum_span(record)
            if span is None:
                alone.append(row)
                continue
            tails[row] = record[span[1] :]
            by_length.setdefault(len(tails[row]), []).append(row)
        for length, rows in by_length.items():
            rest, known, used = np.asarray(rows), self._templates.setdefault(length, []), 0
            while rest.size:
                if used == len(known):  # none took the rest: a new layout, from its first record
                    if self._tried >= TEMPLATES:
                        break
                    self._tried += 1
                    try:
                        known.append(_Template(tails[rest[0]]))
                    except (ValueError, NotADatum):
                        alone.append(int(rest[0]))
                        rest = rest[1:]
                        continue
                ok, labels, coords = known[used].take([tails[r] for r in rest])
                matched, rest = rest[ok], rest[~ok]
                decoded.add_matched(matched, known[used], labels, coords)
                for row in matched.tolist():
                    a, b = spans[row]
                    decoded.datum_rows.append(row)
                    decoded.datums.append(records[row][a:b])
                used += 1
            alone += rest.tolist()
        for row in sorted(alone):
            try:
                decoded.add_alone(row, *parse(records[row]))
            except NotADatum as e:
                findings[row, "annotated_datum", "not_datum"] = [f"not an AnnotatedDatum: {e}"]
        return decoded

    def check(self, keys: Sequence[bytes], values: Sequence[bytes], first_index: int) -> List[int]:
        """Check one batch; returns the batch rows found bad."""
        findings: Dict[Tuple[int, str, str], List[str]] = {}
        summary = self.collector.summary
        n = len(values)
        decoded = self._decode(values, findings)
        group_rows, group_labels = decoded.arrays(decoded.groups, [((), np.int64), ((), np.int64)])
        box_rows, box_group, box_index, box_labels, coords = decoded.arrays(
            decoded.boxes, [((), np.int64)] * 4 + [((4,), np.float32)]
        )
        decoded_rows = np.ones(n, bool)
        decoded_rows[[row for row, _, _ in findings]] = False
        for row in sorted(set(np.flatnonzero(decoded_rows).tolist()) - set(decoded.datum_rows)):
            findings[row, "datum", "empty"] = ["no Datum in the AnnotatedDatum: no image"]
        summary.records += n - len(decoded.datum_rows)
        self._check_types(
            decoded.kinds, decoded_rows, np.bincount(group_rows, minlength=n) > 0, findings
        )
        self._check_labels(group_rows, group_labels, findings)
        per_record = np.bincount(box_rows, minlength=n)[decoded_rows]
        if per_record.size:
            summary.stats("boxes per record").update(
                float(per_record.min()),
                float(per_record.max()),
                float(per_record.sum()),
                per_record.size,
            )
        for row in np.flatnonzero(decoded_rows & (np.bincount(box_rows, minlength=n) == 0)):
            self._no_boxes(keys[row])
        bad: Set[int] = set()
        if decoded.datum_rows:
            rows = decoded.datum_rows
            self.datums.collector = _Rows(self.collector, first_index, rows)  # type: ignore[assignment]
            bad = {rows[r] for r in self.datums.check([keys[r] for r in rows], decoded.datums, 0)}
        if coords.size:
            where = [f"group {g} box {b}" for g, b in zip(box_group.tolist(), box_index.tolist())]
            self._check_boxes(box_rows, where, coords, findings)
            summary.count_labels(box_labels)
        for (row, field, problem), details in sorted(findings.items()):
            shown = "; ".join(details[:SHOWN]) + (
                f"; and {len(details) - SHOWN} more" if len(details) > SHOWN else ""
            )
            self.collector.add(first_index + row, key_text(keys[row]), field, problem, shown)
            bad.add(row)
        return sorted(bad)

    def _check_types(
        self, kinds: np.ndarray, decoded: np.ndarray, has_groups: np.ndarray, findings
    ) -> None:
        if self.expect.annotation_type is not None:
            return  # the layer's anno_type replaces the records'
        for row in np.flatnonzero(decoded & (kinds == -1) & has_groups):
            findings[int(row), "type", "annotation"] = [
                "boxes but no type: the AnnotatedData layer needs BBOX in every "
                "record (or anno_type in annotated_data_param)"
            ]
        for row in np.flatnonzero(decoded & (kinds != -1) & (kinds != BBOX)):
            findings[int(row), "type", "annotation"] = [
                f"annotation type {kinds[row]}: SSD knows only BBOX (0)"
            ]

    def _check_labels(self, rows: np.ndarray, labels: np.ndarray, findings) -> None:
        e = self.expect
        bad = (labels == e.background_label) | (labels < 0)
        if e.num_classes is not None:
            bad |= labels >= e.num_classes
        first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1] if rows.size else rows
        group = (
            np.arange(rows.size) - np.repeat(first, np.diff(np.r_[first, rows.size]))
            if rows.size
            else rows
        )
        for i in np.flatnonzero(bad):
            label = int(labels[i])
            if label == e.background_label:
                why = f"is the background label (background_label_id {e.background_label}): a box of no class"
            elif label < 0:
                why = "is negative"
            else:
                why = f">= {e.num_classes}, MultiBoxLoss's num_classes"
            findings.setdefault((int(rows[i]), "group_label", "label"), []).append(
                f"group {group[i]}: label {label} {why}"
            )

    def _check_boxes(
        self, rows: np.ndarray, where: List[str], coords: np.ndarray, findings
    ) -> None:
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
                why = (
                    f"zero {side}: box encoding takes log(0)"
                    if a == b
                    else f"{_COORDS[hi]} below {_COORDS[lo]}: log of a negative {side}"
                )
                findings.setdefault((int(rows[i]), "bbox", "box"), []).append(
                    f"{where[i]}: {_COORDS[lo]} {a:g}, {_COORDS[hi]} {b:g} ({why})"
                )
        past = np.where(ok[:, None], np.maximum(coords - 1, -coords), 0)
        for i in np.flatnonzero((past > 0).any(axis=1)):
            c = int(np.argmax(past[i]))
            pixels = (
                " (pixel coordinates? NormalizedBBox holds fractions of the image)"
                if coords[i].max() > 2
                else ""
            )
            findings.setdefault((int(rows[i]), "bbox", "box"), []).append(
                f"{where[i]}: {_COORDS[c]} {coords[i, c]:g} is outside [0, 1] by {past[i, c]:.3g}{pixels}"
            )

    def _no_boxes(self, key: bytes) -> None:
        """Said in a note, not a finding: SSD skips a record without boxes."""
        self.no_boxes += 1
        self._first_empty = self._first_empty or key_text(key)
        report: ScanReport = self.collector.report
        note = (
            f"{self.collector.source}: {self.no_boxes} records without boxes (the first: key {self._first_empty}); "
            "SSD skips them, so they are not counted as bad"
        )
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
