"""Every benchmark still runs against today's library: each is run once at a tiny size (its
numbers mean nothing here, its targets are not checked), so that an API change cannot leave a
benchmark broken until someone measures."""

import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")

TINY = {
    "diagnose_speed": ["--megabytes", "2", "--small", "1", "--repeat", "1"],
    "watch_speed": ["--megabytes", "2", "--repeat", "1", "--runs", "1"],
    "prototxt_speed": ["--layers", "30", "--repeat", "1"],
    "report_size": ["--megabytes", "2"],
}
#: The ones that measure Caffe itself beside the library.
TINY_WITH_CAFFE = {
    "scan_speed": ["--records", "300", "--hdf5-mb", "2", "--rss-mb", "1", "2"],
    "hunt_speed": ["--runs", "1", "--lenet-iters", "2", "--caffenet-iters", "0"],
    "check_cost": ["--batch", "1", "--rounds", "1"],
    "fault_bench": ["--only", "nan_record_lmdb"],
    "snapshot_hunt": ["--snapshot-at", "20", "--window", "10"],
}


def run(name, args):
    done = subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, f"{name}.py"), *args, "--no-check"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stdout.strip()


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_benchmark_runs(name):
    run(name, TINY[name])


@pytest.mark.parametrize("name", sorted(TINY_WITH_CAFFE))
def test_a_benchmark_of_caffe_runs(caffe, name):
    run(name, TINY_WITH_CAFFE[name])


def test_every_benchmark_is_run_here():
    names = {f[:-3] for f in os.listdir(BENCHMARKS) if f.endswith(".py")}
    assert names - {"targets", "original_layer"} == set(TINY) | set(TINY_WITH_CAFFE)
