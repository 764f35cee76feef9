"""Checker: what the check layer does with a bad blob, tested without Caffe."""

import io
import json
import os
import re

import numpy as np
import pytest

from caffe_nantools import CheckConfigError, NonFiniteError
from caffe_nantools.checking import Checker, parse_param_str


def make(param_str="", n_blobs=1, phase="TRAIN"):
    log = io.StringIO()
    return Checker(parse_param_str(param_str), n_blobs, phase, log=log), log


def batch(bad=(), value=np.nan, shape=(4, 3)):
    x = np.ones(shape, np.float32)
    for i in bad:
        x[i, 1] = value
    return x


def test_clean_blobs_pass_silently():
    checker, log = make()
    assert checker.start_forward()
    checker.check("forward", [batch()])
    checker.check("backward", [batch()])
    assert log.getvalue() == ""


def test_error_names_layer_blob_pass_phase_iteration_counts_and_samples():
    checker, log = make("name=check_fc blobs=data,fc", n_blobs=2, phase="TEST")
    checker.start_forward()
    checker.start_forward()
    fc = batch(bad=[1, 3])
    fc[0, 0] = -np.inf
    with pytest.raises(NonFiniteError) as info:
        checker.check("forward", [batch(), fc])
    e = info.value
    assert (e.layer, e.blob, e.pass_, e.phase, e.iteration) == (
        "check_fc",
        "fc",
        "forward",
        "TEST",
        1,
    )
    assert (e.nan, e.posinf, e.neginf, e.count) == (2, 0, 1, 12)
    assert (e.bad_samples, e.n_bad_samples) == ((0, 1, 3), 3)
    assert (e.finite_min, e.finite_max) == (1.0, 1.0)
    assert isinstance(e, RuntimeError)
    assert str(e) == (
        "check 'check_fc': blob 'fc' forward data at iteration 1 (TEST): 2 NaN, 0 +inf, 1 -inf "
        "in 12 values; bad samples [0, 1, 3] (3 of 4); finite values in [1, 1]"
    )


@pytest.mark.parametrize(
    "param_str, writer",
    [
        ("name=nancheck/x@relu2 blobs=x writer=conv@2", "conv@2"),  # the key, not the name
        ('{"name": "mine", "blobs": ["x"], "writer": "a b"}', "a b"),
        ("name=nancheck/x@relu2 blobs=x", None),  # a check of an older inject: no key
    ],
)
def test_the_error_carries_the_writer_the_param_str_names(param_str, writer):
    checker, _ = make(param_str)
    checker.start_forward()
    with pytest.raises(NonFiniteError) as info:
        checker.check("backward", [batch(bad=[2])])
    assert (info.value.blob, info.value.writer) == ("x", writer)
    assert info.value.to_dict()["writer"] == writer


def test_raise_writes_the_message_to_the_log_first_in_glog_format():
    checker, log = make("name=c")
    checker.start_forward()
    with pytest.raises(NonFiniteError) as info:
        checker.check("forward", [batch(bad=[2])])
    line = log.getvalue()
    assert re.match(r"E\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ check_finite\.py:0\] ", line)
    assert line.rstrip("\n").endswith(f"caffe-nantools NonFiniteError: {info.value}")


def test_backward_reports_diff_and_skips_blobs_without_propagate_down():
    checker, log = make("blobs=a,b", n_blobs=2)
    checker.start_forward()
    checker.check("backward", [None, batch()])
    with pytest.raises(NonFiniteError) as info:
        checker.check("backward", [None, batch(bad=[0], value=np.inf)])
    assert info.value.blob == "b" and info.value.pass_ == "backward"
    assert "blob 'b' backward diff at iteration 0" in str(info.value)


def test_warn_logs_every_bad_blob_and_goes_on():
    checker, log = make("name=w on=warn blobs=x,y", n_blobs=2)
    checker.start_forward()
    checker.check("forward", [batch(bad=[0]), batch(bad=[3], value=-np.inf)])
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("W") and "caffe-nantools warning: check 'w': blob 'x'" in lines[0]
    assert "blob 'y'" in lines[1] and "1 -inf" in lines[1]


def test_unnamed_blobs_are_called_by_bottom_index():
    checker, _ = make(n_blobs=3)
    checker.start_forward()
    with pytest.raises(NonFiniteError) as info:
        checker.check("forward", [batch(), batch(), batch(bad=[1])])
    assert info.value.blob == "bottom[2]"


def test_every_checks_only_every_nth_pass_in_both_directions():
    checker, _ = make("every=3")
    due = []
    for _ in range(7):
        due.append((checker.start_forward(), checker.backward_due))
    assert due == [(i % 3 == 0, i % 3 == 0) for i in range(7)]


@pytest.mark.parametrize(
    "check, forward, backward",
    [("forward", True, False), ("backward", False, True), ("both", True, True)],
)
def test_check_selects_the_passes(check, forward, backward):
    checker, _ = make(f"check={check}")
    assert checker.start_forward() is forward
    assert checker.backward_due is backward


def test_max_abs_raises_on_large_finite_values():
    checker, _ = make("max_abs=100")
    checker.start_forward()
    checker.check("forward", [batch() * 100])
    with pytest.raises(NonFiniteError) as info:
        checker.check("forward", [batch(bad=[2], value=1e5)])
    assert info.value.stats.over_max_abs == 1 and info.value.stats.nonfinite == 0
    assert "1 finite values beyond max_abs=100" in str(info.value)
    assert info.value.bad_samples == (2,)


def test_dump_writes_blobs_and_a_json_report_then_raises(tmp_path):
    dump_dir = tmp_path / "dumps"
    checker, log = make(f"name=nancheck/fc on=dump dump_dir={dump_dir} blobs=fc,data", n_blobs=2)
    checker.start_forward()
    checker.start_forward()
    fc, data = batch(bad=[1]), batch(bad=[0, 2], value=np.inf)
    with pytest.raises(NonFiniteError):
        checker.check("forward", [fc, data])
    names = sorted(os.listdir(dump_dir))
    assert names == [
        "nancheck_fc-TRAIN-iter1-forward-data.npy",
        "nancheck_fc-TRAIN-iter1-forward-fc.npy",
        "nancheck_fc-TRAIN-iter1-forward.json",
    ]
    np.testing.assert_array_equal(np.load(dump_dir / names[1]), fc)
    np.testing.assert_array_equal(np.load(dump_dir / names[0]), data)
    report = json.loads((dump_dir / names[2]).read_text())
    first, second = report["errors"]
    assert (first["blob"], first["pass"], first["iteration"], first["nan"]) == (
        "fc",
        "forward",
        1,
        1,
    )
    assert (second["blob"], second["posinf"], second["bad_samples"]) == ("data", 2, [0, 2])
    assert first["file"] == str(dump_dir / names[1])
    assert str(dump_dir / names[2]) in log.getvalue()


def test_a_failed_dump_leaves_no_partial_file_and_still_raises_the_finding(tmp_path, monkeypatch):
    checker, log = make(f"on=dump dump_dir={tmp_path}")
    checker.start_forward()

    def broken_save(f, x):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(NonFiniteError):
        checker.check("forward", [batch(bad=[0])])
    assert os.listdir(tmp_path) == []
    assert f"could not dump the bad blobs to {tmp_path}: disk full" in log.getvalue()


def test_blob_names_must_match_the_bottom_count():
    with pytest.raises(
        CheckConfigError, match="names 1 blobs \\(fc\\) but the layer has 2 bottoms"
    ):
        make("blobs=fc", n_blobs=2)


@pytest.mark.parametrize("dump_dir", ["nul\x00byte", "nested\x00/deeper"])
def test_a_dump_dir_that_is_no_path_still_raises_the_finding(tmp_path, dump_dir):
    import json

    checker, log = make(
        json.dumps({"on": "dump", "dump_dir": str(tmp_path / dump_dir), "name": "c"})
    )
    checker.start_forward()
    with pytest.raises(NonFiniteError) as info:
        checker.check("forward", [batch(bad=[1])])
    assert info.value.layer == "c" and info.value.n_bad_samples == 1
    assert "could not dump the bad blobs to " in log.getvalue() and "\x00" not in log.getvalue()
    assert "\\x00" in log.getvalue()  # the NUL shown as an escape
    assert os.listdir(tmp_path) == []
