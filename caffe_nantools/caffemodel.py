"""The params of a binary ``.caffemodel`` read from its protobuf wire bytes, without pycaffe:
what Caffe's ``CopyTrainedLayersFrom`` would copy, checked here first, because Caffe ends the
process (a failed CHECK) on a file it cannot parse or a param of another shape, and quietly
keeps the fillers' random values for a layer the file does not hold.

Field numbers (caffe.proto): NetParameter layer=100 (LayerParameter: name=1, blobs=7), layers=2
(V1LayerParameter: name=4, blobs=6); BlobProto num=1, channels=2, height=3, width=4 (the legacy
4-D shape), data=5 (packed float), shape=7 (BlobShape: dim=1, packed int64), double_data=8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from caffe_nantools.datum import NotADatum, read_varint, signed32, wire_fields

_LAYER, _V1_LAYER = 100, 2
_NAME = {_LAYER: 1, _V1_LAYER: 4}
_BLOBS = {_LAYER: 7, _V1_LAYER: 6}
_LEGACY = (1, 2, 3, 4)  # num, channels, height, width
_DATA, _SHAPE, _DOUBLE_DATA = 5, 7, 8


class NotACaffemodel(NotADatum):
    """Bytes that protobuf would not read as a NetParameter."""


@dataclass
class Param:
    """One param blob as the file holds it.

    ``shape`` is the BlobShape's dims, or None when the file gives the legacy num, channels,
    height and width (``legacy``), which Caffe compares with a blob's shape padded to 4-D.
    """

    shape: Optional[Tuple[int, ...]]
    legacy: Tuple[int, int, int, int]
    values: np.ndarray

    def fits(self, shape: Tuple[int, ...]) -> bool:
        """Whether Caffe would copy this into a blob of ``shape`` (Blob::ShapeEquals), and
        the file has one value for each of its elements."""
        if self.shape is None:
            fitting = len(shape) <= 4 and (1,) * (4 - len(shape)) + tuple(shape) == self.legacy
        else:
            fitting = self.shape == tuple(shape)
        return fitting and self.values.size == int(np.prod(shape, dtype=np.int64))

    def described(self) -> str:
        dims = self.shape if self.shape is not None else self.legacy
        return f"shape ({', '.join(map(str, dims))}) with {self.values.size} values"


def read_params(buf: bytes) -> Dict[str, List[Param]]:
    """Layer name -> its param blobs, for every layer of the file that has some (a later layer
    of the same name wins, as Caffe copies them in turn).

    Raises:
        NotACaffemodel: the bytes are not a NetParameter's wire format.
    """
    layers: Dict[str, List[Param]] = {}
    try:
        for number, wire, a, b in wire_fields(buf):
            if number not in _NAME or wire != 2:
                continue
            name, blobs = "", []
            for field, kind, c, d in wire_fields(buf, a, b):
                if field == _NAME[number] and kind == 2:
                    name = buf[c:d].decode("utf-8", "replace")
                elif field == _BLOBS[number] and kind == 2:
                    blobs.append(read_blob(buf, c, d))
            if blobs:
                layers[name] = blobs
    except NotADatum as e:
        raise NotACaffemodel(str(e)) from None
    return layers


def read_blob(buf: bytes, start: int, end: int) -> Param:
    """The BlobProto in ``buf[start:end]`` (a solver state's history blobs are ones too)."""
    shape: List[int] = []
    legacy = [0, 0, 0, 0]
    legacy_given = False  # proto2's has_num(): a num of 0 written out counts
    pieces: List[np.ndarray] = []
    doubles: List[np.ndarray] = []
    for field, kind, a, b in wire_fields(buf, start, end):
        if field in _LEGACY and kind == 0:
            legacy[field - 1] = signed32(a)
            legacy_given = True
        elif field == _SHAPE and kind == 2:
            shape = _dims(buf, a, b)
        elif field == _DATA and kind in (2, 5):
            pieces.append(np.frombuffer(buf, "<f4", (b - a) // 4, a))
        elif field == _DOUBLE_DATA and kind in (1, 2):
            doubles.append(np.frombuffer(buf, "<f8", (b - a) // 8, a))
    # Caffe reads double_data when there is any, else data.
    values = _joined(doubles).astype(np.float32) if doubles else _joined(pieces)
    return Param(None if legacy_given else tuple(shape), tuple(legacy), values)


def _joined(pieces: List[np.ndarray]) -> np.ndarray:
    if len(pieces) == 1:
        return pieces[0]  # a view of the file's bytes: no copy of a big layer
    return np.concatenate(pieces) if pieces else np.empty(0, np.float32)


def _dims(buf: bytes, start: int, end: int) -> List[int]:
    dims: List[int] = []
    for field, kind, a, b in wire_fields(buf, start, end):
        if field != 1:
            continue
        if kind == 0:
            dims.append(a)
        elif kind == 2:
            pos = a
            while pos < b:
                value, pos = read_varint(buf, pos)
                dims.append(value)
    return [d - (1 << 64) if d >= 1 << 63 else d for d in dims]
