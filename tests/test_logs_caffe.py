"""log2csv on a log written by Caffe itself."""

from caffe_nantools.logs import read_events, tables_from_events
from caffe_train import caffe_train
from nets import PHASED_NET


def test_tables_of_a_real_caffe_train_log(caffe, tmp_path):
    (tmp_path / "net.prototxt").write_text(PHASED_NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\ntest_iter: 1\ntest_interval: 2\nbase_lr: 0.01\nlr_policy: "fixed"\n'
        'display: 1\nmax_iter: 4\nsnapshot_prefix: "snap"\nsolver_mode: CPU\n'
    )
    log = caffe_train(tmp_path).log
    assert "Optimization Done." in log
    tables = tables_from_events(read_events(log.splitlines(True)))
    assert [r["NumIters"] for r in tables.train] == [0, 1, 2, 3, 4]
    assert [r["NumIters"] for r in tables.test] == [0, 2, 4]
    assert tables.train_columns == ["loss"] and tables.test_columns == ["accuracy", "loss"]
    assert all(r.get("LearningRate") == 0.01 for r in tables.train[:4])
    assert [r["Seconds"] for r in tables.train] == sorted(r["Seconds"] for r in tables.train)
