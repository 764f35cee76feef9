"""Datum decoding from wire bytes, against values written field by field (and, in the image,
against caffe_pb2)."""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from caffe_nantools.datum import NotADatum, decode_batch, parse_header
from datums import datum, varint


def values_of(batch, row):
    for rows, values in batch.groups:
        hit = np.flatnonzero(rows == row)
        if hit.size:
            return values[hit[0]]
    return None


def test_float_datums_of_one_layout_decode_in_one_group():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 4, 5)).astype(np.float32) for _ in range(6)]
    records = [datum(x, label=i) for i, x in enumerate(xs)]
    batch = decode_batch(records)
    assert len(batch.groups) == 1 and batch.broken == [] and batch.empty == []
    rows, values = batch.groups[0]
    assert rows.tolist() == list(range(6))
    assert np.array_equal(values, np.stack([x.reshape(-1) for x in xs]))
    assert batch.labels.tolist() == list(range(6))
    assert batch.shapes.tolist() == [[3, 4, 5]] * 6


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_records_of_the_same_length_but_another_shape_keep_their_shape(dtype):
    # uint8 data comes before the label (fields 4, 5), float_data after it (6): either way, a
    # record with other shape fields is not read as the first record's layout.
    x = np.arange(12).astype(dtype)
    records = [datum(x.reshape(3, 2, 2), label=i) for i in range(4)]
    records[2] = datum(x.reshape(3, 4, 1), label=2)
    batch = decode_batch(records)
    assert batch.shapes.tolist() == [[3, 2, 2], [3, 2, 2], [3, 4, 1], [3, 2, 2]]
    assert batch.labels.tolist() == [0, 1, 2, 3]
    assert all(np.array_equal(values_of(batch, row), x) for row in range(4))


def test_mixed_labels_lengths_and_kinds():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 3)).astype(np.float32)
    img = rng.integers(0, 255, (3, 2, 2), dtype=np.uint8)
    records = [
        datum(x, label=1),
        datum(x, label=300),
        datum(x, label=-2),
        datum(img, label=4),
        datum(x, label=5, packed=True),
        datum(data=b"\xff\xd8jpeg", shape=(3, 8, 8), encoded=True),
        datum(shape=(3, 2, 2), label=7),
        datum(x * 2, label=9, encoded=False),
    ]
    batch = decode_batch(records)
    assert batch.labels.tolist() == [1, 300, -2, 4, 5, 0, 7, 9]
    for row in (0, 1, 2, 4):
        assert np.array_equal(values_of(batch, row), x.reshape(-1)), row
    assert np.array_equal(values_of(batch, 3), img.reshape(-1))
    assert values_of(batch, 3).dtype == np.uint8
    assert np.array_equal(values_of(batch, 7), 2 * x.reshape(-1))
    assert batch.encoded == [(5, b"\xff\xd8jpeg")]
    assert batch.empty == [6]


def test_nan_and_inf_values_come_through():
    x = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32).reshape(1, 1, 4)
    batch = decode_batch([datum(x), datum(x)])
    values = batch.groups[0][1]
    assert (
        np.isnan(values[:, 0]).all()
        and np.isposinf(values[:, 1]).all()
        and np.isneginf(values[:, 2]).all()
    )


@pytest.mark.parametrize(
    "record, why",
    [
        (b"\x08", "truncated varint"),
        (b"\x0f\x01", "wire type 7"),
        (b"\x22\x10abc", "field 4 runs past the end"),
        (b"\x32\x03abc", "packed float_data is not a whole number of floats"),
        (b"\x35\x00\x00", "float_data runs past the end"),
        (b"\x22\x01a\x35\x00\x00\x00\x00", "values twice (bytes and float data)"),
        (b"\x0a\x01x", "field 1 has wire type 2"),
        (b'{"json": 1}', "wire type 3"),
        (b"\x38\x01\x35\x00\x00\x80\x3f", "encoded is set but data holds no image"),
        (b"\x00", "field number 0"),
    ],
)
def test_records_that_are_not_datums_say_why(record, why):
    with pytest.raises(NotADatum, match=re.escape(why)):
        parse_header(record)
    batch = decode_batch([datum(np.ones((1, 1, 2), np.float32)), record])
    assert batch.broken[0][0] == 1 and why in batch.broken[0][1]


def test_a_corrupt_tag_inside_the_floats_is_no_longer_the_same_layout():
    x = np.ones((1, 1, 4), np.float32)
    good = datum(x, label=1)
    bad = bytearray(good)
    bad[-5] = 0x36  # the last value's tag: now a different field and wire type
    batch = decode_batch([good, bytes(bad)])
    assert [b[0] for b in batch.broken] == [1]


def test_unknown_fields_are_skipped_like_protobuf_does():
    x = np.ones((1, 1, 2), np.float32)
    record = datum(x) + varint(9 << 3) + varint(5) + varint(10 << 3 | 2) + varint(2) + b"zz"
    header = parse_header(record)
    assert header.layout.kind == "float" and header.layout.count == 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["float", "packed", "bytes"]),
            st.integers(-(2**31), 2**31 - 1),
            st.integers(1, 3),
            st.integers(1, 3),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_batch_decodes_to_what_was_written(specs):
    rng = np.random.default_rng(len(specs))
    records, expected = [], []
    for kind, label, c, h, w in specs:
        if kind == "bytes":
            x = rng.integers(0, 256, (c, h, w), dtype=np.uint8)
        else:
            x = rng.standard_normal((c, h, w)).astype(np.float32)
        records.append(datum(x, label=label, packed=kind == "packed"))
        expected.append((x, label))
    batch = decode_batch(records)
    assert batch.broken == []
    for row, (x, label) in enumerate(expected):
        assert batch.labels[row] == label
        assert batch.shapes[row].tolist() == list(x.shape)
        assert np.array_equal(values_of(batch, row), x.reshape(-1))


def test_same_bytes_as_caffe_pb2_writes(caffe):
    from caffe.proto import caffe_pb2

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    d = caffe_pb2.Datum(channels=2, height=3, width=4, label=77)
    d.float_data.extend(x.reshape(-1).tolist())
    assert d.SerializeToString() == datum(x, label=77)
    img = rng.integers(0, 256, (3, 2, 2), dtype=np.uint8)
    d = caffe_pb2.Datum(channels=3, height=2, width=2, label=-5, data=img.tobytes())
    assert d.SerializeToString() == datum(img, label=-5)
    batch = decode_batch([d.SerializeToString()])
    assert batch.labels.tolist() == [-5] and np.array_equal(values_of(batch, 0), img.reshape(-1))
