"""Records and sources of odd shapes: findings or one-line errors, never a traceback."""

import os
import zlib

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.datum import decode_batch
from caffe_nantools.scan import scan
from caffe_nantools.scan.checks import Collector, DatumChecker
from caffe_nantools.scan.report import ScanReport
from datums import datum, varint
from needs import need

BIG = 2**31 - 1


def checked(records):
    report = ScanReport()
    DatumChecker(Collector(report, "s", "lmdb")).check(
        [b"%03d" % i for i in range(len(records))], records, 0
    )
    return report


def raw_dims(dims, values):
    """A Datum with any varints as its dims (even ones no int32 holds)."""
    out = b"".join(varint(number << 3) + varint(d) for number, d in zip((1, 2, 3), dims))
    return (
        out
        + varint(5 << 3)
        + varint(1)
        + b"".join(b"\x35" + v.tobytes() for v in np.asarray(values, "<f4"))
    )


@pytest.mark.parametrize(
    "dims, detail",
    [
        ((-1, 2, 2), "-1x2x2: a negative dimension"),
        ((2, -3, 5), "2x-3x5: a negative dimension"),
        (
            (BIG, BIG, BIG),
            f"{BIG}x{BIG}x{BIG}: {BIG**3} values, more than a Caffe blob holds (2^31 - 1)",
        ),
        (
            (1, 65536, 65536),
            f"1x65536x65536: {2**32} values, more than a Caffe blob holds (2^31 - 1)",
        ),
        (
            (2**64 - 2, 1, 4),
            "-2x1x4: a negative dimension",
        ),  # an int32 field: cut to 32 bits, as Caffe reads it
    ],
)
@pytest.mark.parametrize("position", [0, 3, 6])
def test_impossible_dims_are_a_shape_finding(dims, detail, position):
    good = datum(np.ones((1, 2, 2), np.float32))
    records = [good] * 7
    records[position] = raw_dims(dims, np.ones(4))
    report = checked(records)
    assert [(f.index, f.problem, f.detail) for f in report.findings] == [
        (position, "shape", detail)
    ]
    assert report.summaries["s"].records == 7


def test_dims_past_64_bits_decode_as_caffe_reads_them():
    batch = decode_batch([raw_dims((2**64 - 1, 2**63 + 3, 2**40 + 2), np.ones(4))])
    assert batch.shapes.tolist() == [[-1, 3, 2]] and not batch.broken


def test_impossible_dims_are_findings_with_workers_too(tmp_path):
    need("lmdb")
    from stores import write_store

    records = [(b"%05d" % i, datum(np.full((1, 2, 2), i, np.float32))) for i in range(400)]
    records[50] = (records[50][0], raw_dims((-4, 2, 2), np.ones(4)))
    records[333] = (records[333][0], raw_dims((BIG, 3, 9), np.ones(4)))
    write_store(tmp_path / "db", "lmdb", records)
    for workers in (1, 2):
        report = scan(str(tmp_path / "db"), workers=workers)
        assert [(f.index, f.problem) for f in report.findings] == [(50, "shape"), (333, "shape")]


@pytest.fixture
def h5py():
    return need("h5py")


def h5(path, **datasets):
    import h5py

    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
    return str(path)


def findings(report):
    return [(f.index, f.field, f.problem) for f in report.findings]


@pytest.mark.parametrize(
    "odd, why",
    [
        (np.array([b"cat", b"dog", b"eel"]), "holds |S3, not numbers"),
        (np.zeros(3, [("a", "<f4"), ("b", "<i4")]), "not numbers"),
        (np.float32(2.5), "is a single value, not rows"),
        (np.zeros((3, 0), np.float32), "has no values in a row (shape 3x0)"),
    ],
)
@pytest.mark.parametrize("name", ["label", "extra"])
def test_hdf5_datasets_that_are_not_rows_of_numbers_are_findings(h5py, tmp_path, odd, why, name):
    data = np.ones((3, 2), np.float32)
    data[1, 0] = np.nan
    path = h5(tmp_path / "x.h5", data=data, **{name: odd})
    report = scan(path)
    assert (0, name, "dataset") in findings(report) and (1, "data", "nan") in findings(report)
    assert why in next(f.detail for f in report.findings if f.field == name)
    assert report.summaries[path].records == 3


def test_a_dangling_link_named_data_is_a_finding(h5py, tmp_path):
    path = tmp_path / "x.h5"
    h5(path, label=np.zeros(4, np.float32))
    with h5py.File(path, "a") as f:
        f["data"] = h5py.SoftLink("/nowhere/data")
    for datasets in ((), ("data", "label")):
        from caffe_nantools.scan.backends import scan_source
        from caffe_nantools.scan.source import Source

        report = ScanReport()
        scan_source(Source(str(path), "hdf5", datasets=datasets), report)
        assert findings(report) == [(0, "data", "dataset")]
        assert (
            report.findings[0].detail == "'data' is a link to '/nowhere/data', which does not exist"
        )


@pytest.mark.parametrize("damaged", [0, 3, 7])  # which chunk of 8
def test_a_corrupt_compressed_chunk_names_its_rows_and_the_scan_goes_on(h5py, tmp_path, damaged):
    data = np.arange(80 * 5, dtype=np.float32).reshape(80, 5)
    data[damaged * 10 - 3 if damaged else 45, 2] = np.inf
    path = tmp_path / "z.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data, chunks=(10, 5), compression="gzip", compression_opts=4)
        f.create_dataset("label", data=np.zeros(80, np.float32))
    raw = bytearray(path.read_bytes())
    at = raw.find(zlib.compress(data[damaged * 10 : damaged * 10 + 10].tobytes(), 4))
    assert at > 0
    raw[at + 8 : at + 24] = b"\x00" * 16
    path.write_bytes(bytes(raw))
    report = scan(str(path))
    unreadable = [f.index for f in report.findings if f.problem == "unreadable"]
    assert unreadable == list(range(damaged * 10, damaged * 10 + 10))
    assert [f.index for f in report.findings if f.problem == "inf"] == [
        damaged * 10 - 3 if damaged else 45
    ]
    clean = tmp_path / "clean.h5"
    scan(str(path), write_clean=str(clean))
    with h5py.File(clean, "r") as f:
        assert f["data"].shape == (69, 5) and np.isfinite(f["data"][:]).all()


def test_a_folder_as_hdf5_source_is_one_line(tmp_path, capsys):
    assert main(["scan", str(tmp_path), "--backend", "hdf5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a folder, not an HDF5 file or a list of them" in err


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_a_missing_hdf5_list_is_one_line(tmp_path, capsys, workers):
    assert main(["scan", str(tmp_path / "train.txt"), "--backend", "hdf5", *workers]) == 2
    assert (
        capsys.readouterr().err
        == f"caffe-nantools scan: error: {tmp_path / 'train.txt'}: no such file\n"
    )


@pytest.mark.parametrize("line", [1, 3])
def test_a_list_naming_a_missing_file_is_one_line_with_its_line(h5py, tmp_path, capsys, line):
    names = [h5(tmp_path / f"{i}.h5", data=np.ones((2, 1), np.float32)) for i in range(3)]
    names[line - 1] = str(tmp_path / "gone.h5")
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    assert main(["scan", str(tmp_path / "list.txt")]) == 2
    assert capsys.readouterr().err == (
        f"caffe-nantools scan: error: {tmp_path / 'list.txt'}:{line}: {tmp_path / 'gone.h5'}: "
        "no such file (Caffe stops there); fix the list\n"
    )


@pytest.mark.parametrize("kind, what", [("folder", "a folder"), ("fifo", "not a regular file")])
def test_a_list_naming_what_is_not_a_file_says_what_it_is(h5py, tmp_path, capsys, kind, what):
    odd = tmp_path / "odd.h5"
    odd.mkdir() if kind == "folder" else os.mkfifo(odd)
    good = h5(tmp_path / "good.h5", data=np.ones((2, 1), np.float32))
    (tmp_path / "list.txt").write_text(f"{good}\n{odd}\n")
    assert main(["scan", str(tmp_path / "list.txt")]) == 2
    assert capsys.readouterr().err == (
        f"caffe-nantools scan: error: {tmp_path / 'list.txt'}:2: {odd}: "
        f"{what} (Caffe stops there); fix the list\n"
    )


@pytest.mark.parametrize(
    "lines, number",
    [(["a.png 1", "b.png"], 2), (["", "nolabel.jpg", "c.png 0"], 2), (["x.png"], 1)],
)
def test_an_image_list_line_without_a_label_says_so(tmp_path, lines, number):
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    report = scan(str(tmp_path / "list.txt"), backend="imagelist")
    labels = [f.detail for f in report.findings if f.problem == "label"]
    assert labels == [f"line {number} has no label (Caffe reads 'path label')"]
