"""The data sources of a net: its data layers for one phase, with what the rest of the net
expects of their records (number of classes, transform, mean file)."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np

from caffe_nantools.datum import read_varint, wire_fields
from caffe_nantools.files import read_text
from caffe_nantools.prototxt import (
    BOOL,
    FLOAT,
    INT32,
    POSITIVE,
    SOURCE_PARAMS,
    STRING,
    UINT32,
    Enum,
    Layer,
    Net,
    NetState,
)
from caffe_nantools.scan.checks import Expect, shape_text
from caffe_nantools.scan.contracts import bound_contracts
from caffe_nantools.scan.imagelist import ImageOptions
from caffe_nantools.scan.source import ScanError, Source

#: Layers whose label bottom must be a class index below the scores' num_output.
CLASSIFIERS = ("SoftmaxWithLoss", "Accuracy", "MultinomialLogisticLoss", "InfogainLoss")
BACKENDS = Enum("LEVELDB", "LMDB")
ANNOTATION_TYPES = Enum("BBOX")
#: The layers scan reads the source of, and where it is: Caffe's, and the SSD fork's
#: AnnotatedData (AnnotatedDatum records, read with a Data layer's data_param).
PARAMS = {**SOURCE_PARAMS, "AnnotatedData": "data_param"}


def resolve(path: str, net_path: str) -> str:
    """A path from a prototxt: Caffe reads it from the current folder; where nothing is there,
    the prototxt's own folder is tried."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    beside = os.path.join(os.path.dirname(os.path.abspath(net_path)), path)
    return beside if os.path.exists(beside) else path


def num_classes(net: Net, label: str, state: NetState) -> Tuple[Optional[int], Optional[int]]:
    """(number of classes, ignore_label) for a label blob, from the classifier that reads it:
    the num_output of the layer that makes its scores."""
    layers = net.active_layers(state)
    for layer in layers:
        if layer.type in CLASSIFIERS and len(layer.bottoms) >= 2 and layer.bottoms[1] == label:
            scores = layer.bottoms[0]
            loss_param = layer.node.find("loss_param")
            ignore = loss_param.field("ignore_label", INT32) if loss_param is not None else None
            producer = next(
                (
                    l
                    for l in reversed(layers[: layers.index(layer)])
                    if scores in l.tops and not l.in_place(scores)
                ),
                None,
            )
            if producer is None:
                return None, ignore
            for holder in ("inner_product_param", "convolution_param"):
                params = producer.node.find(holder)
                classes = params.field("num_output", UINT32) if params is not None else None
                if classes is not None:
                    return classes, ignore
            return None, ignore
    return None, None


def detection_classes(net: Net, label: str, state: NetState) -> Tuple[Optional[int], int]:
    """(num_classes, background_label_id) of the MultiBoxLoss that reads the boxes ``label``
    (None, SSD's default 0 where none does)."""
    for layer in net.active_layers(state):
        if layer.type == "MultiBoxLoss" and label in layer.bottoms:
            params = layer.node.find("multibox_loss_param")
            if params is not None:
                return params.field("num_classes", UINT32), params.field(
                    "background_label_id", UINT32, 0
                )
    return None, 0


def reads_classes(net: Net, label: str, state: NetState) -> bool:
    """Whether a classifier reads ``label`` (as its second bottom): else it is no class index
    (a regression target, a box, a weight)."""
    return any(
        layer.type in CLASSIFIERS and len(layer.bottoms) >= 2 and layer.bottoms[1] == label
        for layer in net.active_layers(state)
    )


def _transform(layer: Layer) -> Tuple[float, float, int, Optional[str]]:
    t = layer.node.find("transform_param")
    if t is None:
        return 1.0, 0.0, 0, None
    means = t.fields("mean_value", FLOAT)
    mean = max(means, key=abs) if means else 0.0  # the one that shifts values the most
    return (
        t.field("scale", FLOAT, 1.0),
        mean,
        t.field("crop_size", UINT32, 0),
        t.field("mean_file", STRING),
    )


def sources_from_net(
    path: str, phase: str = "TRAIN", net: Optional[Net] = None
) -> Tuple[List[Source], List[str]]:
    """The sources of the data layers active in ``phase`` of the net at ``path`` (``net``: that
    net, parsed already); returns (sources, notes on layers that cannot be scanned)."""
    if net is None:
        net = Net.parse(read_text(path), path)
    state = NetState(phase)
    sources, notes = [], []
    contracts = bound_contracts(net, state)
    for layer in net.active_layers(state):
        if layer.type not in PARAMS:
            if layer.is_data and layer.type not in ("Input", "DummyData", "MemoryData"):
                notes.append(f"layer {layer.name!r} ({layer.type}): not a source scan can read")
            continue
        label = layer.tops[1] if len(layer.tops) > 1 else None
        classes, ignore = num_classes(net, label, state) if label else (None, None)
        scale, mean, crop, mean_file = _transform(layer)
        params = layer.node.find(PARAMS[layer.type])
        where = f"{path}:{layer.node.line}:{layer.node.col}"
        if params is not None:
            params.field(
                "batch_size", POSITIVE
            )  # scan --mode net reads it too: an odd one is said here
        source_name = params.field("source", STRING) if params is not None else None
        if source_name is None:
            raise ScanError(f"{where}: layer {layer.name!r} has no {PARAMS[layer.type]}.source")
        source_path = resolve(source_name, path)
        expect = Expect(
            num_classes=classes,
            scale=scale,
            mean=mean,
            label_top=label,
            integer_labels=classes is not None,
            ignore_label=ignore,
            crop_size=crop,
            class_labels=bool(label) and reads_classes(net, label, state),
            contracts={top: tuple(contracts[top]) for top in layer.tops if top in contracts},
        )
        if layer.type == "AnnotatedData":
            expect = _detection_expect(net, layer, state, label, scale=scale, mean=mean, crop=crop)
        source = _layer_source(layer, source_path, expect, crop)
        if source.backend in ("lmdb", "leveldb") and os.path.isfile(source_path):
            raise ScanError(
                f"{where}: layer {layer.name!r} reads {source_path}, a file: Caffe opens an "
                f"{source.backend.upper()} as the folder that holds it (give the folder as source)"
            )
        source.mean_file = resolve(str(mean_file), path) if mean_file else None
        source.layer = layer.name
        sources.append(source)
    return sources, notes


def _detection_expect(
    net: Net, layer: Layer, state: NetState, label: Optional[str], *, scale, mean, crop
) -> Expect:
    """What an AnnotatedData layer's records must hold: labels among the classes of the net's
    detection layers, and the annotation type the layer declares."""
    classes, background = detection_classes(net, label, state) if label else (None, 0)
    annotated = layer.node.find("annotated_data_param")
    kind = annotated.field("anno_type", ANNOTATION_TYPES) if annotated is not None else None
    return Expect(
        num_classes=classes,
        scale=scale,
        mean=mean,
        crop_size=crop,
        background_label=background,
        annotation_type=None if kind is None else ANNOTATION_TYPES.names.index(kind),
    )


def _layer_source(layer: Layer, path: str, expect: Expect, crop) -> Source:
    """The source a data layer reads, with its backend and what that backend needs: an HDF5
    layer's datasets (its tops), an ImageData layer's decoding options."""
    params = layer.node.find(PARAMS[layer.type])
    if layer.type in ("Data", "AnnotatedData"):
        backend = params.field("backend", BACKENDS, "LEVELDB").lower()  # Caffe's default is LevelDB
        return Source(path, backend, expect)
    if layer.type == "HDF5Data":
        return Source(path, "hdf5", expect, datasets=tuple(layer.tops))
    images = ImageOptions(
        params.field("root_folder", STRING, ""),
        params.field("new_height", UINT32, 0),
        params.field("new_width", UINT32, 0),
        params.field("is_color", BOOL, True),
        crop,
    )
    return Source(path, "imagelist", expect, options=images)


def read_mean(path: str) -> np.ndarray:
    """A mean file (BlobProto binaryproto) as a (channels, height, width) float32 array.

    Raises:
        ValueError: not a BlobProto, or its data does not fill its shape.
    """
    with open(path, "rb") as f:
        buf = f.read()
    legacy = [0, 0, 0, 0]
    dims: List[int] = []
    data = b""
    for number, wire, a, b in wire_fields(buf):
        if wire == 0 and 1 <= number <= 4:
            legacy[number - 1] = a
        elif number == 5 and wire in (2, 5):  # packed, or one float
            data += buf[a:b]
        elif number == 7 and wire == 2:
            dims = _dims(buf[a:b])
    shape = dims or [d for d in legacy if d] or [0]
    values = np.frombuffer(data, "<f4")
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{values.size} values for shape {shape_text(shape)}")
    shape = shape[-3:] if len(shape) > 3 else shape
    return values.reshape(shape)


def _dims(chunk: bytes) -> List[int]:
    dims, pos = [], 0
    while pos < len(chunk):
        tag, pos = read_varint(chunk, pos)
        if tag >> 3 != 1:
            raise ValueError("BlobShape holds something but dims")
        if tag & 7 == 2:
            length, pos = read_varint(chunk, pos)
            end = pos + length
            while pos < end:
                value, pos = read_varint(chunk, pos)
                dims.append(value)
        else:
            value, pos = read_varint(chunk, pos)
            dims.append(value)
    return dims
