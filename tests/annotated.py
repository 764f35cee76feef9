"""The SSD fork's AnnotatedDatum (and NVIDIA Caffe's Datum) as protobuf messages built here from
the forks' caffe.proto field numbers, so that tests write records with protobuf itself, not
with the decoder under test.

weiliu89/caffe: Datum channels=1 height=2 width=3 data=4 label=5 float_data=6 encoded=7;
NormalizedBBox xmin=1 ymin=2 xmax=3 ymax=4 label=5 difficult=6 score=7 size=8; Annotation
instance_id=1 bbox=2; AnnotationGroup group_label=1 annotation=2; AnnotatedDatum datum=1
type=2 (enum AnnotationType BBOX=0) annotation_group=3. NVIDIA Caffe adds record_id to Datum
(8) and to AnnotatedDatum (4); ``Extras`` stands for fields no caffe.proto here knows.
"""

from needs import need

need("google.protobuf", "protobuf")
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
MESSAGES = {
    "Datum": [
        ("channels", 1, F.TYPE_INT32),
        ("height", 2, F.TYPE_INT32),
        ("width", 3, F.TYPE_INT32),
        ("data", 4, F.TYPE_BYTES),
        ("label", 5, F.TYPE_INT32),
        ("float_data", 6, F.TYPE_FLOAT, REPEATED),
        ("encoded", 7, F.TYPE_BOOL),
        ("record_id", 8, F.TYPE_UINT32),
    ],
    "NormalizedBBox": [
        ("xmin", 1, F.TYPE_FLOAT),
        ("ymin", 2, F.TYPE_FLOAT),
        ("xmax", 3, F.TYPE_FLOAT),
        ("ymax", 4, F.TYPE_FLOAT),
        ("label", 5, F.TYPE_INT32),
        ("difficult", 6, F.TYPE_BOOL),
        ("score", 7, F.TYPE_FLOAT),
        ("size", 8, F.TYPE_FLOAT),
    ],
    "Annotation": [("instance_id", 1, F.TYPE_INT32), ("bbox", 2, ".ssd.NormalizedBBox")],
    "AnnotationGroup": [
        ("group_label", 1, F.TYPE_INT32),
        ("annotation", 2, ".ssd.Annotation", REPEATED),
    ],
    "AnnotatedDatum": [
        ("datum", 1, ".ssd.Datum"),
        ("type", 2, ".ssd.AnnotatedDatum.AnnotationType"),
        ("annotation_group", 3, ".ssd.AnnotationGroup", REPEATED),
        ("record_id", 4, F.TYPE_UINT32),
    ],
    # Fields of other forks: a string, a fixed64, a double and a nested message past the known ones.
    "Extras": [
        ("note", 20, F.TYPE_STRING),
        ("stamp", 21, F.TYPE_FIXED64),
        ("weight", 22, F.TYPE_DOUBLE),
        ("box", 23, ".ssd.NormalizedBBox"),
    ],
}


def _classes():
    file = descriptor_pb2.FileDescriptorProto(name="ssd_test.proto", package="ssd", syntax="proto2")
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        for name_, number, kind, *label in fields:
            field = message.field.add(
                name=name_, number=number, label=label[0] if label else OPTIONAL
            )
            if isinstance(kind, str):
                field.type_name = kind
                field.type = F.TYPE_ENUM if kind.endswith("Type") else F.TYPE_MESSAGE
            else:
                field.type = kind
        if name == "AnnotatedDatum":
            message.enum_type.add(name="AnnotationType").value.add(name="BBOX", number=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    make = (
        getattr(message_factory, "GetMessageClass", None)
        or message_factory.MessageFactory(pool).GetPrototype
    )
    return {name: make(pool.FindMessageTypeByName(f"ssd.{name}")) for name in MESSAGES}


pb = _classes()


def annotated(image, groups, *, kind=0, record_id=None, extras=False) -> bytes:
    """An AnnotatedDatum: ``image`` a uint8 (c, h, w) array (None: no datum), ``groups`` a list
    of (group_label, [(xmin, ymin, xmax, ymax) or None for an annotation without a bbox]);
    ``kind`` None leaves the type out."""
    record = pb["AnnotatedDatum"]()
    if image is not None:
        record.datum.CopyFrom(datum_message(image))
    # A type the enum does not have (a later fork's) cannot be set through it: its field is
    # appended as it would arrive on the wire.
    unknown_type = bytes([2 << 3, kind]) if kind not in (None, 0) else b""
    if kind == 0:
        record.type = kind
    for label, boxes in groups:
        group = record.annotation_group.add(group_label=label)
        for i, box in enumerate(boxes):
            annotation = group.annotation.add(instance_id=i)
            if box is not None:
                (
                    annotation.bbox.xmin,
                    annotation.bbox.ymin,
                    annotation.bbox.xmax,
                    annotation.bbox.ymax,
                ) = box
                annotation.bbox.difficult = False
    if record_id is not None:
        record.record_id = record_id
    return record.SerializeToString() + unknown_type + (extra_fields() if extras else b"")


def datum_message(values, *, label=0, record_id=None):
    d = pb["Datum"](
        channels=values.shape[0], height=values.shape[1], width=values.shape[2], label=label
    )
    if values.dtype.kind == "u":
        d.data = values.tobytes()
    else:
        d.float_data.extend(values.reshape(-1).tolist())
    if record_id is not None:
        d.record_id = record_id
    return d


def extra_fields() -> bytes:
    """Fields no caffe.proto here has, of every wire type (varint aside), as a later fork might add."""
    box = pb["NormalizedBBox"](xmin=0.5, xmax=0.25)  # a "bad" box, but in a field nobody reads
    return pb["Extras"](
        note="from another fork", stamp=2**60, weight=0.5, box=box
    ).SerializeToString()
