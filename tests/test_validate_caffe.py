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


@pytest.mark.parametrize(
    "text, where, said",
    [
        (
            'layer {\n  name: "ip" type: "InnerProduct" bottom: "x" top: "y"\n'
            "  inner_product_param { num_ouput: 10 }\n}\n",
            (3, 25),
            "'num_ouput': Message type",
        ),
        (
            'layer {\n  name: "pool" type: "Pooling" bottom: "x" top: "y"\n'
            "  pooling_param {\n    pool: MAXX\n  }\n}\n",
            (4, 11),
            "(did you mean 'MAX'?)",
        ),
    ],
)
def test_lint_warns_of_what_this_caffes_parser_rejects_at_its_position(
    caffe, tmp_path, text, where, said
):
    from caffe_nantools.lint import lint, lint_files

    net = tmp_path / "typo.prototxt"
    net.write_text('input: "x"\n' + text)
    for report in (lint(str(net)), lint_files([str(net)])):
        found = [f for f in report if f.rule == "caffe-typo"]
        assert len(found) == 1 and found[0].severity == "warning"
        assert (found[0].line - 1, found[0].col) == where and said in found[0].message


@pytest.mark.parametrize(
    "text",
    [
        'layer { name: "a" type: "Input" top: "a" }\n',
        # A fork's field (py-faster-rcnn's): another Caffe's parser rejects it, no typo.
        'layer { name: "a" type: "Input" top: "a" smooth_l1_loss_param { sigma: 3 } }\n',
    ],
)
def test_lint_says_nothing_of_a_net_caffe_accepts_or_of_a_forks_field(caffe, tmp_path, text):
    from caffe_nantools.lint import lint_files

    net = tmp_path / "ok.prototxt"
    net.write_text(text)
    assert [f for f in lint_files([str(net)]) if f.rule == "caffe-typo"] == []
