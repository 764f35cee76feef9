"""scan on the SSD fork's AnnotatedDatum stores: written with protobuf from the fork's field
numbers, each bad kind planted at random keys; the findings are exactly the planted ones."""

import functools
import json
import random

import numpy as np
import pytest

from annotated import annotated, datum_message, pb
from caffe_nantools.cli import main
from caffe_nantools.scan import ScanReport, merge_reports, scan
from caffe_nantools.scan.annotated_wire import parse
from stores import read_store, write_store
from needs import need

need("lmdb")
need("plyvel")

SHAPE = (3, 6, 8)


def image(rng):
    return rng.integers(0, 256, SHAPE, dtype=np.uint8)


def good_groups(rng, classes=5):
    groups = []
    for label in rng.choice(np.arange(1, classes), size=rng.integers(1, 3), replace=False):
        boxes = []
        for _ in range(rng.integers(1, 4)):
            x0, y0 = rng.uniform(0, 0.6, 2)
            boxes.append((x0, y0, x0 + rng.uniform(0.05, 0.4), y0 + rng.uniform(0.05, 0.4)))
        groups.append((int(label), boxes))
    return groups


def nan_datum(rng):
    values = rng.standard_normal(SHAPE).astype(np.float32)
    values[1, 2, 3] = np.nan
    record = pb["AnnotatedDatum"](type=0)
    record.datum.CopyFrom(datum_message(values))
    group = record.annotation_group.add(group_label=1)
    box = group.annotation.add().bbox
    box.xmin, box.ymin, box.xmax, box.ymax = 0.1, 0.1, 0.5, 0.5
    return record.SerializeToString()


#: Each bad kind: (field, problem, words of the detail, the record) -- the record from a random
#: generator, the box or label at a random place in the record's groups.
def _one_box(box):
    return lambda rng: annotated(image(rng), good_groups(rng) + [(2, [box])])


BAD = {
    "zero width": ("bbox", "box", "zero width", _one_box((0.3, 0.1, 0.3, 0.6))),
    "zero height": ("bbox", "box", "zero height", _one_box((0.1, 0.25, 0.6, 0.25))),
    "inverted": ("bbox", "box", "xmax below xmin", _one_box((0.7, 0.1, 0.2, 0.6))),
    "past 1": (
        "bbox",
        "box",
        "ymax 1.25 is outside [0, 1] by 0.25",
        _one_box((0.1, 0.1, 0.6, 1.25)),
    ),
    "pixels": ("bbox", "box", "pixel coordinates?", _one_box((12.0, 30.0, 200.0, 150.0))),
    "nan": ("bbox", "nan", "xmin nan", _one_box((float("nan"), 0.1, 0.6, 0.6))),
    "inf": ("bbox", "inf", "ymax inf", _one_box((0.1, 0.1, 0.6, float("inf")))),
    "no bbox": ("bbox", "box", "zero width", _one_box(None)),
    "background": (
        "group_label",
        "label",
        "label 0 is the background label",
        lambda rng: annotated(image(rng), good_groups(rng) + [(0, [(0.1, 0.1, 0.4, 0.4)])]),
    ),
    "past classes": (
        "group_label",
        "label",
        "label 7 >= 5, MultiBoxLoss's num_classes",
        lambda rng: annotated(image(rng), [(7, [(0.1, 0.1, 0.4, 0.4)])] + good_groups(rng)),
    ),
    "negative": (
        "group_label",
        "label",
        "label -2 is negative",
        lambda rng: annotated(image(rng), [(-2, [(0.1, 0.1, 0.4, 0.4)])]),
    ),
    "type": (
        "type",
        "annotation",
        "annotation type 3",
        lambda rng: annotated(image(rng), good_groups(rng), kind=3),
    ),
    "untyped": (
        "type",
        "annotation",
        "boxes but no type",
        lambda rng: annotated(image(rng), good_groups(rng), kind=None),
    ),
    "no datum": ("datum", "empty", "no Datum", lambda rng: annotated(None, good_groups(rng))),
    "datum nan": ("float_data", "nan", "1 NaN", nan_datum),
    "datum shape": (
        "shape",
        "shape",
        "3x6x4, not 3x6x8",
        lambda rng: annotated(rng.integers(0, 256, (3, 6, 4), dtype=np.uint8), good_groups(rng)),
    ),
    "truncated": (
        "annotated_datum",
        "not_datum",
        "not an AnnotatedDatum",
        lambda rng: annotated(image(rng), good_groups(rng))[:-3],
    ),
}


def random_keys(rng, n):
    words = ["img", "voc", "coco", "frame", "2007_000", "a/b", "x y"]
    return sorted(
        {f"{words[i % len(words)]}{rng.integers(10**6):06d}_{i}".encode() for i in range(n)}
    )


def planted_store(seed, n=120, kinds=tuple(BAD), empties=2):
    """Good AnnotatedDatums under random keys, each kind of ``kinds`` planted at a random one;
    returns (records, {index: kind}, indices of records without boxes)."""
    rng = np.random.default_rng(seed)
    keys = random_keys(rng, n)
    places = random.Random(seed).sample(range(len(keys)), len(kinds) + empties)
    bad = dict(zip(places, kinds))
    empty = set(places[len(kinds) :])
    records = []
    for i, key in enumerate(keys):
        if i in bad:
            value = BAD[bad[i]][3](rng)
        elif i in empty:
            value = annotated(image(rng), [] if i % 2 else [(3, [])])
        else:
            value = annotated(image(rng), good_groups(rng))
        records.append((key, value))
    return records, bad, empty


def net(tmp_path, source, backend="LMDB", classes=5, background=0, anno_type=""):
    path = tmp_path / "ssd_train.prototxt"
    path.write_text(f"""name: "SSD"
layer {{
  name: "data" type: "AnnotatedData" top: "data" top: "label"
  include {{ phase: TRAIN }}
  data_param {{ source: "{source}" batch_size: 8 backend: {backend} }}
  annotated_data_param {{ {anno_type} label_map_file: "labelmap.prototxt" }}
}}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "mbox_loc" convolution_param {{ num_output: 4 kernel_size: 1 }} }}
layer {{ name: "conf" type: "Convolution" bottom: "data" top: "mbox_conf" convolution_param {{ num_output: {classes} kernel_size: 1 }} }}
layer {{ name: "prior" type: "PriorBox" bottom: "mbox_loc" bottom: "data" top: "mbox_priorbox" prior_box_param {{ min_size: 4 }} }}
layer {{
  name: "mbox_loss" type: "MultiBoxLoss"
  bottom: "mbox_loc" bottom: "mbox_conf" bottom: "mbox_priorbox" bottom: "label"
  top: "mbox_loss"
  multibox_loss_param {{ num_classes: {classes} background_label_id: {background} }}
}}
""")
    return str(path)


def found(report):
    return sorted((f.index, f.key, f.field, f.problem) for f in report.findings)


def expected(records, bad):
    return sorted(
        (i, records[i][0].decode(), BAD[kind][0], BAD[kind][1]) for i, kind in bad.items()
    )


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_bad_kind_is_found_at_its_random_key_and_nothing_else(tmp_path, backend, seed):
    records, bad, empty = planted_store(seed)
    write_store(tmp_path / "db", backend, records)
    report = scan(net(tmp_path, tmp_path / "db", backend.upper()))
    assert found(report) == expected(records, bad)
    for f in report.findings:
        assert BAD[bad[f.index]][2] in f.detail
    first_empty = records[min(empty)][0].decode()
    assert (
        f"{tmp_path / 'db'}: {len(empty)} records without boxes (the first: key {first_empty})"
        in report.notes[0]
    )
    assert report.summaries[str(tmp_path / "db")].records == len(records)


def test_a_clean_store_has_no_findings_and_its_boxes_are_summed_up(tmp_path):
    rng = np.random.default_rng(9)
    groups = [good_groups(rng) for _ in range(80)]
    records = [(f"{i:05d}".encode(), annotated(image(rng), g)) for i, g in enumerate(groups)]
    write_store(tmp_path / "db", "lmdb", records)
    report = scan(str(tmp_path / "db"))
    assert report.findings == [] and report.notes == [] and report.return_code == 0
    summary = report.summaries[str(tmp_path / "db")]
    labels = [label for g in groups for label, boxes in g for _ in boxes]
    assert summary.labels == {label: labels.count(label) for label in set(labels)}
    assert summary.shapes == {"3x6x8": 80} and summary.dtypes == {"uint8": 80}
    coords = np.asarray([box for g in groups for _, boxes in g for box in boxes], np.float32)
    stats = summary.fields["bbox"].to_dict()
    assert (stats["min"], stats["max"]) == (coords.min(), coords.max())


def test_the_decoder_reads_what_protobuf_wrote(tmp_path):
    rng = np.random.default_rng(4)
    for seed in range(30):
        value = annotated(image(rng), good_groups(rng, classes=30), record_id=seed or None)
        datum, kind, groups = parse(value)
        message = pb["AnnotatedDatum"].FromString(value)
        assert datum == message.datum.SerializeToString() and kind == message.type
        assert groups == [
            (
                g.group_label,
                [(a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax) for a in g.annotation],
            )
            for g in message.annotation_group
        ]


def test_without_a_net_the_background_is_ssds_default_and_classes_unbounded(tmp_path):
    records, bad, _ = planted_store(5, kinds=("background", "past classes", "zero width"))
    write_store(tmp_path / "db", "lmdb", records)
    report = scan(str(tmp_path / "db"))
    assert found(report) == expected(records, {i: k for i, k in bad.items() if k != "past classes"})


def test_the_nets_background_label_and_anno_type_are_used(tmp_path):
    records, bad, _ = planted_store(6, kinds=("background", "untyped", "negative"))
    write_store(tmp_path / "db", "lmdb", records)
    report = scan(
        net(tmp_path, tmp_path / "db", classes=6, background=5, anno_type="anno_type: BBOX")
    )
    # label 0 is a class when the background is 5, and the layer's anno_type types every record
    assert found(report) == expected(records, {i: k for i, k in bad.items() if k == "negative"})


def test_workers_shards_json_and_csv_agree_with_one_scan(tmp_path, capsys):
    records, bad, empty = planted_store(7, n=300, empties=7)
    write_store(tmp_path / "db", "lmdb", records)
    whole = scan(str(tmp_path / "db"))
    assert found(whole) == expected(records, {i: k for i, k in bad.items() if k != "past classes"})
    first_empty = records[min(empty)][0].decode()
    assert whole.notes == [
        f"{tmp_path / 'db'}: 7 records without boxes (the first: key {first_empty}); "
        "SSD skips them, so they are not counted as bad"
    ]
    in_processes = scan(str(tmp_path / "db"), workers=3)
    assert found(in_processes) == found(whole) and in_processes.notes == whole.notes
    parts = [scan(str(tmp_path / "db"), shard=(k, 4)) for k in range(4)]
    shards = merge_reports(parts)
    assert found(shards) == found(whole) and shards.notes == whole.notes
    # as `merge` reads the JSON reports of a Slurm array's shards
    from_json = merge_reports(ScanReport.from_dict(json.loads(p.to_json())) for p in parts)
    assert from_json.notes == whole.notes
    source = str(tmp_path / "db")
    assert from_json.summaries[source].skipped == whole.summaries[source].skipped
    assert main(["scan", str(tmp_path / "db"), "--json"]) == 1
    assert [
        tuple(f[k] for k in ("index", "field", "problem"))
        for f in json.loads(capsys.readouterr().out)["findings"]
    ] == [(f.index, f.field, f.problem) for f in whole.findings]
    assert main(["scan", str(tmp_path / "db"), "--csv"]) == 1
    assert capsys.readouterr().out.count("\n") == len(whole.findings) + 1


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_write_clean_keeps_exactly_the_good_records_byte_for_byte(tmp_path, backend):
    records, bad, empty = planted_store(8)
    write_store(tmp_path / "db", backend, records)
    scan(net(tmp_path, tmp_path / "db", backend.upper()), write_clean=str(tmp_path / "clean"))
    assert read_store(tmp_path / "clean", backend) == [
        r for i, r in enumerate(records) if i not in bad
    ]
    again = scan(str(tmp_path / "clean"), backend=backend)
    assert again.findings == [] and len(again.notes) == 1  # the records without boxes stay


def test_nvidia_record_ids_and_unknown_fields_are_skipped(tmp_path):
    records, bad, _ = planted_store(10, kinds=("zero height", "nan", "datum shape"))
    rng = np.random.default_rng(0)
    nvidia = []
    for i, (key, value) in enumerate(records):
        message = pb["AnnotatedDatum"].FromString(value)
        message.record_id = int(rng.integers(1, 2**32))
        message.datum.record_id = i + 1
        nvidia.append((key, message.SerializeToString() + annotated_extras()))
    write_store(tmp_path / "plain", "lmdb", records)
    write_store(tmp_path / "nvidia", "lmdb", nvidia)
    plain, with_ids = scan(str(tmp_path / "plain")), scan(str(tmp_path / "nvidia"))
    assert found(with_ids) == found(plain) == expected(records, bad)
    assert [f.detail for f in with_ids.findings] == [f.detail for f in plain.findings]


def annotated_extras():
    from annotated import extra_fields

    return extra_fields()


def test_nvidia_datums_with_record_id_and_unknown_fields_scan_as_datums(tmp_path):
    rng = np.random.default_rng(11)
    values = rng.standard_normal((200,) + SHAPE).astype(np.float32)
    nan_at, label_at = sorted(random.Random(11).sample(range(200), 2))
    values[nan_at, 2, 1, 1] = np.nan
    records = []
    for i, x in enumerate(values):
        message = datum_message(
            x, label=9 if i == label_at else i % 3, record_id=int(rng.integers(0, 2**32))
        )
        extra = annotated_extras() if i % 2 else b""
        records.append((f"rec{i:04d}".encode(), message.SerializeToString() + extra))
    write_store(tmp_path / "db", "lmdb", records)
    tmp_path.joinpath(
        "net.prototxt"
    ).write_text(f"""layer {{ name: "d" type: "Data" top: "data" top: "label"
  data_param {{ source: "{tmp_path / "db"}" batch_size: 4 backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param {{ num_output: 3 }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
""")
    report = scan(str(tmp_path / "net.prototxt"))
    assert [(f.index, f.problem) for f in report.findings] == sorted(
        [(nan_at, "nan"), (label_at, "label")]
    )
    assert report.summaries[str(tmp_path / "db")].records == 200


def test_a_datum_planted_in_an_annotated_store_is_not_an_annotated_datum(tmp_path):
    records, _, _ = planted_store(12, kinds=())
    at = random.Random(12).randrange(len(records))
    records[at] = (records[at][0], datum_message(np.zeros(SHAPE, np.uint8)).SerializeToString())
    write_store(tmp_path / "db", "lmdb", records)
    report = scan(str(tmp_path / "db"))
    assert [(f.index, f.problem) for f in report.findings] == [(at, "not_datum")]


def test_net_mode_without_the_ssd_forks_pycaffe_says_so_in_one_line(tmp_path, caffe, capsys):
    if "AnnotatedData" in caffe.layer_type_list():
        pytest.skip("this pycaffe is the SSD fork's")
    records, _, _ = planted_store(13, kinds=())
    write_store(tmp_path / "db", "lmdb", records)
    assert main(["scan", net(tmp_path, tmp_path / "db"), "--mode", "net"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "layer 'data' (AnnotatedData)" in err
        and "the SSD fork's pycaffe" in err
    )
    assert "--mode direct reads its records without Caffe" in err


@pytest.mark.parametrize("seed", [21, 22])
def test_records_recognized_by_layout_read_as_records_read_one_at_a_time(
    tmp_path, monkeypatch, seed
):
    from caffe_nantools.scan import annotated as module

    records, bad, _ = planted_store(seed, n=400)
    write_store(tmp_path / "db", "lmdb", records)
    fast = scan(str(tmp_path / "db"))
    monkeypatch.setattr(module, "decode", functools.partial(module.decode, walk=False))
    alone = scan(str(tmp_path / "db"))
    assert fast.findings == alone.findings and fast.notes == alone.notes
    assert (
        fast.summaries[str(tmp_path / "db")].to_dict()
        == alone.summaries[str(tmp_path / "db")].to_dict()
    )


def test_one_record_without_boxes_is_one_record(tmp_path):
    records, _, empty = planted_store(11, n=40, kinds=(), empties=1)
    write_store(tmp_path / "db", "lmdb", records)
    key = records[min(empty)][0].decode()
    assert scan(str(tmp_path / "db")).notes == [
        f"{tmp_path / 'db'}: 1 record without boxes (the first: key {key}); "
        "SSD skips them, so they are not counted as bad"
    ]
