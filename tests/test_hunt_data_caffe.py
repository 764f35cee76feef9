"""hunt and scan with real Caffe on data that breaks a loss layer's contract as a whole: class
labels written 1..K, 'void' pixels without ignore_label, 0/255 targets of a sigmoid
cross-entropy, one-hot label rows. Each is one fault of the source, fixed as a whole (a net
setting or a relabelled/rescaled copy, verified by training again and scanning the fixed net's
data), never by dropping most of the records; a few bad labels stay the records' own."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from caffe_nantools.datum import parse_header
from caffe_nantools.hunt import hunt
from caffe_nantools.scan import scan
from hunt_nets import classifier, float_store, lmdb_layer, solver
from needs import need
from stores import read_store


def hdf5(folder, name, **datasets):
    h5py = need("h5py")
    with h5py.File(str(folder / name), "w") as f:
        for key, values in datasets.items():
            f.create_dataset(key, data=values)
    (folder / f"{name}.txt").write_text(f"{name}\n")
    return f"{name}.txt"


@pytest.mark.parametrize("classes, layer_name", [(3, "data"), (5, "digits")])
def test_labels_from_one_are_relabelled_not_dropped(caffe, here, classes, layer_name):
    n = 40
    float_store(here / "train_lmdb", n=n, labels={i: i % classes + 1 for i in range(n)})
    (here / "net.prototxt").write_text(
        classifier(lmdb_layer(layer_name, "train_lmdb"), classes=classes)
    )
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("bad_input", layer_name)
    assert v.breach.bound.type == "SoftmaxWithLoss" and "shifted by one" in v.breach.what
    assert {r.key for r in v.records} == {
        f"{i:08d}" for i in range(n) if i % classes + 1 == classes
    }
    assert "as a copy with label - 1" in fix.change and fix.verified
    copy = fix.change.rsplit(": ", 1)[1]
    labels = [parse_header(value).label for _, value in read_store(copy, "lmdb")]
    assert len(labels) == n and sorted(set(labels)) == list(range(classes))


def test_a_few_bad_labels_are_still_dropped_as_the_records_own(caffe, here):
    float_store(here / "train_lmdb", n=60, labels={11: 3, 40: 7})
    (here / "net.prototxt").write_text(classifier(lmdb_layer("data", "train_lmdb")))
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "bad_input" and v.breach is None
    assert "without its 2 bad records" in fix.change and fix.verified


SEGMENTER = textwrap.dedent("""\
    layer {{ name: "pixels" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{source}" batch_size: 4 }} }}
    layer {{ name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param {{ num_output: 3 kernel_size: 1 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "seg_loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "seg_loss" {ignore} }}
    layer {{ name: "seg_acc" type: "Accuracy" bottom: "score" bottom: "label" top: "seg_acc" {accuracy} }}
    """)


@pytest.mark.parametrize("void", [255, 9])
def test_void_pixels_without_ignore_label_are_fixed_by_ignore_label(caffe, here, void):
    rng = np.random.RandomState(void)
    labels = rng.randint(0, 3, size=(24, 1, 5, 5)).astype(np.float32)
    labels[rng.rand(24, 1, 5, 5) < 0.1] = void
    source = hdf5(here, "seg.h5", data=rng.randn(24, 2, 5, 5).astype(np.float32), label=labels)
    (here / "net.prototxt").write_text(SEGMENTER.format(source=source, ignore="", accuracy=""))
    report = hunt(solver(here, max_iter=12), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("bad_input", "pixels")
    assert fix.verified, fix
    fixed = Path(fix.files["net"]).read_text()
    assert f"ignore_label: {void}" in fixed and fixed.count("ignore_label") == 2
    assert "without" not in fix.change


def test_void_pixels_the_loss_ignores_are_healthy(caffe, here):
    labels = np.random.RandomState(2).randint(0, 3, size=(24, 1, 5, 5)).astype(np.float32)
    labels[:, :, 0, :] = 255
    source = hdf5(here, "seg.h5", data=np.ones((24, 2, 5, 5), np.float32), label=labels)
    ignore = "loss_param { ignore_label: 255 }"
    (here / "net.prototxt").write_text(
        SEGMENTER.format(
            source=source, ignore=ignore, accuracy="accuracy_param { ignore_label: 255 }"
        )
    )
    report = hunt(solver(here, max_iter=8), workdir="hunt")
    assert report.verdict.cause == "none" and report.return_code == 0


TAGGER = textwrap.dedent("""\
    layer {{ name: "rows" type: "HDF5Data" top: "data" top: "tags" hdf5_data_param {{ source: "{source}" batch_size: 8 }} }}
    layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param {{ num_output: {tags} weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "tag_loss" type: "SigmoidCrossEntropyLoss" bottom: "fc" bottom: "tags" top: "tag_loss" }}
    """)


@pytest.mark.parametrize("tags", [3, 5])
def test_sigmoid_targets_of_0_and_255_are_rescaled_and_named_by_the_layer(caffe, here, tags):
    rng = np.random.RandomState(tags)
    y = (rng.rand(48, tags) < 0.4).astype(np.float32) * 255
    source = hdf5(here, "tags.h5", data=rng.randn(48, 6).astype(np.float32), tags=y)
    (here / "net.prototxt").write_text(TAGGER.format(source=source, tags=tags))
    report = scan("net.prototxt", mode="net")
    (contract,) = [f for f in report.findings if f.problem == "contract"]
    assert contract.key == "tag_loss" and "0..255" in contract.detail
    report = hunt(solver(here, max_iter=10), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert v.cause == "bad_input" and v.layer == "rows"
    assert "(tags) / 255" in fix.change or "tags / 255" in fix.change
    assert fix.verified


def test_one_hot_label_rows_are_bad_input_in_the_data_layer_not_only_an_abort(caffe, here):
    rng = np.random.RandomState(7)
    labels = np.eye(4)[np.arange(32) % 4].astype(np.float32)
    source = hdf5(here, "oh.h5", data=rng.randn(32, 6).astype(np.float32), label=labels)
    data = (
        f'layer {{ name: "in" type: "HDF5Data" top: "data" top: "label" '
        f'hdf5_data_param {{ source: "{source}" batch_size: 8 }} }}\n'
    )
    (here / "net.prototxt").write_text(classifier(data, classes=4))
    report = hunt(solver(here, max_iter=6), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.layer) == ("bad_input", "in")
    assert "one-hot" in v.breach.what and "argmax" in fix.change and fix.verified
