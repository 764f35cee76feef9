"""Caffe's own parser as a second opinion on edited files."""

import pytest

from caffe_nantools.prototxt.validate import CaffeRejectsError, validate


def test_caffe_accepts_a_net_and_a_solver(caffe):
    assert validate('layer { name: "a" type: "Input" top: "a" }', "net.prototxt") is True
    assert (
        validate("base_lr: 0.1\ndebug_info: true\n", "solver.prototxt", "SolverParameter") is True
    )


def test_caffe_rejects_an_unknown_field_with_its_position(caffe):
    with pytest.raises(CaffeRejectsError) as info:
        validate('layer {\n  name: "a"\n  colour: 1\n}\n', "net.prototxt")
    assert str(info.value).startswith("net.prototxt: Caffe's parser rejects it: 3:3 : ")
    assert "colour" in str(info.value)


def test_without_pycaffe_nothing_is_validated(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "caffe", None)
    assert validate("not even { prototxt") is False


def test_inject_notes_when_caffe_rejects_the_original_too(caffe, tmp_path):
    from caffe_nantools.inject import inject

    net = tmp_path / "intel.prototxt"
    net.write_text('bn_stats_batch_size: 32\nlayer { name: "a" type: "Input" top: "a" }\n')
    report = inject(str(net), dry_run=True)
    assert len(report.net.added) == 1
    assert report.notes == [
        f"not checked against Caffe's schema, which rejects the original too ({net}: Caffe's "
        'parser rejects it: 1:1 : Message type "caffe.NetParameter" has no field named "bn_stats_batch_size".)'
    ]
