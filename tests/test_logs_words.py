"""Bytes looked at eight at a time (logs/words.py): each word test says of every byte what a
byte-by-byte test says, and a gathered row is the text's bytes, zeros beyond its ends."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.logs import words


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=40),
    st.lists(st.integers(-30, 70), min_size=1, max_size=6),
    st.integers(1, 5),
)
def test_a_gathered_row_is_the_texts_bytes_with_zeros_beyond_its_ends(data, offsets, count):
    a = np.frombuffer(data, np.uint8)
    found = words.at(a, np.array(offsets, np.int64), count)
    for row, offset in zip(found, offsets):
        span = range(offset, offset + 8 * count)
        assert row.tobytes() == bytes(data[k] if 0 <= k < len(data) else 0 for k in span)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.integers(0, 255))
def test_each_bytes_flag_is_its_own_test(data, byte):
    pair = np.frombuffer(data, np.uint64).reshape(1, 2)
    digits = words.compact(words.digits(pair))[0]
    equal = words.compact(words.equal(pair, byte))[0]
    for k, b in enumerate(data):
        assert (digits >> k) & 1 == (48 <= b <= 57)
        assert (equal >> k) & 1 == (b == byte)


def test_flags_below_and_the_bit_tables():
    assert [bin(int(words.flags_below(np.array([k]))[0])).count("1") for k in range(-1, 10)] == [
        0,
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        8,
    ]
    for mask in (0, 1, 0b1010_0000, 0xFFFF, 0x8000):
        assert words.LOWEST[mask] == ((mask & -mask).bit_length() - 1 if mask else 16)
        assert words.HIGHEST[mask] == mask.bit_length() - 1
