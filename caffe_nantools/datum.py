"""Caffe's ``Datum`` read straight from its protobuf wire bytes, a batch at a time.

Field numbers (caffe.proto): channels=1, height=2, width=3 (varints), data=4 (bytes), label=5
(varint), float_data=6 (repeated float; Caffe writes it unpacked, a 0x35 tag before each
4-byte value, but packed is accepted as protobuf does), encoded=7 (bool).

Parsing a Datum with the protobuf runtime and turning ``float_data`` into an array costs a
Python object per value. Here each record costs a few byte-string operations (done in C), and
the values of a whole batch land in one numpy array without a per-value step: records of the
same layout are viewed in place in the joined batch, the rest copied row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.errors import NanToolsError

_FLOAT_TAG = 0x35  # field 6, wire type 5 (fixed32)


class NotADatum(NanToolsError, ValueError):
    """Bytes that protobuf would not read as a Datum (or not as the one Caffe expects)."""


@dataclass(frozen=True)
class Layout:
    """Where a record's values are: ``kind`` is ``float`` (unpacked), ``packed`` (float32
    bytes), ``bytes`` (uint8 ``data``), ``encoded`` (an image file in ``data``) or ``empty``;
    ``start``/``count`` locate the values (for ``float``: the first tag and the number of
    5-byte groups)."""

    kind: str
    start: int
    count: int


@dataclass
class Header:
    channels: int = 0
    height: int = 0
    width: int = 0
    label: int = 0
    layout: Layout = Layout("empty", 0, 0)
    label_at: int = -1  # where the label's tag byte is, -1 if there is none


def read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """The protobuf varint at ``pos``: ``(value, position after it)``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise NotADatum("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise NotADatum("varint longer than 10 bytes")


def read_tag(buf: bytes, pos: int) -> Tuple[int, int, int]:
    """(field number, wire type, position after the tag) of the tag at ``pos``."""
    tag, pos = read_varint(buf, pos)
    if tag >> 3 == 0:
        raise NotADatum("field number 0")
    return tag >> 3, tag & 7, pos


def wire_fields(
    buf: bytes, start: int = 0, end: Optional[int] = None
) -> Iterator[Tuple[int, int, int, int]]:
    """The fields of the message in ``buf[start:end]`` as ``(number, wire type, a, b)``: for a
    varint, its value and 0; for the other wire types, where the field's bytes start and end
    (a nested message, a string, a packed run, a fixed32 or fixed64 value).

    Raises:
        NotADatum: a broken wire format (a field past the end, a group, an unknown wire type).
    """
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        number, wire, pos = read_tag(buf, pos)
        if wire == 0:
            value, pos = read_varint(buf, pos)
            yield number, 0, value, 0
            continue
        if wire == 2:
            length, pos = read_varint(buf, pos)
        elif wire in (1, 5):
            length = 8 if wire == 1 else 4
        else:
            raise NotADatum(f"wire type {wire}")
        if pos + length > end:
            raise NotADatum(f"field {number} runs past the end of the message")
        yield number, wire, pos, pos + length
        pos += length


def signed32(value: int) -> int:
    """An int32 field's varint as protobuf (and so Caffe) reads it: cut to 32 bits, signed."""
    value &= 0xFFFFFFFF  # negative numbers take 10 bytes, two's complement
    return value - (1 << 32) if value >= 1 << 31 else value


def with_label(record: bytes, label: int) -> bytes:
    """A serialized Datum with its label set to ``label``, in place of the old one (appended
    where it had none: Caffe's default label is 0)."""
    value = label & 0xFFFFFFFFFFFFFFFF  # a negative int32 is ten bytes, two's complement
    field = bytearray([0x28])  # field 5 (label), varint
    while True:
        byte = value & 0x7F
        value >>= 7
        field.append(byte | (0x80 if value else 0))
        if not value:
            break
    at = parse_header(record).label_at
    if at < 0:
        return bytes(record) + bytes(field)
    _, end = read_varint(record, at + 1)
    return bytes(record[:at]) + bytes(field) + bytes(record[end:])


def parse_header(buf: bytes) -> Header:
    """Read one record's fields, locating (not reading) its values.

    Raises:
        NotADatum: broken wire format, wrong wire types for Datum fields, or values in two
            places (both ``data`` and ``float_data``).
    """
    header = Header()
    layout: Optional[Layout] = None
    encoded = False
    pos, end = 0, len(buf)
    while pos < end:
        at = pos
        number, wire, pos = read_tag(buf, pos)
        if wire == 0:
            value, pos = read_varint(buf, pos)
            if number == 7:
                encoded = bool(value)
            else:
                _int32_field(header, number, value, at)
        elif wire == 2:
            layout, pos = _length_delimited(buf, number, pos, end, layout)
        elif wire == 5:
            if number != 6:
                if number in (1, 2, 3, 4, 5, 7):
                    raise NotADatum(f"field {number} has wire type 5")
                pos += 4
                continue
            floats = _one(layout, _float_run(buf, pos - 1, end))
            layout, pos = floats, floats.start + 5 * floats.count
        elif wire == 1:
            if number in (1, 2, 3, 4, 5, 6, 7):
                raise NotADatum(f"field {number} has wire type 1")
            pos += 8
        else:
            raise NotADatum(f"wire type {wire}")
        if pos > end:
            raise NotADatum("a field runs past the end of the record")
    if layout is not None and encoded:
        if layout.kind != "bytes":
            raise NotADatum("encoded is set but data holds no image")
        layout = Layout("encoded", layout.start, layout.count)
    header.layout = layout or Layout("empty", 0, 0)
    return header


def _int32_field(header: Header, number: int, value: int, at: int) -> None:
    """A varint field other than ``encoded``, its tag at ``at``: a wider varint is cut to 32
    bits, as protobuf (and so Caffe) reads an int32."""
    if number == 1:
        header.channels = signed32(value)
    elif number == 2:
        header.height = signed32(value)
    elif number == 3:
        header.width = signed32(value)
    elif number == 5:
        header.label = signed32(value)
        header.label_at = at
    elif number in (4, 6):
        raise NotADatum(f"field {number} has wire type 0")


def _length_delimited(
    buf: bytes, number: int, pos: int, end: int, layout: Optional[Layout]
) -> Tuple[Optional[Layout], int]:
    """Field ``number`` of wire type 2, its length at ``pos``: the values' layout (``layout``
    where the field holds none) and the position after the field."""
    length, pos = read_varint(buf, pos)
    if pos + length > end:
        raise NotADatum(f"field {number} runs past the end of the record")
    if number == 4 and length:
        layout = _one(layout, Layout("bytes", pos, length))
    elif number == 6 and length:
        if length % 4:
            raise NotADatum("packed float_data is not a whole number of floats")
        layout = _one(layout, Layout("packed", pos, length // 4))
    elif number in (1, 2, 3, 5, 7):
        raise NotADatum(f"field {number} has wire type 2")
    return layout, pos + length


def _float_run(buf: bytes, start: int, end: int) -> Layout:
    """Unpacked float_data from the tag at ``start``: a run of fields, every 5th byte the same
    tag while it lasts."""
    tags = buf[start:end:5]
    run = len(tags) - len(tags.lstrip(b"\x35"))
    if start + 5 * run > end:
        run -= 1
    if run == 0:
        raise NotADatum("float_data runs past the end of the record")
    return Layout("float", start, run)


def _one(previous: Optional[Layout], new: Layout) -> Layout:
    if previous is not None:
        raise NotADatum(f"values twice ({previous.kind} and {new.kind} data)")
    return new


@dataclass
class Batch:
    """A batch of records, decoded.

    Attributes:
        shapes: (n, 3) channels, height, width (0 for records that are not Datums).
        labels: (n,) labels.
        groups: arrays of values, each ``(rows, values)`` with ``rows`` the record indices
            (into this batch) and ``values`` a (len(rows), count) float32 or uint8 array.
        encoded: ``(row, image bytes)`` of records that hold an encoded image.
        broken: ``(row, why)`` of records that are not Datums.
        empty: rows with no values at all.
    """

    shapes: np.ndarray
    labels: np.ndarray
    groups: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    encoded: List[Tuple[int, bytes]] = field(default_factory=list)
    broken: List[Tuple[int, str]] = field(default_factory=list)
    empty: List[int] = field(default_factory=list)


def decode_batch(records: Sequence[bytes]) -> Batch:
    """Decode ``records`` (serialized Datums, as bytes or as memoryviews into an LMDB map);
    never raises for bad records, which are reported in :attr:`Batch.broken`."""
    n = len(records)
    batch = Batch(np.zeros((n, 3), np.int64), np.zeros(n, np.int64))
    template = _first_template(records)
    rest = range(n) if template is None else np.flatnonzero(~template.take_matching(records, batch))
    by_layout: Dict[Tuple[int, Layout], List[int]] = {}
    for i in rest:
        record = bytes(records[i])
        try:
            header = parse_header(record)
        except NotADatum as e:
            batch.broken.append((int(i), str(e)))
            continue
        _place(batch, int(i), record, header, by_layout)
    for (length, layout), rows in by_layout.items():
        values, tags_ok = _values(records, rows, length, layout)
        rows = np.asarray(rows)
        if not tags_ok.all():  # a tag inside the floats is not a float tag: read it alone
            for row in rows[~tags_ok]:
                _decode_alone(bytes(records[row]), int(row), batch)
            rows, values = rows[tags_ok], values[tags_ok]
        if rows.size:
            batch.groups.append((rows, values))
    return batch


def _first_template(records: Sequence[bytes], tries: int = 4) -> Optional[_Template]:
    for record in map(bytes, records[:tries]):
        try:
            template = _Template.of(record, parse_header(record))
        except NotADatum:
            continue
        if template is not None:
            return template
    return None


def _place(batch: Batch, row: int, record: bytes, header: Header, by_layout: dict) -> None:
    batch.shapes[row] = header.channels, header.height, header.width
    batch.labels[row] = header.label
    layout = header.layout
    if layout.kind == "empty":
        batch.empty.append(row)
    elif layout.kind == "encoded":
        batch.encoded.append((row, record[layout.start : layout.start + layout.count]))
    else:
        by_layout.setdefault((len(record), layout), []).append(row)


def _decode_alone(record: bytes, row: int, batch: Batch) -> None:
    try:
        header = parse_header(record)
    except NotADatum as e:
        batch.broken.append((row, str(e)))
        return
    alone: dict = {}
    _place(batch, row, record, header, alone)
    for (length, layout), _ in alone.items():
        values, _ok = _values([record], [0], length, layout)
        batch.groups.append((np.asarray([row]), values))


@dataclass
class _Template:
    """A record as Caffe lays it out (shape fields, a one-byte label, the values, maybe more),
    to recognize the next records of the same store by a few byte comparisons: they nearly
    always differ only in the label and the values."""

    fixed: List[Tuple[int, bytes]]  # (offset, bytes) that the records of this layout share
    label_at: int  # the label's one varint byte
    length: int
    header: Header

    @classmethod
    def of(cls, record: bytes, header: Header) -> Optional[_Template]:
        layout = header.layout
        if (
            header.label_at < 0
            or layout.kind not in ("float", "packed", "bytes")
            or record[header.label_at + 1] >= 0x80
        ):
            return None
        label = header.label_at + 1
        size = {"float": 5, "packed": 4, "bytes": 1}[layout.kind]
        # The label comes before float_data (field 6) and after data (field 4).
        holes = sorted([(label, label + 1), (layout.start, layout.start + size * layout.count)])
        fixed, pos = [], 0
        for a, b in holes + [(len(record), len(record))]:
            if a > pos:
                fixed.append((pos, record[pos:a]))
            pos = b
        return cls(fixed, label, len(record), header)

    def take_matching(self, records: Sequence[bytes], batch: Batch) -> np.ndarray:
        """Decode, all at once, the records laid out like this one (same length and bytes
        but for the label and the values); returns which records were taken."""
        taken = np.zeros(len(records), bool)
        lengths = np.fromiter(map(len, records), np.int64, len(records))
        rows = np.flatnonzero(lengths == self.length)
        if not rows.size:
            return taken
        joined = b"".join([records[i] for i in rows])
        table = np.frombuffer(joined, np.uint8).reshape(rows.size, self.length)
        layout, p = self.header.layout, self.label_at
        ok = table[:, p] < 0x80
        for offset, part in self.fixed:
            ok &= (table[:, offset : offset + len(part)] == np.frombuffer(part, np.uint8)).all(
                axis=1
            )
        if layout.kind == "float":
            ok &= (table[:, layout.start : layout.start + 5 * layout.count : 5] == _FLOAT_TAG).all(
                axis=1
            )
        values = _view(joined, rows.size, self.length, layout)
        if not ok.all():
            values, rows, labels = values[ok], rows[ok], table[ok, p]
        else:
            labels = table[:, p]
        h = self.header
        batch.shapes[rows] = h.channels, h.height, h.width
        batch.labels[rows] = labels
        batch.groups.append((rows, values))
        taken[rows] = True
        return taken


def _view(joined: bytes, n: int, length: int, layout: Layout) -> np.ndarray:
    """The values of ``n`` records of one ``length`` and ``layout``, joined, as (n, count)."""
    if layout.kind == "float":
        # Unaligned float32 view between the tags.
        return np.ndarray(
            (n, layout.count), "<f4", joined, offset=layout.start + 1, strides=(length, 5)
        )
    if layout.kind == "packed":
        return np.ndarray(
            (n, layout.count), "<f4", joined, offset=layout.start, strides=(length, 4)
        )
    return np.ndarray((n, layout.count), np.uint8, joined, offset=layout.start, strides=(length, 1))


def _values(
    records: Sequence[bytes], rows: Sequence[int], length: int, layout: Layout
) -> Tuple[np.ndarray, np.ndarray]:
    """The values of ``rows`` (records of one length and layout) as one 2-D array, and per row
    whether the float tags between the values are all there."""
    joined = b"".join(records[i] for i in rows)
    values = _view(joined, len(rows), length, layout)
    if layout.kind == "float":
        tags = np.ndarray(
            (len(rows), layout.count), np.uint8, joined, offset=layout.start, strides=(length, 5)
        )
        return values, (tags == _FLOAT_TAG).all(axis=1)
    return values, np.ones(len(rows), bool)
