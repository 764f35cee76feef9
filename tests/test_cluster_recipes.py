"""The README's recipes for scanning a huge store on a cluster, run as written: the Slurm array
(one `scan --shard K/N --json` per task, then `merge`) and the Dask one (LocalCluster standing in
for a cluster). Both must find what one whole scan finds."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import caffe_nantools
from caffe_nantools.scan import ScanReport, merge_files, merge_reports, scan
from stores import planted, write_store
from needs import need

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(after):
    """The lines of the first ```sh block after the text ``after``, comments dropped."""
    text = README.read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index(after) :], re.S).group(1)
    return [
        line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def found(report):
    return sorted((f.index, f.key, f.problem) for f in report.findings)


@pytest.fixture
def store(tmp_path):
    need("lmdb")
    records, expected = planted(300, seed=3)
    write_store(tmp_path / "train_lmdb", "lmdb", records)
    return tmp_path / "train_lmdb", sorted(expected)


@pytest.fixture
def command(tmp_path):
    """`caffe-nantools` on PATH, running this checkout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "caffe-nantools").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m caffe_nantools "$@"\n'
    )
    (bin_dir / "caffe-nantools").chmod(0o755)
    package_root = os.path.dirname(os.path.dirname(caffe_nantools.__file__))
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=package_root)


def test_the_slurm_array_recipe_finds_what_one_scan_finds(tmp_path, store, command):
    path, _ = store
    scan_line, merge_line = readme_block("A huge store can be scanned in pieces")
    assert "${SLURM_ARRAY_TASK_ID}/16" in scan_line and merge_line.startswith(
        "caffe-nantools merge"
    )
    scan_line = scan_line.replace("/data/train_lmdb", str(path))
    for task in range(16):  # as sbatch --array=0-15 runs them: one shell per task, in any order
        env = dict(command, SLURM_ARRAY_TASK_ID=str((task * 7) % 16))
        done = subprocess.run(
            ["sh", "-c", scan_line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode in (0, 1), done.stderr
    parts = sorted(str(p) for p in tmp_path.glob("part-*.json"))
    assert len(parts) == 16
    merged = subprocess.run(
        ["sh", "-c", merge_line],
        cwd=tmp_path,
        env=command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merged.returncode == 1 and merged.stderr == ""
    assert found(merge_files(parts)) == found(scan(str(path)))
    os.remove(parts[5])
    missing = subprocess.run(
        ["sh", "-c", merge_line],
        cwd=tmp_path,
        env=command,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "missing" in missing.stderr


def test_the_dask_recipe_finds_what_one_scan_finds(store):
    distributed = need("distributed", "dask[distributed]", required=False)
    path, expected = store
    path = str(path)
    recipe = README.read_text().replace("\n", " ")
    assert "client.map(lambda k: scan(path, shard=(k, 16)).to_dict(), range(16))" in recipe
    assert "merge_reports(ScanReport.from_dict(d) for d in results)" in recipe
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        results = client.gather(
            client.map(lambda k: scan(path, shard=(k, 16)).to_dict(), range(16))
        )
    merged = merge_reports(ScanReport.from_dict(d) for d in results)
    assert found(merged) == found(scan(path))
    assert {index for index, _, _ in found(merged)} == {index for index, _ in expected}
