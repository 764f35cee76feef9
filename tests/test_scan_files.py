"""scan on HDF5 sources and ImageData lists."""

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.scan import scan
from caffe_nantools.scan.backends import scan_source
from caffe_nantools.scan.checks import Expect
from caffe_nantools.scan.imagelist import ImageOptions
from caffe_nantools.scan.report import ScanReport
from caffe_nantools.scan.source import Source
from needs import need
from stores import per_worker

h5py = need("h5py")
Image = need("PIL.Image")


def found(report):
    return [(f.index, f.key, f.field, f.problem) for f in report.findings]


def write_h5(path, data, label):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=label)


@pytest.fixture
def h5_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 2, 3)).astype(np.float32)
    a[5, 1, 1] = np.nan
    b = rng.standard_normal((30, 2, 3)).astype(np.float32)
    b[29, 0, 0] = np.inf
    labels_b = np.arange(30, dtype=np.float32) % 4
    labels_b[3] = -1
    labels_b[4] = 1.5
    write_h5("a.h5", a, np.zeros(40, np.float32))
    write_h5("b.h5", b, labels_b)
    (tmp_path / "list.txt").write_text("a.h5\n\nb.h5\n")
    return tmp_path / "list.txt"


def test_hdf5_list_rows_are_named_file_and_row(h5_list):
    report = scan(str(h5_list))
    assert found(report) == [
        (5, "a.h5:5", "data", "nan"),
        (43, "b.h5:3", "label", "label"),
        (69, "b.h5:29", "data", "inf"),
    ]
    summary = report.summaries[str(h5_list)]
    assert summary.records == 70 and summary.shapes["data: 2x3"] == 70


def test_hdf5_integer_labels_and_classes_from_the_net(h5_list):
    report = ScanReport()
    scan_source(Source(str(h5_list), "hdf5", Expect(num_classes=3, integer_labels=True)), report)
    labels = [(f.key, f.detail) for f in report.findings if f.problem == "label"]
    assert labels == [
        ("b.h5:3", "label -1 is negative"),
        ("b.h5:4", "label 1.5 is not a whole number (a classification label)"),
        ("b.h5:7", "label 3 >= 3, the number of classes"),
        ("b.h5:11", "label 3 >= 3, the number of classes"),
        ("b.h5:15", "label 3 >= 3, the number of classes"),
        ("b.h5:19", "label 3 >= 3, the number of classes"),
        ("b.h5:23", "label 3 >= 3, the number of classes"),
        ("b.h5:27", "label 3 >= 3, the number of classes"),
    ]


def test_hdf5_row_counts_that_differ(tmp_path):
    write_h5(tmp_path / "x.h5", np.zeros((5, 2), np.float32), np.zeros(4, np.float32))
    report = scan(str(tmp_path / "x.h5"))
    assert found(report) == [(0, str(tmp_path / "x.h5"), "rows", "rows")]
    assert report.findings[0].detail == "datasets differ in row count (data: 5, label: 4)"


def test_hdf5_small_chunks_find_the_same_rows(h5_list, monkeypatch):
    from caffe_nantools.scan import hdf5

    monkeypatch.setattr(hdf5, "CHUNK_BYTES", 50)
    assert [f.index for f in scan(str(h5_list)).findings] == [5, 43, 69]


def test_a_big_hdf5_list_gets_a_process_per_core_with_the_same_report(h5_list, monkeypatch):
    from caffe_nantools.scan import cores, scanner

    monkeypatch.setattr(scanner.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(cores, "cpu_quota", lambda: None)
    source = Source(str(h5_list), "hdf5")
    assert scanner.auto_workers(source) == 1
    both = (h5_list.parent / "a.h5").stat().st_size + (h5_list.parent / "b.h5").stat().st_size
    per_worker(monkeypatch, "hdf5", both // 2)
    assert scanner.auto_workers(source) == 2
    report = scan(str(h5_list))
    assert found(report) == found(scan(str(h5_list), workers=1))
    assert report.summaries[str(h5_list)].records == 70


def test_hdf5_shards_and_write_clean(h5_list, tmp_path):
    parts = [scan(str(h5_list), shard=(k, 4)) for k in range(4)]
    assert sorted(f.index for p in parts for f in p.findings) == [5, 43, 69]
    report = scan(str(h5_list), write_clean=str(tmp_path / "clean.txt"))
    assert report.notes == [f"wrote {tmp_path / 'clean.txt'}: 67 records, 3 bad ones left out"]
    assert scan(str(tmp_path / "clean.txt")).findings == []


def test_a_source_that_cannot_be_read_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "list.txt").write_text("a.png 0\n")

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # As root nothing is refused: the module's open stands for a file without read permission.
    monkeypatch.setattr("caffe_nantools.scan.scanner.open", refused, raising=False)
    assert main(["scan", str(tmp_path / "list.txt")]) == 2
    err = capsys.readouterr().err
    assert "list.txt: cannot read (Permission denied)" in err and err.count("\n") == 1


def test_truncated_hdf5_is_a_one_line_error(tmp_path, capsys):
    write_h5(tmp_path / "x.h5", np.zeros((100, 50), np.float32), np.zeros(100, np.float32))
    data = (tmp_path / "x.h5").read_bytes()
    (tmp_path / "x.h5").write_bytes(data[: len(data) // 2])
    assert main(["scan", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "x.h5: cannot open as HDF5" in err and err.count("\n") == 1


@pytest.fixture
def images(tmp_path):
    for name, size in (("a.png", (4, 3)), ("b.png", (4, 3)), ("big.png", (8, 8))):
        Image.new("RGB", size).save(tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "list.txt").write_text(
        "a.png 0\nb.png 1\nbroken.jpg 2\ngone.png 0\nbig.png 1\na.png x\n\nb.png -2\n"
    )
    return tmp_path


def test_image_list_names_each_bad_line(images):
    source = Source(
        str(images / "list.txt"), "imagelist", options=ImageOptions(root_folder=str(images) + "/")
    )
    report = ScanReport()
    scan_source(source, report)
    assert [(f.index, f.key, f.problem) for f in report.findings] == [
        (2, "broken.jpg", "decode"),
        (3, "gone.png", "missing"),
        (4, "big.png", "shape"),
        (5, "a.png", "label"),
        (6, "b.png", "label"),
    ]
    assert (
        report.findings[2].detail
        == "3x8x8, not 3x3x4 (the first image's); Caffe needs one size per batch (set new_height/new_width)"
    )
    resized = ScanReport()
    scan_source(
        Source(source.path, "imagelist", options=ImageOptions(str(images) + "/", 8, 8)), resized
    )
    assert "shape" not in {f.problem for f in resized.findings}


def test_image_list_shards_compare_sizes_with_the_lists_first_image(images, monkeypatch):
    # The shard that starts at big.png compared with it, and flagged every image after it.
    monkeypatch.chdir(images)
    (images / "list.txt").write_text("a.png 0\nbroken.jpg 1\nbig.png 1\nb.png 0\na.png 1\n")
    parts = [scan("list.txt", shard=(k, 2)) for k in range(2)]
    assert [(f.index, f.problem) for p in parts for f in p.findings] == [
        (1, "decode"),
        (2, "shape"),
    ]


def test_image_list_detected_and_write_clean(images, monkeypatch):
    monkeypatch.chdir(images)
    report = scan("list.txt", write_clean=str(images / "clean.txt"))
    assert report.summaries["list.txt"].backend == "imagelist"
    assert (images / "clean.txt").read_text() == "a.png 0\nb.png 1\n"


def test_missing_list_is_a_one_line_error(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "none.txt")]) == 2
    assert "none.txt: no such file or folder" in capsys.readouterr().err


def test_an_empty_source_is_a_finding(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    report = scan(str(tmp_path / "empty.txt"), backend="imagelist")
    assert [(f.index, f.problem) for f in report.findings] == [(-1, "empty")]
    assert report.return_code == 1


@pytest.mark.parametrize("bad_rows", [[], [0, 7, 9999], list(range(3000, 6000))])
def test_hdf5_write_clean_streams_in_flat_memory(tmp_path, monkeypatch, bad_rows):
    import tracemalloc

    from caffe_nantools.files import writing
    from caffe_nantools.scan import hdf5

    rows = 10000
    data = np.arange(rows * 1000, dtype=np.float32).reshape(rows, 1000)  # 40 MB
    write_h5(tmp_path / "big.h5", data, np.arange(rows, dtype=np.float32))
    del data
    monkeypatch.setattr(hdf5, "CHUNK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        with writing() as out:
            kept = hdf5.write_clean_hdf5(
                Source(str(tmp_path / "big.h5"), "hdf5"),
                set(bad_rows),
                str(tmp_path / "clean.h5"),
                out,
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kept == rows - len(bad_rows) and peak < 8 << 20
    with h5py.File(tmp_path / "clean.h5", "r") as f:
        labels = f["label"][:]
        assert labels.tolist() == [float(r) for r in range(rows) if r not in set(bad_rows)]
        assert (f["data"][:, 0] == labels * 1000).all()


@pytest.mark.parametrize("loss, flagged", [("EuclideanLoss", False), ("SoftmaxWithLoss", True)])
def test_negative_hdf5_labels_are_a_problem_only_where_the_net_reads_classes(
    tmp_path, monkeypatch, loss, flagged
):
    monkeypatch.chdir(tmp_path)
    write_h5(
        tmp_path / "rows.h5",
        np.ones((6, 3), np.float32),
        np.array([0, -2.5, 1, -1, 0, 1], np.float32),
    )
    (tmp_path / "rows.txt").write_text("rows.h5\n")
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "rows.txt" batch_size: 2 } }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }\n'
        f'layer {{ name: "cost" type: "{loss}" bottom: "fc" bottom: "label" top: "cost" }}\n'
    )
    labels = [f.key for f in scan("net.prototxt").findings if f.field == "label"]
    assert labels == (["rows.h5:1", "rows.h5:3"] if flagged else [])


@pytest.mark.parametrize("row", [0, 3])
def test_float64_hdf5_values_past_float32_are_an_overflow(tmp_path, row):
    data = np.ones((4, 2))
    data[row, 1] = -1e300
    write_h5(tmp_path / "wide.h5", data, np.zeros(4))
    report = scan(str(tmp_path / "wide.h5"))
    key = f"{tmp_path / 'wide.h5'}:{row}"
    assert [(f.key, f.problem) for f in report.findings] == [(key, "overflow")]
    assert "past float32's range" in report.findings[0].detail and report.return_code == 1


@pytest.mark.parametrize("label", ["2147483648", "99999999999999999999"])
def test_an_image_list_label_past_int_range_is_a_finding(tmp_path, monkeypatch, label):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "list.txt").write_text(f"ok.png 1\nok.png {label}\nok.png 2147483647\n")
    report = scan("list.txt", backend="imagelist")
    assert [(f.index, f.problem) for f in report.findings] == [(1, "label")]
    assert "past Caffe's int range" in report.findings[0].detail


def test_without_pillow_images_are_not_said_to_be_fine(tmp_path, monkeypatch, capsys):
    import sys

    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'ok.png'} 1\n")
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert main(["scan", str(tmp_path / "list.txt"), "--backend", "imagelist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(
        "needs the Python package 'Pillow': pip install 'caffe-nantools[images]'\n"
    )


TWO_SOURCES = (
    'layer {{ name: "{first}" type: "HDF5Data" top: "data" top: "target" hdf5_data_param {{ source: "first.txt" batch_size: 2 }} }}\n'
    'layer {{ name: "{second}" type: "HDF5Data" top: "more" top: "label" hdf5_data_param {{ source: "second.txt" batch_size: 2 }} }}\n'
    'layer {{ name: "fit" type: "InnerProduct" bottom: "data" top: "fit" inner_product_param {{ num_output: 1 }} }}\n'
    'layer {{ name: "l2" type: "EuclideanLoss" bottom: "fit" bottom: "target" top: "l2" }}\n'
    'layer {{ name: "fc" type: "InnerProduct" bottom: "more" top: "fc" inner_product_param {{ num_output: 2 }} }}\n'
    'layer {{ name: "cls" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "cls" }}\n'
)


@pytest.mark.parametrize("first, second", [("rows", "classes"), ("data", "labels_in")])
def test_one_layer_of_a_net_is_scanned_and_cleaned_as_the_net_reads_it(
    tmp_path, monkeypatch, first, second
):
    monkeypatch.chdir(tmp_path)
    with h5py.File(tmp_path / "first.h5", "w") as f:
        f["data"] = np.ones((6, 3), np.float32)
        f["target"] = np.array([0.5, -2.5, np.nan, -1, 3.25, 1], np.float32)
    with h5py.File(tmp_path / "second.h5", "w") as f:
        f["more"], f["label"] = np.ones((4, 3), np.float32), np.array([0, 2, 1, -1.0])
    (tmp_path / "first.txt").write_text("first.h5\n")
    (tmp_path / "second.txt").write_text("second.h5\n")
    (tmp_path / "net.prototxt").write_text(TWO_SOURCES.format(first=first, second=second))
    # The regression targets may be negative or fractional: only the NaN row is bad.
    report = scan("net.prototxt", layer=first, write_clean="clean.txt")
    assert found(report) == [(2, "first.h5:2", "target", "nan")]
    assert report.sources == ["first.txt"]
    assert [f.key for f in scan("net.prototxt", layer=second).findings] == [
        "second.h5:1",
        "second.h5:3",
    ]
    with h5py.File(next((tmp_path / "clean.txt.files").iterdir()), "r") as f:
        assert f["target"][:].tolist() == [0.5, -2.5, -1, 3.25, 1]


@pytest.mark.parametrize(
    "target, layer, words",
    [
        ("net.prototxt", "nope", "no Data, HDF5Data or ImageData layer named 'nope'"),
        ("first.txt", "rows", "--layer rows is for a net"),
    ],
)
def test_a_layer_that_is_not_a_data_layer_of_the_net_is_one_line(
    tmp_path, monkeypatch, capsys, target, layer, words
):
    monkeypatch.chdir(tmp_path)
    write_h5(tmp_path / "first.h5", np.ones((2, 3), np.float32), np.zeros(2, np.float32))
    (tmp_path / "first.txt").write_text("first.h5\n")
    (tmp_path / "second.txt").write_text("first.h5\n")
    (tmp_path / "net.prototxt").write_text(TWO_SOURCES.format(first="rows", second="more_in"))
    assert main(["scan", target, "--layer", layer]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
