"""scan against real Caffe: stores written with caffe_pb2 and convert_imageset, read in direct
mode and through Caffe's own data layers (net mode); both name the same records."""

import os
import subprocess
import textwrap

import numpy as np
import pytest

from caffe_nantools.scan import scan
from stores import write_store

NET = textwrap.dedent(
    """\
    layer {
      name: "data" type: "Data" top: "data" top: "label"
      data_param { source: "db" backend: LMDB batch_size: 4 }
      transform_param { scale: 0.5 }
    }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    """
)


def caffe_datum(caffe, x, label):
    from caffe.proto import caffe_pb2

    d = caffe_pb2.Datum(channels=x.shape[0], height=x.shape[1], width=x.shape[2], label=label)
    if x.dtype == np.uint8:
        d.data = x.tobytes()
    else:
        d.float_data.extend(x.reshape(-1).astype(float).tolist())
    return d.SerializeToString()


def records(report):
    return sorted((f.index, f.key, f.problem) for f in report.findings)


@pytest.fixture
def project(caffe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    return tmp_path


def test_direct_and_net_mode_name_the_same_planted_records(caffe, project):
    rng = np.random.default_rng(0)
    items = []
    for i in range(30):  # 30 records, batch 4: the last batch wraps around in Caffe
        x = rng.standard_normal((2, 3, 3)).astype(np.float32)
        label = i % 3
        if i == 5:
            x[1, 2, 2] = np.nan
        if i == 13:
            x[0, 0, 0] = -np.inf
        if i == 29:
            label = 4
        items.append((f"{i:05d}".encode(), caffe_datum(caffe, x, label)))
    write_store(project / "db", "lmdb", items)
    expected = [(5, "00005", "nan"), (13, "00013", "inf"), (29, "00029", "label")]
    direct = scan("net.prototxt")
    net = scan("net.prototxt", mode="net")
    assert records(direct) == expected
    assert records(net) == expected
    assert net.summaries["db"].records == 30
    assert "after Caffe's transform" in net.findings[0].detail


def test_net_mode_names_the_records_caffe_stops_on_and_goes_on(caffe, project):
    rng = np.random.default_rng(1)
    items = [
        (
            f"{i:05d}".encode(),
            caffe_datum(caffe, rng.standard_normal((2, 3, 3)).astype(np.float32), 1),
        )
        for i in range(20)
    ]
    items[6] = (items[6][0], b"definitely not a datum")
    items[11] = (items[11][0], caffe_datum(caffe, np.zeros((1, 3, 3), np.float32), 1))
    x = rng.standard_normal((2, 3, 3)).astype(np.float32)
    x[0, 1, 1] = np.nan
    items[17] = (items[17][0], caffe_datum(caffe, x, 2))
    write_store(project / "db", "lmdb", items)
    direct = scan("net.prototxt")
    net = scan("net.prototxt", mode="net")
    assert records(direct) == [
        (6, "00006", "not_datum"),
        (11, "00011", "shape"),
        (17, "00017", "nan"),
    ]
    assert records(net) == records(direct)
    stopped = [f for f in net.findings if f.problem in ("not_datum", "shape")]
    assert all("Caffe stopped on it: " in f.detail for f in stopped)


def test_scale_that_overflows_is_inf_in_caffe_and_overflow_directly(caffe, project):
    (project / "net.prototxt").write_text(NET.replace("scale: 0.5", "scale: 100"))
    x = np.full((2, 3, 3), 1e37, np.float32)
    write_store(
        project / "db",
        "lmdb",
        [(b"a", caffe_datum(caffe, x, 0)), (b"b", caffe_datum(caffe, x / 1e36, 0))],
    )
    assert records(scan("net.prototxt")) == [(0, "a", "overflow")]
    assert records(scan("net.prototxt", mode="net")) == [(0, "a", "inf")]


@pytest.fixture
def images(caffe, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    lines = []
    for i in range(7):
        name = f"img{i}.png"
        Image.new("RGB", (6, 5), (i * 30, 0, 0)).save(folder / name)
        lines.append(f"{name} {i % 2}")
    (folder / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_convert_imageset_skips_the_corrupt_image_and_scan_names_it_in_the_list(images):
    run = subprocess.run(
        [
            "convert_imageset",
            "--backend=lmdb",
            "--encoded=true",
            "--encode_type=png",
            "images/",
            "list.txt",
            "db",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, GLOG_minloglevel="0"),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "img3.png" in run.stderr  # "Could not open or find file"
    report = scan("db")
    assert report.findings == [] and report.summaries["db"].records == 6
    assert report.summaries["db"].dtypes == {"encoded": 6}
    from caffe_nantools.scan.imagelist import ImageOptions
    from caffe_nantools.scan.report import ScanReport
    from caffe_nantools.scan.backends import scan_source
    from caffe_nantools.scan.source import Source

    report = ScanReport()
    scan_source(Source("list.txt", "imagelist", options=ImageOptions("images/")), report)
    assert records(report) == [(3, "img3.png", "decode")]


def test_image_data_layer_in_both_modes(images):
    (images / "net.prototxt").write_text(
        textwrap.dedent(
            """\
        layer {
          name: "data" type: "ImageData" top: "data" top: "label"
          image_data_param { source: "list.txt" root_folder: "images/" batch_size: 2 shuffle: true }
        }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
        """
        )
    )
    direct = scan("net.prototxt")
    net = scan("net.prototxt", mode="net")
    assert records(direct) == records(net) == [(3, "img3.png", "decode")]
    assert any("shuffle turned off in the scanner net" in n for n in net.notes)
    assert net.summaries["list.txt"].records == 6


def test_hdf5_data_layer_in_both_modes(caffe, project):
    import h5py

    rng = np.random.default_rng(2)
    data = rng.standard_normal((10, 2, 3, 3)).astype(np.float32)
    data[4, 0, 0, 0] = np.nan
    more = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    more[5, 1, 2, 2] = np.inf
    with h5py.File(project / "a.h5", "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=np.arange(10, dtype=np.float32) % 3)
    with h5py.File(project / "b.h5", "w") as f:
        f.create_dataset("data", data=more)
        f.create_dataset("label", data=np.array([0, 1, 2, 5, 1, 0], np.float32))
    (project / "list.txt").write_text("a.h5\nb.h5\n")
    (project / "net.prototxt").write_text(
        NET.replace(
            'type: "Data" top: "data" top: "label"\n  data_param { source: "db" backend: LMDB batch_size: 4 }\n  transform_param { scale: 0.5 }',
            'type: "HDF5Data" top: "data" top: "label"\n  hdf5_data_param { source: "list.txt" batch_size: 4 }',
        )
    )
    expected = [(4, "a.h5:4", "nan"), (13, "b.h5:3", "label"), (15, "b.h5:5", "inf")]
    assert records(scan("net.prototxt")) == expected
    assert records(scan("net.prototxt", mode="net")) == expected


def test_leveldb_data_layer_in_net_mode(caffe, project):
    (project / "net.prototxt").write_text(NET.replace("backend: LMDB", "backend: LEVELDB"))
    x = np.ones((2, 3, 3), np.float32)
    bad = x.copy()
    bad[1, 1, 1] = np.nan
    write_store(
        project / "db",
        "leveldb",
        [
            (b"a", caffe_datum(caffe, x, 0)),
            (b"b", caffe_datum(caffe, bad, 1)),
            (b"c", caffe_datum(caffe, x, 2)),
        ],
    )
    assert records(scan("net.prototxt", mode="net")) == [(1, "b", "nan")]
    assert records(scan("net.prototxt")) == [(1, "b", "nan")]
