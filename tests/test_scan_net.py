"""scan a net: its data layers in one phase, checked against what the rest of the net expects."""

import textwrap

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.scan import scan
from caffe_nantools.scan.net_sources import read_mean, sources_from_net
from datums import datum, mean_file
from stores import write_store
from needs import need

need("lmdb")
h5py = need("h5py")

NET = textwrap.dedent(
    """\
    layer {
      name: "data" type: "Data" top: "data" top: "label"
      data_param { source: "train_lmdb" backend: LMDB batch_size: 4 }
      transform_param { mean_file: "mean.binaryproto" scale: 0.5 }
      include { phase: TRAIN }
    }
    layer {
      name: "data" type: "HDF5Data" top: "data" top: "label"
      hdf5_data_param { source: "test_h5.txt" batch_size: 4 }
      include { phase: TEST }
    }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
    layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" loss_param { ignore_label: 7 } }
    """
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    x = np.ones((2, 2, 2), np.float32)
    write_store(
        tmp_path / "train_lmdb",
        "lmdb",
        [
            (b"a", datum(x, label=0)),
            (b"b", datum(x, label=3)),
            (b"c", datum(x, label=7)),
            (b"d", datum(np.ones((1, 2, 2), np.float32), label=1)),
        ],
    )
    mean_file(tmp_path / "mean.binaryproto", np.zeros((2, 2, 2)))
    with h5py.File(tmp_path / "test.h5", "w") as f:
        f.create_dataset("data", data=np.zeros((4, 3), np.float32))
        f.create_dataset("label", data=np.array([0, 2.5, 3, 1], np.float32))
    (tmp_path / "test_h5.txt").write_text("test.h5\n")
    return tmp_path


def test_train_phase_checks_classes_ignore_label_and_the_mean_shape(project):
    report = scan("net.prototxt")
    assert [(f.key, f.problem, f.detail) for f in report.findings] == [
        ("b", "label", "label 3 >= 3, the number of classes of SoftmaxWithLoss 'loss'"),
        ("d", "shape", "1x2x2, not 2x2x2 (the mean file's)"),
    ]
    assert report.sources == ["train_lmdb"]


def test_records_smaller_than_crop_size(project):
    (project / "net.prototxt").write_text(
        NET.replace("scale: 0.5", "scale: 0.5 crop_size: 3").replace(
            ' mean_file: "mean.binaryproto"', ""
        )
    )
    report = scan("net.prototxt")
    assert [(f.key, f.detail) for f in report.findings if f.problem == "shape"] == [
        ("a", "2x2x2 is smaller than crop_size 3"),
        ("b", "2x2x2 is smaller than crop_size 3"),
        ("c", "2x2x2 is smaller than crop_size 3"),
        ("d", "1x2x2, not 2x2x2 (the first record's)"),
    ]


def test_test_phase_reads_the_hdf5_layer_with_its_tops(project):
    report = scan("net.prototxt", phase="TEST")
    assert [(f.key, f.detail) for f in report.findings] == [
        (
            "test.h5:1",
            "label 2.5 is not a whole number: SoftmaxWithLoss 'loss' takes class indices",
        ),
        ("test.h5:2", "label 3 >= 3, the number of classes of SoftmaxWithLoss 'loss'"),
    ]


def test_sources_carry_backend_transform_and_classes(project):
    (source,), notes = sources_from_net("net.prototxt", "TRAIN")
    assert (source.path, source.backend, source.layer) == ("train_lmdb", "lmdb", "data")
    assert (source.expect.num_classes, source.expect.ignore_label, source.expect.scale) == (
        3,
        7,
        0.5,
    )
    assert source.mean_file == "mean.binaryproto" and notes == []


def test_relative_sources_are_found_beside_the_net(project, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    report = scan(str(project / "net.prototxt"))
    assert report.sources == [str(project / "train_lmdb")]


def test_an_lmdb_source_that_is_a_file_is_refused_at_its_layer(project, capsys):
    # Caffe's mdb_env_open wants the folder: a net naming the data.mdb file never trains.
    (project / "net.prototxt").write_text(NET.replace("train_lmdb", "train_lmdb/data.mdb"))
    assert main(["scan", "net.prototxt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caffe-nantools scan: error: net.prototxt:1:1: layer 'data' reads ")
    assert "a file: Caffe opens an LMDB as the folder" in err and err.count("\n") == 1


def test_caffes_default_backend_is_leveldb(project):
    (project / "net.prototxt").write_text(NET.replace(" backend: LMDB", ""))
    (source,), _ = sources_from_net("net.prototxt", "TRAIN")
    assert source.backend == "leveldb"


def test_a_broken_or_bad_mean_file_is_a_finding(project):
    mean_file(project / "mean.binaryproto", np.full((2, 2, 2), np.nan))
    report = scan("net.prototxt")
    assert report.findings[0].problem == "mean" and report.findings[0].index == -1
    assert report.findings[0].detail == "mean.binaryproto: 8 NaN, 0 +inf, 0 -inf in 8 values"
    (project / "mean.binaryproto").unlink()
    report = scan("net.prototxt")
    assert (report.findings[0].problem, report.findings[0].field) == ("missing", "mean_file")


def test_mean_files_read_back(tmp_path):
    mean = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    mean_file(tmp_path / "m.binaryproto", mean)
    assert np.array_equal(read_mean(str(tmp_path / "m.binaryproto")), mean)


def test_a_net_without_data_layers_is_an_error(tmp_path, capsys):
    (tmp_path / "deploy.prototxt").write_text('layer { name: "d" type: "Input" top: "data" }\n')
    assert main(["scan", str(tmp_path / "deploy.prototxt")]) == 2
    assert "no Data, HDF5Data or ImageData layer in phase TRAIN" in capsys.readouterr().err


def test_mean_file_written_by_caffe_reads_back(caffe, tmp_path):
    from caffe.proto import caffe_pb2

    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([1, 3, 2, 2])
    blob.data.extend(np.arange(12, dtype=np.float32).tolist())
    (tmp_path / "m.binaryproto").write_bytes(blob.SerializeToString())
    assert np.array_equal(
        read_mean(str(tmp_path / "m.binaryproto")), np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    )
