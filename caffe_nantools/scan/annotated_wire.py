"""The SSD fork's ``AnnotatedDatum`` read from its wire bytes: one record at a time by
:func:`parse`, which says why a broken record is broken, or a batch at once by :func:`decode`.

:func:`decode` walks the fields of all the records of a batch side by side with numpy, one field
of every message per step, then their groups, annotations and boxes the same way: a batch costs a
few numpy calls per field of its longest message, whatever the records' layouts (field order,
boxes without some coordinates, fields of other forks), instead of Python work per record and
box. Groups whose annotations are all laid out as the fork's create_annoset writes them are
read at their offsets, without a walk. A record in which the walk meets anything unusual (a
broken or truncated field, a long varint, a known field of another wire type) is read by
:func:`parse` instead, which decides.

Field numbers (the fork's caffe.proto): AnnotatedDatum datum=1 (Datum), type=2 (enum, BBOX=0),
annotation_group=3; AnnotationGroup group_label=1, annotation=2; Annotation instance_id=1,
bbox=2; NormalizedBBox xmin=1, ymin=2, xmax=3, ymax=4 (floats), label=5, difficult=6, score=7,
size=8. Other fields (NVIDIA Caffe's record_id=4) are skipped, as protobuf skips them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.datum import NotADatum, signed32, wire_fields

Box = Tuple[float, float, float, float]


def _bbox(buf: bytes, a: int, b: int) -> Box:
    coords = [0.0, 0.0, 0.0, 0.0]  # protobuf's default for a field not written
    for number, wire, x, _ in wire_fields(buf, a, b):
        if 1 <= number <= 4:
            if wire != 5:
                raise NotADatum(f"NormalizedBBox field {number} has wire type {wire}")
            coords[number - 1] = struct.unpack_from("<f", buf, x)[0]
    return coords[0], coords[1], coords[2], coords[3]


def _group(buf: bytes, a: int, b: int) -> Tuple[int, List[Box]]:
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


def parse(buf: bytes) -> Tuple[Optional[bytes], Optional[int], List[Tuple[int, List[Box]]]]:
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


@dataclass
class Decoded:
    """A batch of AnnotatedDatums as arrays; groups and boxes in the order of their records, and
    within a record in their own.

    Attributes:
        kinds: per record its type, -1 where it has none.
        datum_rows, datums: the records that have a Datum, in order, and its bytes (memoryviews).
        broken: records that are not AnnotatedDatums, and why.
        group_rows, group_index, group_labels: per group its record, its place among the
            record's groups and its label.
        box_rows, box_groups, box_index, box_labels, coords: per box its record, the place of
            its group in the record, its place in the group, its group's label and its
            (xmin, ymin, xmax, ymax).
    """

    kinds: np.ndarray
    datum_rows: np.ndarray
    datums: List[memoryview]
    broken: Dict[int, str]
    group_rows: np.ndarray
    group_index: np.ndarray
    group_labels: np.ndarray
    box_rows: np.ndarray
    box_groups: np.ndarray
    box_index: np.ndarray
    box_labels: np.ndarray
    coords: np.ndarray


def _ints(n: int, fill: int = 0) -> np.ndarray:
    return np.full(n, fill, np.int64)


#: After the joined records: a varint read past the last one's end stays inside the buffer.
_PAD = bytes(16)
_MOST = 10  # bytes of a varint, as protobuf reads them
#: The size of a fixed field's value by wire type; past any message for those we do not walk
#: (groups, which neither Caffe nor protobuf 3 writes, and wire types that do not exist).
_WIRE_SIZE = np.array([0, 8, 0, 1 << 40, 1 << 40, 4, 1 << 40, 1 << 40])
_HEAD = 6  # a record's first bytes: the Datum's tag and length, as Caffe writes them first


def _varints(buf: np.ndarray, pos: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The varints at ``pos``: (their values' low 64 bits as int64, which keep the low 32 bits
    an int32 field needs; the positions after them; the indices of those past 10 bytes)."""
    b = buf[pos]
    after = pos + 1
    more = np.flatnonzero(b >= 0x80)
    if not more.size:  # the usual case: one byte each
        return b, after, more
    value = (b & 0x7F).astype(np.uint64)
    for shift in range(7, 7 * _MOST, 7):
        b = buf[after[more]]
        value[more] |= (b & 0x7F).astype(np.uint64) << np.uint64(shift)
        after[more] += 1
        more = more[b >= 0x80]
        if not more.size:
            break
    return value.view(np.int64), after, more


@dataclass
class _Step:
    """One field of each of some messages: their indices, field numbers and wire types; a
    varint field's value, and where the other fields' bytes start and end."""

    messages: np.ndarray
    number: np.ndarray
    wire: np.ndarray
    value: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def known(self, odd: np.ndarray, wires: Dict[int, int]) -> Dict[int, _Step]:
        """Per known field number (of ``wires``, with its wire type) that some message has in
        this step, those fields; a message with a known field of another wire type is set in
        ``odd`` (:func:`parse` says why)."""
        fields = {}
        for number, wire in wires.items():
            here = self.number == number
            count = np.count_nonzero(here)
            if not count:
                continue
            right = here & (self.wire == wire)
            if np.count_nonzero(right) != count:
                odd[self.messages[here & ~right]] = True
            fields[number] = self if np.count_nonzero(right) == len(right) else self.some(right)
        return fields

    def some(self, where: np.ndarray) -> _Step:
        columns = self.messages, self.number, self.wire, self.value, self.a, self.b
        return _Step(*(column[where] for column in columns))


def _steps(buf: np.ndarray, start: np.ndarray, end: np.ndarray, odd: np.ndarray) -> Iterator[_Step]:
    """The fields of the messages ``buf[start[i]:end[i]]`` side by side, one of each per step.
    A message whose next field is not plainly well formed is set in ``odd`` and not walked
    further (nor one that the caller sets in ``odd``)."""
    pos = start.copy()
    live = np.flatnonzero((pos < end) & ~odd)
    while live.size:
        stop = end[live]
        tag, after, long_tag = _varints(buf, pos[live])
        number, wire = tag >> 3, tag & 7
        value, past, long_value = _varints(buf, after)
        a = np.where(wire == 2, past, after)
        b = np.where(wire == 2, past + value, np.where(wire == 0, past, after + _WIRE_SIZE[wire]))
        bad = (number <= 0) | (b > stop)
        if long_tag.size or long_value.size or value.dtype != np.uint8:
            bad |= b < after  # a length past int64's range
            bad[long_tag] = True
            bad[long_value[(wire[long_value] == 0) | (wire[long_value] == 2)]] = True
        if bad.any():
            odd[live[bad]] = True
            ok = ~bad
            yield _Step(live[ok], number[ok], wire[ok], value[ok], a[ok], b[ok])
        else:
            yield _Step(live, number, wire, value, a, b)
        pos[live] = b
        live = live[(b < stop) & ~odd[live]]


def _int32(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.uint8:  # one-byte varints
        return values.astype(np.int64)
    return (values & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)


class _Children:
    """Length-delimited fields of one number gathered over the steps of a walk of ``parents``
    messages: in the order of their messages, and within a message in their own."""

    def __init__(self, parents: int) -> None:
        self.count = _ints(parents)
        self.parts: List[Tuple[np.ndarray, ...]] = []

    def add(self, step: _Step) -> None:
        parent = step.messages
        self.parts.append((parent, self.count[parent], step.a, step.b))
        self.count[parent] += 1

    def arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(parent, place among the parent's, start, end) of each."""
        if not self.parts:
            return _ints(0), _ints(0), _ints(0), _ints(0)
        columns = [np.concatenate(c) for c in zip(*self.parts)]
        order = np.argsort(columns[0], kind="stable")
        parent, place, a, b = (c[order] for c in columns)
        return parent, place, a, b


class _Pattern:
    """The first bytes of a message as protobuf writes it from Caffe's code, written as hex
    bytes, ``v`` for a one-byte varint and ``.`` for any byte: its fields are read without a
    walk, which goes on after them."""

    def __init__(self, text: str) -> None:
        items = text.split()
        self.length = len(items)
        self.exact = np.array([i for i, x in enumerate(items) if x not in "v."], np.int64)
        self.values = np.array([int(x, 16) for x in items if x not in "v."], np.uint8)
        self.varints = np.array([i for i, x in enumerate(items) if x == "v"], np.int64)

    def starts(self, buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Which of the messages ``buf[start:end]`` begin so."""
        ok = end - start >= self.length
        for offset, value in zip(self.exact.tolist(), self.values.tolist()):
            ok &= buf[start + offset] == value
        for offset in self.varints.tolist():
            ok &= buf[start + offset] < 0x80
        return ok


_TYPE = _Pattern("10 v")  # after the Datum
_LABEL = _Pattern("08 v")  # a group's label
_ANNOTATION = _Pattern("08 v 12 v")  # an instance_id, then a bbox of fewer than 128 bytes
_COORDINATES = "0d . . . . 15 . . . . 1d . . . . 25 . . . ."  # a box's four, as fixed32
_FOUR_FLOATS = _Pattern(_COORDINATES)
_FLOATS = np.array([1, 6, 11, 16])  # where their bytes start
_DIFFICULT = _Pattern("30 v")  # after them, the last field of a box as create_annoset writes it
#: An annotation as create_annoset writes it, with its tag and length: an instance_id, then a
#: bbox of the four coordinates and difficult. A group of these is read without a walk.
_BOX = _Pattern(f"12 1a 08 v 12 16 {_COORDINATES} 30 v")
_BOX_FLOATS = _FLOATS + 6  # the bbox's fields start after six bytes of tags and lengths


@dataclass
class _Boxed:
    """The groups made of a label and annotations as create_annoset writes them, all alike:
    which groups, and per box its group, its place in the group and where it starts."""

    groups: np.ndarray
    box_groups: np.ndarray
    box_index: np.ndarray
    starts: np.ndarray


def _boxed_groups(buf: np.ndarray, a: np.ndarray, b: np.ndarray, labelled: np.ndarray) -> _Boxed:
    """Of the groups ``buf[a:b]``, those that start with a one-byte label (``labelled``) and
    hold nothing but annotations of the :data:`_BOX` layout."""
    size = b - a - _LABEL.length
    boxed = labelled & (size % _BOX.length == 0)
    count = np.where(boxed, size // _BOX.length, 0)
    box_groups = np.repeat(np.arange(len(a)), count)
    box_index = np.arange(len(box_groups)) - np.repeat(np.cumsum(count) - count, count)
    starts = a[box_groups] + _LABEL.length + _BOX.length * box_index
    wrong = ~_BOX.starts(buf, starts, starts + _BOX.length)
    if wrong.any():  # a group with one box of another layout is walked, all its boxes
        boxed[box_groups[wrong]] = False
        keep = boxed[box_groups]
        box_groups, box_index, starts = box_groups[keep], box_index[keep], starts[keep]
    return _Boxed(boxed, box_groups, box_index, starts)


def _floats(joined: bytes) -> np.ndarray:
    """The float32 starting at each byte of ``joined``: a view, to gather floats at any offset."""
    return np.ndarray((len(joined) - 3,), "<f4", joined, strides=(1,))


def _spans(values: Sequence[bytes]) -> Tuple[np.ndarray, np.ndarray]:
    """Where the Datum of each record is when the record starts with it, as Caffe writes it:
    (start, end), -1 where it does not (the end may be past the record's)."""
    heads = [v[:_HEAD] for v in values]
    sizes = np.fromiter(map(len, heads), np.int64, len(heads))
    first = np.cumsum(sizes) - sizes
    buf = np.frombuffer(b"".join(heads + [_PAD]), np.uint8)
    length, after, long = _varints(buf, first + 1)
    a = after - first
    ok = (buf[first] == 0x0A) & (after <= first + sizes) & (length >= 0)
    ok[long] = False
    return np.where(ok, a, -1), np.where(ok, a + length, -1)


def decode(values: Sequence[bytes], *, walk: bool = True) -> Decoded:
    """Decode a batch of serialized AnnotatedDatums (bytes or memoryviews); never raises for a
    bad record, which is in :attr:`Decoded.broken`. ``walk=False`` reads every record alone,
    with :func:`parse`: what the walk must match."""
    batch = _join(values)
    odd = np.full(len(values), not walk)
    kinds, groups = _walk_records(batch, odd)
    group_rows, group_index, a, b = groups.arrays()
    group_labels, group_odd, boxes = _walk_groups(batch, a, b)
    odd[group_rows[group_odd]] = True
    box_groups, box_index, coords = boxes
    box_rows = group_rows[box_groups]
    group_columns = [group_rows, group_index, group_labels]
    box_columns = [box_rows, group_index[box_groups], box_index, group_labels[box_groups], coords]
    if odd.any():  # their groups and boxes come from parse
        group_columns = [c[~odd[group_rows]] for c in group_columns]
        box_columns = [c[~odd[box_rows]] for c in box_columns]
    datum_rows = np.flatnonzero(~odd & (batch.datum_a >= 0))
    datums = _datums(values, datum_rows, batch.datum_a[datum_rows], batch.datum_b[datum_rows])
    decoded = Decoded(kinds, datum_rows, datums, {}, *group_columns, *box_columns)
    _parse_odd(decoded, values, np.flatnonzero(odd).tolist())
    return decoded


@dataclass
class _Batch:
    """A batch's records joined for the walk: of each, what follows its leading Datum (all of
    a record without one), so that the images' bytes are not copied.

    Attributes:
        joined, buf: those bytes, and the same as an array.
        base: each record's offset in ``buf``, as if all of it were there.
        start, end: where the walk of each record starts (after its Datum) and ends.
        datum_a, datum_b: where each record's Datum is in the record, -1 where none is known.
    """

    joined: bytes
    buf: np.ndarray
    base: np.ndarray
    start: np.ndarray
    end: np.ndarray
    datum_a: np.ndarray
    datum_b: np.ndarray


def _join(values: Sequence[bytes]) -> _Batch:
    """The records as one :class:`_Batch`. The records' lengths come from the pieces taken, not
    from another pass over the records (each pass costs a cache miss a record)."""
    n = len(values)
    datum_a, datum_b = _spans(values)
    skip = np.maximum(datum_b, 0)
    tails = [v[x:] for v, x in zip(values, skip.tolist())]
    lengths = skip + np.fromiter(map(len, tails), np.int64, n)
    unsure = np.flatnonzero((lengths == skip) & (skip > 0))  # nothing after the Datum, or less
    for row in unsure.tolist():
        lengths[row] = len(values[row])
        if lengths[row] < skip[row]:  # a Datum past the record's end: walked, so parse says so
            datum_a[row], datum_b[row], skip[row] = -1, -1, 0
            tails[row] = values[row]
    joined = b"".join(tails + [_PAD])
    end = np.cumsum(lengths - skip)
    base = end - lengths
    buf = np.frombuffer(joined, np.uint8)
    return _Batch(joined, buf, base, base + skip, end, datum_a, datum_b)


def _walk_records(batch: _Batch, odd: np.ndarray) -> Tuple[np.ndarray, _Children]:
    """The walk of the records' fields: per record its type (-1 where it has none), and its
    groups; a Datum found on the way is set in ``batch``."""
    buf, base, start, end = batch.buf, batch.base, batch.start, batch.end
    usual = _TYPE.starts(buf, start, end)
    kinds = np.where(usual, buf[start + 1].astype(np.int64), -1)
    groups = _Children(len(start))
    for step in _steps(buf, start + _TYPE.length * usual, end, odd):
        known = step.known(odd, {1: 2, 2: 0, 3: 2})
        if 1 in known:
            rows = known[1].messages
            batch.datum_a[rows] = known[1].a - base[rows]
            batch.datum_b[rows] = known[1].b - base[rows]
        if 2 in known:
            kinds[known[2].messages] = _int32(known[2].value)
        if 3 in known:
            groups.add(known[3])
    return kinds, groups


def _walk_groups(
    batch: _Batch, a: np.ndarray, b: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The groups ``batch.buf[a:b]``: their labels, which of them :func:`parse` must read, and
    their boxes (per box its group, its place in the group and its coordinates), those of the
    groups read at their offsets among those of the walked ones."""
    buf = batch.buf
    odd = np.zeros(len(a), bool)
    usual = _LABEL.starts(buf, a, b)
    labels = np.where(usual, buf[a + 1].astype(np.int64), 0)
    boxed = _boxed_groups(buf, a, b, usual)
    annotations = _Children(len(a))
    for step in _steps(buf, np.where(boxed.groups, b, a + _LABEL.length * usual), b, odd):
        known = step.known(odd, {1: 0, 2: 2})
        if 1 in known:
            labels[known[1].messages] = _int32(known[1].value)
        if 2 in known:
            annotations.add(known[2])
    floats = _floats(batch.joined)
    box_groups, box_index, coords, box_odd = _walked_boxes(buf, floats, annotations)
    odd[box_groups[box_odd]] = True
    if boxed.groups.any():
        box_groups, box_index, coords = _in_order(
            (box_groups, boxed.box_groups),
            (box_index, boxed.box_index),
            (coords, floats[boxed.starts[:, None] + _BOX_FLOATS]),
        )
    return labels, odd, (box_groups, box_index, coords)


def _walked_boxes(
    buf: np.ndarray, floats: np.ndarray, annotations: _Children
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The boxes of the annotations found by the walk of their groups: per box its group, its
    place in the group, its coordinates, and whether :func:`parse` must read its record."""
    box_groups, box_index, a, b = annotations.arrays()
    box_odd = np.zeros(len(a), bool)
    coords = np.zeros((len(a), 4), np.float32)  # protobuf's default for a field not written
    if not len(a):
        return box_groups, box_index, coords, box_odd
    bbox_a, bbox_b = _ints(len(a), -1), _ints(len(a), -1)
    usual = _ANNOTATION.starts(buf, a, b)
    first = a + _ANNOTATION.length
    usual &= first + buf[first - 1] <= b
    bbox_a[usual], bbox_b[usual] = first[usual], first[usual] + buf[first[usual] - 1]
    for step in _steps(buf, np.where(usual, bbox_b, a), b, box_odd):
        here = (step.number == 2) & (step.wire == 2)
        again = step.messages[here & (bbox_a[step.messages] >= 0)]
        box_odd[again] = True  # protobuf reads the bbox it replaces as well: parse does that
        bbox_a[step.messages[here]], bbox_b[step.messages[here]] = step.a[here], step.b[here]
    usual = _FOUR_FLOATS.starts(buf, bbox_a, bbox_b) & (bbox_a >= 0)
    coords[usual] = floats[bbox_a[usual][:, None] + _FLOATS]
    rest = np.where(usual, bbox_a + _FOUR_FLOATS.length, bbox_a)
    done = usual & _DIFFICULT.starts(buf, rest, bbox_b) & (bbox_b - rest == _DIFFICULT.length)
    rest[done] = bbox_b[done]
    for step in _steps(buf, rest, bbox_b, box_odd):
        known = (step.number >= 1) & (step.number <= 4)
        wrong = known & (step.wire != 5)
        if wrong.any():
            box_odd[step.messages[wrong]] = True
        known &= ~wrong
        coords[step.messages[known], step.number[known] - 1] = floats[step.a[known]]
    return box_groups, box_index, coords, box_odd


def _datums(
    values: Sequence[bytes], rows: np.ndarray, a: np.ndarray, b: np.ndarray
) -> List[memoryview]:
    """The bytes ``a:b`` of the records ``rows``, as memoryviews (not copies)."""
    if not len(rows):
        return []
    if not isinstance(values[0], memoryview):
        values = [memoryview(v) for v in values]
    if len(rows) == len(values) and a.min() == a.max() and b.min() == b.max():
        x, y = int(a[0]), int(b[0])  # every record's Datum at the same place: as Caffe writes them
        return [v[x:y] for v in values]
    return [values[row][x:y] for row, x, y in zip(rows.tolist(), a.tolist(), b.tolist())]


def _parse_odd(decoded: Decoded, values: Sequence[bytes], rows: List[int]) -> None:
    """Read ``rows`` one at a time with :func:`parse` into ``decoded``, in record order."""
    datums: List[Tuple[int, memoryview]] = []
    groups: List[Tuple[int, int, int]] = []
    boxes: List[Tuple[int, int, int, int]] = []
    coords: List[Box] = []
    for row in rows:
        decoded.kinds[row] = -1
        try:
            datum, kind, record_groups = parse(bytes(values[row]))
        except NotADatum as e:
            decoded.broken[row] = str(e)
            continue
        if datum is not None:
            datums.append((row, memoryview(datum)))
        if kind is not None:
            decoded.kinds[row] = kind
        for g, (label, record_boxes) in enumerate(record_groups):
            groups.append((row, g, label))
            boxes += [(row, g, i, label) for i in range(len(record_boxes))]
            coords += record_boxes
    if datums:
        order = np.argsort(np.r_[decoded.datum_rows, [row for row, _ in datums]], kind="stable")
        every = decoded.datums + [datum for _, datum in datums]
        decoded.datums = [every[i] for i in order.tolist()]
        decoded.datum_rows = np.r_[decoded.datum_rows, [row for row, _ in datums]][order]
    if groups:
        rows_, index, labels = np.asarray(groups, np.int64).T
        decoded.group_rows, decoded.group_index, decoded.group_labels = _in_order(
            (decoded.group_rows, rows_),
            (decoded.group_index, index),
            (decoded.group_labels, labels),
        )
    if boxes:
        rows_, group, index, labels = np.asarray(boxes, np.int64).T
        (
            decoded.box_rows,
            decoded.box_groups,
            decoded.box_index,
            decoded.box_labels,
            decoded.coords,
        ) = _in_order(
            (decoded.box_rows, rows_),
            (decoded.box_groups, group),
            (decoded.box_index, index),
            (decoded.box_labels, labels),
            (decoded.coords, np.asarray(coords, np.float32).reshape(-1, 4)),
        )


def _in_order(*columns: Tuple[np.ndarray, np.ndarray]) -> List[np.ndarray]:
    """Pairs of columns, each pair of the walked records or groups and of those read otherwise
    (each side already in the order of its first column), joined in the order of the first
    column's values (their records or groups): within one, each side's order is kept."""
    if not len(columns[0][0]):
        return [other for _, other in columns]
    joined = [np.concatenate(pair) for pair in columns]
    order = np.argsort(joined[0], kind="stable")
    return [column[order] for column in joined]
