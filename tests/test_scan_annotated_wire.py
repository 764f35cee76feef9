"""AnnotatedDatums decoded a batch at once (their fields walked side by side with numpy, the
layouts protobuf writes read without a walk) give exactly what reading each record alone gives,
on records of any layout: fields in any order, coordinates left out, fields of other forks,
repeated fields, long varints, known fields of another wire type, cut records, noise."""

import math
import struct
from typing import Optional
from unittest import mock

import numpy as np
from hypothesis import given, settings, strategies as st

from annotated import annotated, datum_message, pb
from caffe_nantools.scan import annotated_wire
from caffe_nantools.scan.annotated_wire import decode
from datums import datum, varint

COORDINATES = st.sampled_from(
    [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, -0.2, 250.0, math.nan, math.inf, -math.inf]
)
#: int32 values as written on the wire: negative ones take 10 bytes, 128 and more two or more.
INT32 = st.one_of(st.integers(0, 127), st.integers(-(2**31), 2**31 - 1))


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def nested(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


UNKNOWN_NUMBERS = st.integers(9, 5000)


@st.composite
def unknown_field(draw, numbers=UNKNOWN_NUMBERS):
    """A field of a number the message does not know, of any wire type protobuf skips."""
    number, wire = draw(numbers), draw(st.sampled_from([0, 1, 2, 5]))
    if wire == 0:
        return tag(number, 0) + varint(draw(st.integers(0, 2**64 - 1)))
    if wire == 2:
        return nested(number, draw(st.binary(max_size=20)))
    return tag(number, wire) + draw(st.binary(min_size=4 << (wire == 1), max_size=4 << (wire == 1)))


@st.composite
def fields(draw, usual, others):
    """``usual`` (field bytes in the order protobuf writes them) with maybe ``others`` among
    them, in that order or shuffled."""
    found = usual + draw(st.lists(others, max_size=2))
    return b"".join(draw(st.permutations(found)) if draw(st.booleans()) else found)


def coordinate(number: int, value: float) -> bytes:
    return tag(number, 5) + struct.pack("<f", value)


@st.composite
def bbox(draw):
    usual = [
        coordinate(number, draw(COORDINATES))
        for number in range(1, 5)
        if draw(st.integers(0, 9)) > 0  # now and then one left out
    ]
    if draw(st.booleans()):
        usual.append(tag(6, 0) + varint(draw(st.integers(0, 1))))  # difficult
    others = st.one_of(
        unknown_field(),
        st.builds(coordinate, st.integers(1, 4), COORDINATES),  # a coordinate again
        st.builds(lambda n: tag(n, 0) + b"\x01", st.integers(1, 4)),  # of another wire type
        st.builds(lambda v: tag(5, 0) + varint(v), INT32),  # label
        st.builds(lambda v: coordinate(7, v), COORDINATES),  # score
    )
    return draw(fields(usual, others))


@st.composite
def annotation(draw):
    usual = [tag(1, 0) + varint(draw(st.integers(0, 300)))] if draw(st.booleans()) else []
    if draw(st.integers(0, 9)):
        usual.append(nested(2, draw(bbox())))
    others = st.one_of(
        unknown_field(),
        st.builds(lambda box: nested(2, box), bbox()),  # a second bbox
        st.just(tag(2, 0) + b"\x05"),  # a bbox field of another wire type: skipped
    )
    return draw(fields(usual, others))


@st.composite
def group(draw):
    usual = [tag(1, 0) + varint(draw(INT32))] if draw(st.integers(0, 9)) else []
    usual += [nested(2, a) for a in draw(st.lists(annotation(), max_size=3))]
    others = st.one_of(
        unknown_field(),
        st.builds(lambda v: tag(1, 0) + varint(v), INT32),  # a label again
        st.sampled_from([tag(1, 2) + b"\x00", tag(2, 0) + b"\x01"]),  # of another wire type
    )
    return draw(fields(usual, others))


DATUM = datum(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), label=3)


@st.composite
def record(draw):
    usual = [nested(1, DATUM)] if draw(st.integers(0, 9)) else []
    if draw(st.integers(0, 9)):
        usual.append(tag(2, 0) + varint(draw(st.sampled_from([0, 0, 0, 1, 7, -1]))))
    usual += [nested(3, g) for g in draw(st.lists(group(), max_size=4))]
    others = st.one_of(
        unknown_field(st.integers(4, 5000)),  # NVIDIA Caffe's record_id is 4
        st.builds(lambda g: nested(3, g), group()),
        st.just(nested(1, datum(np.zeros((1, 1, 2), np.uint8)))),  # a Datum again
        st.sampled_from([tag(1, 0) + b"\x01", tag(2, 2) + b"\x00", tag(3, 5) + bytes(4)]),
    )
    value = draw(fields(usual, others))
    damage = draw(st.integers(0, 19))
    if damage == 0 and value:  # cut short
        value = value[: draw(st.integers(0, len(value) - 1))]
    elif damage == 1:  # noise after it
        value += draw(st.binary(min_size=1, max_size=8))
    elif damage == 2:
        value = draw(st.binary(max_size=30))
    return value


def assert_same(fast, alone):
    assert fast.broken == alone.broken
    assert fast.datum_rows.tolist() == alone.datum_rows.tolist()
    assert [bytes(d) for d in fast.datums] == [bytes(d) for d in alone.datums]
    for name in (
        "kinds",
        "group_rows",
        "group_index",
        "group_labels",
        "box_rows",
        "box_groups",
        "box_index",
        "box_labels",
        "coords",
    ):
        np.testing.assert_array_equal(getattr(fast, name), getattr(alone, name), err_msg=name)


@settings(max_examples=150, deadline=None)
@given(st.lists(record(), min_size=1, max_size=6))
def test_a_batch_decodes_as_its_records_read_one_at_a_time(values):
    assert_same(decode(values), decode(values, walk=False))


@settings(max_examples=30, deadline=None)
@given(st.lists(record(), min_size=1, max_size=6), st.booleans())
def test_records_read_from_memoryviews_decode_as_from_bytes(values, views):
    """LMDB hands the scan memoryviews into its map; LevelDB, bytes."""
    batch = [memoryview(v) for v in values] if views else values
    assert_same(decode(batch), decode(values, walk=False))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.tuples(
                    INT32,
                    st.lists(st.one_of(st.none(), st.tuples(*[COORDINATES] * 4)), max_size=4),
                ),
                max_size=4,
            ),
            st.sampled_from([0, None, 3]),
            st.one_of(st.none(), st.integers(0, 2**32 - 1)),
            st.booleans(),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_records_as_protobuf_writes_them_are_all_walked_not_read_alone(records):
    """Whatever their labels, boxes, ids and the fields of other forks, protobuf's records need
    no record-by-record reading: the speed of a scan does not depend on their layout."""
    values = [
        annotated(np.full((3, 2, 2), 7, np.uint8), groups, kind=kind, record_id=rid, extras=extras)
        for groups, kind, rid, extras in records
    ]

    def alone(buf):
        raise AssertionError(f"read alone: {bytes(buf)!r}")

    with mock.patch.object(annotated_wire, "parse", alone):
        fast = decode(values)
    assert_same(fast, decode(values, walk=False))
    assert not fast.broken


def test_the_usual_layout_is_read_at_its_offsets_in_a_batch_of_mixed_records():
    """Records of the layout read without a walk among records that are not: each gets its own
    values, at its own place in the batch."""
    message = pb["AnnotatedDatum"](type=0)
    message.datum.CopyFrom(datum_message(np.zeros((3, 2, 2), np.uint8)))
    box = message.annotation_group.add(group_label=2).annotation.add(instance_id=0).bbox
    box.xmin, box.ymin, box.xmax, box.ymax, box.difficult = 0.25, 0.5, 0.75, 1.0, True
    usual = message.SerializeToString()
    inside_the_datum = usual[:9]
    values = [b"\x00not one", usual, nested(3, tag(1, 0) + varint(300)), usual[:-1], usual]
    values.insert(2, inside_the_datum)
    decoded = decode(values)
    assert sorted(decoded.broken) == [0, 2, 4]
    assert "field 1 runs past the end" in decoded.broken[2]
    assert decoded.group_rows.tolist() == [1, 3, 5]
    assert decoded.group_labels.tolist() == [2, 300, 2]
    assert decoded.coords.tolist() == [[0.25, 0.5, 0.75, 1.0]] * 2
    assert decoded.datum_rows.tolist() == [1, 5]
    assert decoded.kinds.tolist() == [-1, 0, -1, -1, -1, 0]


def created_box(instance_id: int, coords, difficult: Optional[int] = 0) -> bytes:
    """An annotation field as create_annoset writes it: instance_id, then a bbox of the four
    coordinates and difficult (None: left out)."""
    box = b"".join(coordinate(n, v) for n, v in zip(range(1, 5), coords))
    if difficult is not None:
        box += tag(6, 0) + varint(difficult)
    return nested(2, tag(1, 0) + varint(instance_id) + nested(2, box))


#: Annotations that are not quite create_annoset's layout, of lengths that add up to a whole
#: number of its boxes in a group (28 bytes each) or are one.
NEAR_MISSES = [
    lambda c: created_box(200, c),  # a two-byte instance_id: 29 bytes
    lambda c: created_box(1, c, 300),  # a two-byte difficult: 29 bytes
    lambda c: created_box(1, c, None),  # no difficult: 26 bytes
    lambda c: created_box(1, c)[:-2] + tag(5, 0) + b"\x01",  # a label where difficult was: 28
    lambda c: created_box(1, c)[:-2] + tag(1, 0) + b"\x01",  # xmin again, as a varint: 28
    lambda c: created_box(1, c).replace(b"\x0d", b"\x15", 1),  # xmin written as ymin: 28
    lambda c: nested(9, bytes(26)),  # a field of another fork: 28
]


@st.composite
def created_group(draw):
    label = draw(st.one_of(st.integers(0, 127), st.integers(128, 2**20)))
    boxes = b""
    for _ in range(draw(st.integers(0, 4))):
        coords = draw(st.tuples(*[COORDINATES] * 4))
        if draw(st.integers(0, 5)):
            boxes += created_box(draw(st.integers(0, 127)), coords, draw(st.integers(0, 1)))
        else:
            boxes += draw(st.sampled_from(NEAR_MISSES))(coords)
    return nested(3, tag(1, 0) + varint(label) + boxes)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(created_group(), max_size=4), min_size=1, max_size=8),
    st.lists(st.one_of(st.just(0), st.just(0), st.integers(-40, -1))),
)
def test_groups_as_create_annoset_writes_them_decode_as_read_one_at_a_time(records, cuts):
    """Groups of create_annoset's boxes are read by their layout, without a walk; groups with
    a box that only nearly has it are walked: both as protobuf reads them."""
    values = [nested(1, DATUM) + tag(2, 0) + b"\x00" + b"".join(groups) for groups in records]
    values = [v[:cut] if cut else v for v, cut in zip(values, cuts)]  # some read alone
    assert_same(decode(values), decode(values, walk=False))


def test_only_groups_of_create_annoset_boxes_alone_are_read_by_their_layout():
    coords = (0.1, 0.2, 0.3, 0.4)
    created = [created_box(i, coords, i % 2) for i in range(3)]
    groups = [
        tag(1, 0) + varint(5) + b"".join(created),  # read by its layout
        tag(1, 0) + varint(5),  # no boxes: also
        tag(1, 0) + varint(300) + created[0],  # a two-byte label: walked
        tag(1, 0) + varint(5) + created[0] + NEAR_MISSES[0](coords),
        tag(1, 0) + varint(5) + b"".join(created) + tag(1, 0) + varint(6),  # a label again
        tag(1, 0) + varint(5) + created[1] + NEAR_MISSES[4](coords),  # 2 + 2 x 28 bytes
    ]
    buf = np.frombuffer(b"".join(groups) + bytes(16), np.uint8)
    ends = np.cumsum([len(g) for g in groups])
    starts = ends - [len(g) for g in groups]
    labelled = annotated_wire._LABEL.starts(buf, starts, ends)
    boxed = annotated_wire._boxed_groups(buf, starts, ends, labelled)
    assert boxed.groups.tolist() == [True, True, False, False, False, False]
    assert boxed.box_groups.tolist() == [0, 0, 0] and boxed.box_index.tolist() == [0, 1, 2]
