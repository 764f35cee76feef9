"""The contracts of loss and metric layers on their inputs (their entries in the layer types'
table, caffe_nantools.layertypes), and scan's findings on data that breaks them: a few bad
records are theirs (dropped by --write-clean), a pattern over many is one fault of the source,
fixed as a whole (a net setting, or a relabelled or rescaled copy)."""

import textwrap

import numpy as np
import pytest

from caffe_nantools.datum import parse_header, with_label
from caffe_nantools.layertypes import TYPES
from caffe_nantools.prototxt.net import Net, NetState
from caffe_nantools.scan import scan
from caffe_nantools.scan.contracts import (
    BINARY,
    CLASS,
    SCALE,
    UNIT,
    Bound,
    Tally,
    bound_contracts,
    check_rows,
    scale_note,
    systematic_breach,
)
from datums import datum
from needs import need
from stores import read_store, write_store

NET = textwrap.dedent("""\
    layer {{ name: "in" type: "HDF5Data" top: "data" top: "{label}" hdf5_data_param {{ source: "list.txt" batch_size: 4 }} }}
    layer {{ name: "{scores}" type: "InnerProduct" bottom: "data" top: "{scores}" inner_product_param {{ num_output: {k} }} }}
    layer {{ name: "{loss}" type: "{kind}" bottom: "{scores}" bottom: "{label}" top: "{loss}" {extra} }}
    """)


def net_of(kind="SoftmaxWithLoss", k=4, label="label", loss="loss", scores="scores", extra=""):
    return Net.parse(NET.format(kind=kind, k=k, label=label, loss=loss, scores=scores, extra=extra))


def tallied(rows, bound):
    tally = Tally()
    found = check_rows(np.asarray(rows, np.float64), bound, tally)
    return found, tally


def classes(k=4, one_per_sample=False, **kw):
    return Bound(
        "loss",
        "SoftmaxWithLoss",
        "label",
        CLASS,
        classes=k,
        one_per_sample=one_per_sample,
        scores="ip",
        ignore_block="loss_param",
        **kw,
    )


def test_every_loss_and_metric_layer_of_caffe_has_its_contract_in_the_table():
    kinds = {t: [r.kind for r in entry.contract] for t, entry in TYPES.items()}
    assert kinds["SoftmaxWithLoss"] == kinds["Accuracy"] == kinds["HingeLoss"] == [CLASS]
    assert kinds["SigmoidCrossEntropyLoss"] == [UNIT]
    assert kinds["ContrastiveLoss"] == [BINARY]
    assert kinds["MultinomialLogisticLoss"] == kinds["InfogainLoss"] == [UNIT, CLASS]
    assert kinds["EuclideanLoss"] == [SCALE, SCALE]


@pytest.mark.parametrize("loss, label, k", [("loss", "label", 4), ("xent", "tags", 7)])
def test_the_net_binds_each_contract_to_the_blob_it_reads(loss, label, k):
    bound = bound_contracts(
        net_of(loss=loss, label=label, k=k, extra="loss_param { ignore_label: 255 }"),
        NetState("TRAIN"),
    )
    (b,) = bound[label]
    assert (b.layer, b.kind, b.classes, b.ignore, b.one_per_sample) == (loss, CLASS, k, 255, True)
    (p,) = bound_contracts(net_of("SigmoidCrossEntropyLoss", label=label), NetState("TRAIN"))[label]
    assert (p.kind, p.name) == (UNIT, "SigmoidCrossEntropyLoss 'loss'")


def test_a_record_past_the_classes_names_the_layer_whose_contract_it_breaks():
    found, _ = tallied([[0], [3], [4], [-1], [1.5]], classes())
    assert found == [
        (2, "label 4 >= 4, the number of classes of SoftmaxWithLoss 'loss'"),
        (3, "label -1 is negative: SoftmaxWithLoss 'loss' takes class indices"),
        (4, "label 1.5 is not a whole number: SoftmaxWithLoss 'loss' takes class indices"),
    ]


def test_every_value_of_a_label_map_is_a_label_not_only_the_first():
    maps = np.zeros((3, 16))
    maps[1, 11] = 9
    found, _ = tallied(maps, classes(k=3))
    assert [row for row, _ in found] == [1]


@pytest.mark.parametrize("k, n", [(3, 60), (5, 200)])
def test_labels_from_one_are_one_shift_of_the_source_not_a_drop(k, n):
    _, tally = tallied((np.arange(n) % k + 1)[:, None], classes(k=k))
    breach = systematic_breach(tally, classes(k=k), "train_lmdb")
    assert (
        breach.what
        == f"labels 1..{k} where SoftmaxWithLoss 'loss' wants 0..{k - 1}: shifted by one"
    )
    assert (breach.transform.offset, breach.transform.divisor) == (1, 1)
    assert breach.records == n // k


def test_a_few_bad_labels_are_the_records_own_and_no_breach_of_the_source():
    labels = np.arange(300) % 4
    labels[[7, 150]] = 4
    _, tally = tallied(labels[:, None], classes(k=4))
    assert tally.breached == 2 and systematic_breach(tally, classes(k=4), "s") is None


@pytest.mark.parametrize("void", [255, 11, -1])
def test_one_void_value_over_many_records_is_the_ignore_label_of_every_reader(void):
    maps = np.random.RandomState(void % 7).randint(0, 3, size=(40, 9)).astype(float)
    maps[::3, 2] = void
    accuracy = Bound("acc", "Accuracy", "label", CLASS, classes=3, ignore_block="accuracy_param")
    _, tally = tallied(maps, classes(k=3))
    breach = systematic_breach(tally, classes(k=3), "seg.h5", [accuracy])
    assert breach.setting == {
        "loss": ("loss_param.ignore_label", f"{void}"),
        "acc": ("accuracy_param.ignore_label", f"{void}"),
    }
    assert breach.transform is None and f"{void}" in breach.what


def test_a_void_value_the_loss_ignores_is_no_finding_at_all():
    maps = np.zeros((20, 4))
    maps[:, 0] = 255
    found, tally = tallied(maps, classes(k=3, ignore=255.0))
    assert found == [] and systematic_breach(tally, classes(k=3, ignore=255.0), "s") is None


def test_labels_past_a_too_small_num_output_call_for_more_outputs():
    _, tally = tallied((np.arange(100) % 10)[:, None], classes(k=6, one_per_sample=True))
    breach = systematic_breach(tally, classes(k=6, one_per_sample=True), "s")
    assert breach.setting == {"ip": ("inner_product_param.num_output", "10")}


def test_one_hot_rows_are_one_fault_fixed_by_their_argmax():
    rows = np.eye(5)[np.arange(30) % 5]
    found, tally = tallied(rows, classes(k=5, one_per_sample=True))
    breach = systematic_breach(tally, classes(k=5, one_per_sample=True), "s")
    assert found == [] and breach.transform.argmax
    assert breach.transform.apply(rows.astype(np.float32)).tolist() == list(np.arange(30) % 5)


@pytest.mark.parametrize("tags", [4, 6])
def test_sigmoid_targets_of_0_and_255_are_rescaled_not_dropped(tags):
    sigmoid = Bound("xent", "SigmoidCrossEntropyLoss", "tags", UNIT)
    y = (np.random.RandomState(tags).rand(50, tags) < 0.4) * 255.0
    found, tally = tallied(y, sigmoid)
    assert found[0][1] == "target 255 is outside [0, 1], as SigmoidCrossEntropyLoss 'xent' requires"
    breach = systematic_breach(tally, sigmoid, "tags.h5")
    assert breach.transform.divisor == 255 and "0..255" in breach.what
    assert systematic_breach(tallied(y / 255, sigmoid)[1], sigmoid, "tags.h5") is None


def test_contrastive_similarities_of_minus_one_and_one_are_mapped_to_0_and_1():
    pair = Bound("c", "ContrastiveLoss", "sim", BINARY)
    _, tally = tallied((np.arange(40) % 2 * 2 - 1)[:, None], pair)
    t = systematic_breach(tally, pair, "s").transform
    assert t.apply(np.array([-1.0, 1.0])).tolist() == [0, 1]


def test_raw_pixel_targets_of_a_regression_are_a_note_on_their_scale_not_a_finding():
    l2 = Bound("loss_box", "EuclideanLoss", "boxes", SCALE)
    found, tally = tallied(np.random.RandomState(0).uniform(0, 480, (64, 4)), l2)
    assert found == [] and systematic_breach(tally, l2, "s") is None
    assert "normalize the targets" in scale_note(tally, l2, "train.h5")
    small = tallied(np.random.RandomState(0).randn(64, 4) * 3, l2)[1]
    assert scale_note(small, l2, "train.h5") is None


def test_a_datum_takes_a_new_label_in_place_of_its_old_one():
    for old, new in [(3, 2), (0, 7), (5, -1), (200, 1)]:
        record = datum(np.ones((1, 2, 2), np.float32), label=old)
        changed = with_label(record, new)
        header, before = parse_header(changed), parse_header(record)
        assert header.label == new
        assert (header.channels, header.height, header.width) == (1, 2, 2)
        assert header.layout.count == before.layout.count


def hdf5_source(folder, **datasets):
    h5py = need("h5py")
    with h5py.File(str(folder / "d.h5"), "w") as f:
        for name, values in datasets.items():
            f.create_dataset(name, data=values)
    (folder / "list.txt").write_text("d.h5\n")


def test_scan_writes_the_relabelled_copy_and_keeps_every_record(here):
    x = np.random.RandomState(1).randn(60, 3).astype(np.float32)
    y = (np.arange(60) % 4 + 1).astype(np.float32)
    y[17] = 1.5  # a record of its own fault beside the pattern
    hdf5_source(here, data=x, label=y)
    (here / "net.prototxt").write_text(
        NET.format(kind="SoftmaxWithLoss", k=4, label="label", loss="loss", scores="ip", extra="")
    )
    report = scan("net.prototxt", write_clean="clean.txt")
    (contract,) = [f for f in report.findings if f.problem == "contract"]
    assert (contract.key, contract.field, contract.index) == ("loss", "label", -1)
    assert "shifted by one" in contract.detail and "label - 1" in contract.detail
    h5py = need("h5py")
    (copy,) = (here / "clean.txt").read_text().split()  # a list source: a list of copies
    with h5py.File(copy, "r") as f:
        labels = f["label"][()]
    assert len(labels) == 59 and labels.min() == 0 and labels.max() == 3
    assert any("label - 1" in n and "1 bad ones left out" in n for n in report.notes)


def test_scan_of_an_lmdb_relabels_its_datums(here):
    need("lmdb")
    records = [
        (f"{i:05d}".encode(), datum(np.zeros((1, 1, 2), np.float32), label=i % 3 + 1))
        for i in range(30)
    ]
    write_store(str(here / "train_lmdb"), "lmdb", records)
    (here / "net.prototxt").write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "train_lmdb" backend: LMDB batch_size: 5 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
    )
    scan("net.prototxt", write_clean="fixed_lmdb")
    copied = read_store(str(here / "fixed_lmdb"), "lmdb")
    assert [parse_header(v).label for _, v in copied] == [i % 3 for i in range(30)]


def test_a_void_label_without_ignore_label_is_one_finding_and_the_copy_keeps_the_records(here):
    maps = np.random.RandomState(4).randint(0, 3, size=(30, 1, 3, 3)).astype(np.float32)
    maps[:, 0, 1, 1] = 255
    hdf5_source(here, data=np.ones((30, 2, 3, 3), np.float32), label=maps)
    (here / "net.prototxt").write_text(
        'layer { name: "in" type: "HDF5Data" top: "data" top: "label" '
        'hdf5_data_param { source: "list.txt" batch_size: 4 } }\n'
        'layer { name: "score" type: "Convolution" bottom: "data" top: "score" '
        "convolution_param { num_output: 3 kernel_size: 1 } }\n"
        'layer { name: "seg_loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" '
        'top: "seg_loss" }\n'
    )
    report = scan("net.prototxt", write_clean="kept.txt")
    (contract,) = [f for f in report.findings if f.problem == "contract"]
    assert "loss_param { ignore_label: 255 } in 'seg_loss'" in contract.detail
    assert report.breaches[0].setting == {"seg_loss": ("loss_param.ignore_label", "255")}
    assert any("30 records, 0 bad ones left out" in n for n in report.notes)
