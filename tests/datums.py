"""Serialized Datums for tests, written byte by byte from the wire format (so the host tests
need no caffe_pb2; the image tests compare with caffe_pb2's own bytes)."""

import struct

import numpy as np


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | 0x80 if value else b)
        if not value:
            return bytes(out)


def datum(values=None, *, shape=None, label=0, encoded=None, packed=False, data=None) -> bytes:
    """A Datum like Caffe writes it: shape, data or float_data, label, encoded.

    ``values``: a float array (float_data) or uint8 array (data); ``data``: raw bytes.
    """
    out = bytearray()
    if values is not None:
        values = np.asarray(values)
        shape = shape or (values.shape if values.ndim == 3 else (1, 1, values.size))
    for number, value in zip((1, 2, 3), shape or (0, 0, 0)):
        out += varint(number << 3) + varint(value)
    if values is not None and values.dtype == np.uint8:
        data = values.tobytes()
    if data is not None:
        out += varint(4 << 3 | 2) + varint(len(data)) + data
    out += varint(5 << 3) + varint(label)
    if values is not None and values.dtype != np.uint8:
        floats = values.astype("<f4").reshape(-1)
        if packed:
            out += varint(6 << 3 | 2) + varint(4 * floats.size) + floats.tobytes()
        else:
            out += b"".join(b"\x35" + struct.pack("<f", v) for v in floats)
    if encoded is not None:
        out += varint(7 << 3) + varint(int(encoded))
    return bytes(out)


def mean_file(path, mean) -> None:
    """Write a (channels, height, width) mean as Caffe's BlobProto (num/channels/height/width
    fields, then the values packed)."""
    mean = np.asarray(mean, "<f4")
    out = bytearray()
    for number, value in zip((1, 2, 3, 4), (1,) + mean.shape):
        out += varint(number << 3) + varint(value)
    data = mean.tobytes()
    out += varint(5 << 3 | 2) + varint(len(data)) + data
    with open(path, "wb") as f:
        f.write(bytes(out))
