"""The fault benchmark's subset that runs in the suite, with real Caffe: thirteen cases, one
seed, one of each cause class (bad records, a silent label fault, aborts in setup (a layer's
settings, the labels' shape) and in training, lr policy, a config fault, single-layer numerics, Python layers, an explosion and a
healthy run). It asserts that the benchmark completes and that its JSON holds a figure per
case and in total; it does NOT assert that hunt meets the targets yet (some cases are missed
today, which is what the benchmark is for)."""

import json
import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
SUBSET = [
    "nan_record_lmdb",
    "inf_row_hdf5",
    "labels_from_one",
    "corrupt_record",
    "one_hot_labels",
    "batchnorm_lr_mult",
    "no_lr_policy",
    "poly_without_max_iter",
    "pooling_stride_over_kernel",
    "log_of_relu",
    "python_loss_normalizer",
    "lr_too_high",
    "healthy_ignore_label",
]


def test_the_subset_runs_and_reports_every_case(caffe, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH, "fault_bench.py"),
            "--json",
            "--no-check",
            "--only",
            *SUBSET,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert [row["case"] for row in result["cases"]] == sorted(SUBSET)
    for row in result["cases"]:
        assert row["cause"] and row["twin_cause"] and row["seconds"] > 0, row
        assert isinstance(row["cause_ok"], bool) and isinstance(row["twin_ok"], bool), row
    totals = result["totals"]
    assert totals["detection"][1] == len(SUBSET) - 1  # all but the healthy case
    assert (
        "TARGET MISSED" in done.stderr or "fix rate" in done.stderr
    )  # the targets are printed beside
