"""The SSD fork's ``AnnotatedDatum`` records (weiliu89/caffe and the forks built on it), as
LMDB/LevelDB values: the embedded Datum is checked as a Datum is, and every box as SSD's box
encoding needs it (a zero-width box makes it take log(0)). The wire format is read by
:mod:`caffe_nantools.scan.annotated_wire`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from caffe_nantools.scan.annotated_wire import Decoded, decode
from caffe_nantools.scan.backends import RecordKind, register
from caffe_nantools.scan.checks import Collector, DatumChecker, Expect, key_text

BBOX = 0  # AnnotatedDatum.AnnotationType
_COORDS = ("xmin", "ymin", "xmax", "ymax")
SHOWN = 3  # boxes named in one finding; the rest are counted


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

    @property
    def reference(self) -> Optional[Tuple[int, ...]]:
        return self.datums.reference

    @reference.setter
    def reference(self, shape: Optional[Tuple[int, ...]]) -> None:
        self.datums.reference = shape

    def check(self, keys: Sequence[bytes], values: Sequence[bytes], first_index: int) -> List[int]:
        """Check one batch; returns the batch rows found bad."""
        decoded = decode(values)
        findings: Dict[Tuple[int, str, str], List[str]] = {
            (row, "annotated_datum", "not_datum"): [f"not an AnnotatedDatum: {why}"]
            for row, why in decoded.broken.items()
        }
        summary = self.collector.summary
        n = len(values)
        decoded_rows = np.ones(n, bool)
        decoded_rows[list(decoded.broken)] = False
        empty = decoded_rows.copy()
        empty[decoded.datum_rows] = False
        for row in np.flatnonzero(empty).tolist():
            findings[row, "datum", "empty"] = ["no Datum in the AnnotatedDatum: no image"]
        summary.records += n - len(decoded.datums)
        has_groups = np.bincount(decoded.group_rows, minlength=n) > 0
        self._check_types(decoded.kinds, decoded_rows, has_groups, findings)
        self._check_labels(decoded, findings)
        per_record = np.bincount(decoded.box_rows, minlength=n)
        boxes = per_record[decoded_rows]
        if boxes.size:
            summary.stats("boxes per record").update(
                float(boxes.min()), float(boxes.max()), float(boxes.sum()), boxes.size
            )
        no_boxes = np.flatnonzero(decoded_rows & (per_record == 0))
        if no_boxes.size:  # a note, not findings: SSD skips a record without boxes
            first = int(no_boxes[0])
            summary.skip(
                "without boxes",
                "SSD skips them, so they are not counted as bad",
                no_boxes.size,
                first_index + first,
                key_text(keys[first]),
            )
        bad: Set[int] = set()
        if decoded.datums:
            rows = decoded.datum_rows.tolist()
            self.datums.collector = _Rows(self.collector, first_index, rows)  # type: ignore[assignment]
            bad = {rows[r] for r in self.datums.check([keys[r] for r in rows], decoded.datums, 0)}
        if decoded.coords.size:
            self._check_boxes(decoded, findings)
            summary.count_labels(decoded.box_labels)
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

    def _check_labels(self, decoded: Decoded, findings) -> None:
        e = self.expect
        labels = decoded.group_labels
        bad = (labels == e.background_label) | (labels < 0)
        if e.num_classes is not None:
            bad |= labels >= e.num_classes
        for i in np.flatnonzero(bad):
            label = int(labels[i])
            if label == e.background_label:
                why = f"is the background label (background_label_id {e.background_label}): a box of no class"
            elif label < 0:
                why = "is negative"
            else:
                why = f">= {e.num_classes}, MultiBoxLoss's num_classes"
            findings.setdefault((int(decoded.group_rows[i]), "group_label", "label"), []).append(
                f"group {decoded.group_index[i]}: label {label} {why}"
            )

    def _check_boxes(self, decoded: Decoded, findings) -> None:
        rows, coords = decoded.box_rows, decoded.coords
        self.collector.summary.stats("bbox").add(coords)
        if (
            (coords >= 0).all()  # and not NaN
            and (coords <= 1).all()
            and (coords[:, 2] > coords[:, 0]).all()
            and (coords[:, 3] > coords[:, 1]).all()
        ):
            return  # the usual batch: no box to name

        def add(i: int, problem: str, detail: str) -> None:
            where = f"group {decoded.box_groups[i]} box {decoded.box_index[i]}"
            findings.setdefault((int(rows[i]), "bbox", problem), []).append(f"{where}: {detail}")

        finite = np.isfinite(coords)
        ok = finite.all(axis=1)
        for i in np.flatnonzero(~ok):
            named = ", ".join(f"{_COORDS[c]} {coords[i, c]}" for c in np.flatnonzero(~finite[i]))
            add(i, "nan" if np.isnan(coords[i]).any() else "inf", named)
        for lo, hi, side in ((0, 2, "width"), (1, 3, "height")):
            for i in np.flatnonzero(ok & (coords[:, hi] <= coords[:, lo])):
                a, b = coords[i, lo], coords[i, hi]
                why = (
                    f"zero {side}: box encoding takes log(0)"
                    if a == b
                    else f"{_COORDS[hi]} below {_COORDS[lo]}: log of a negative {side}"
                )
                add(i, "box", f"{_COORDS[lo]} {a:g}, {_COORDS[hi]} {b:g} ({why})")
        past = np.where(ok[:, None], np.maximum(coords - 1, -coords), 0)
        for i in np.flatnonzero((past > 0).any(axis=1)):
            c = int(np.argmax(past[i]))
            pixels = (
                " (pixel coordinates? NormalizedBBox holds fractions of the image)"
                if coords[i].max() > 2
                else ""
            )
            add(
                i,
                "box",
                f"{_COORDS[c]} {coords[i, c]:g} is outside [0, 1] by {past[i, c]:.3g}{pixels}",
            )


def _claims(record: bytes) -> bool:
    """An AnnotatedDatum as Caffe writes it starts with its Datum (field 1) or, without one,
    its groups (field 3), both length-delimited: wire types a Datum's fields 1 and 3 never have."""
    return record[:1] in (b"\x0a", b"\x1a")


# Its decoding is Python work over the batch: a read-ahead thread measured 0.65x of reading in turn.
register(RecordKind("AnnotatedDatum", _claims, AnnotatedChecker, read_ahead=False))
