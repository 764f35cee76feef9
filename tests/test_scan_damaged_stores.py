"""Damaged and odd stores: reading never changes them, and damage is a finding or one line.

A LevelDB is read through a private copy (LevelDB's recovery rewrites the folder it opens and
drops the records of a damaged .log without a word); a truncated or damaged LMDB is one line,
never a SIGBUS, in one process as in several."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.scan import ScanError, scan
from datums import datum
from stores import damage_the_log, leveldb_with_tables_and_a_log, planted, write_store
from needs import need

lmdb = need("lmdb")
plyvel = need("plyvel")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def state(folder):
    """Everything reading could change: each file's bytes and mtime, and the folder's."""
    files = {
        e.name: (hashlib.sha256(Path(e.path).read_bytes()).hexdigest(), e.stat().st_mtime_ns)
        for e in os.scandir(folder)
    }
    return files, os.stat(folder).st_mtime_ns


@pytest.fixture(autouse=True)
def own_tmpdir(tmp_path, monkeypatch):
    """The private copies go here, to see that none is left behind."""
    folder = tmp_path / "TMPDIR"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("split", [40, 250])
def test_scanning_a_leveldb_leaves_its_folder_byte_for_byte_as_it_was(tmp_path, own_tmpdir, split):
    records, expected = planted()
    path = tmp_path / "db"
    leveldb_with_tables_and_a_log(path, records[:split], records[split:])
    before = state(path)
    report = scan(str(path))
    assert [(f.index, f.problem) for f in report.findings] == sorted(expected)
    assert report.summaries[str(path)].records == len(records)
    scan(str(path), write_clean=str(tmp_path / "clean"), workers=2)
    assert state(path) == before
    assert os.listdir(own_tmpdir) == []


@pytest.mark.parametrize("where", [0.3, 0.7])
def test_a_damaged_log_is_a_finding_naming_the_file_and_what_was_dropped(tmp_path, capsys, where):
    records = [
        (f"k{i:05d}".encode(), datum(np.full((2, 3, 3), i, np.float32), label=1))
        for i in range(1500)
    ]
    path = tmp_path / "db"
    leveldb_with_tables_and_a_log(path, records[:500], records[500:])
    log = damage_the_log(path, where)
    before = state(path)
    assert main(["scan", str(path), "--json"]) == 1
    import json

    report = json.loads(capsys.readouterr().out)
    corrupt = [f for f in report["findings"] if f["problem"] == "corrupt"]
    assert corrupt and all(f["key"] == log and "bytes dropped" in f["detail"] for f in corrupt)
    assert report["summary"][str(path)]["records"] < 1500  # what recovery could not read is gone
    assert state(path) == before  # the damaged .log is still there, for whoever can repair it


def test_a_damaged_table_is_one_line_saying_from_where_records_are_lost(tmp_path, capsys):
    records = [
        (f"k{i:05d}".encode(), datum(np.full((2, 3, 3), i, np.float32))) for i in range(3000)
    ]
    path = tmp_path / "db"
    leveldb_with_tables_and_a_log(path, records, [])
    table = max(
        (e for e in os.scandir(path) if e.name.endswith(".ldb")), key=lambda e: e.stat().st_size
    )
    data = bytearray(Path(table.path).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"\x00" * 8
    Path(table.path).write_bytes(bytes(data))
    before = state(path)
    assert main(["scan", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"{path}: read failed (Corruption" in err
        and "cannot be read" in err
    )
    assert state(path) == before


@pytest.mark.parametrize("content", [{}, {"notes.txt": b"hello"}, {"000005.ldb": b"x", "LOG": b""}])
def test_backend_leveldb_on_a_folder_that_is_not_one_creates_nothing(tmp_path, capsys, content):
    folder = tmp_path / "plain"
    folder.mkdir()
    for name, data in content.items():
        (folder / name).write_bytes(data)
    before = state(folder)
    assert main(["scan", str(folder), "--backend", "leveldb"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a LevelDB (no CURRENT" in err
    assert state(folder) == before


@pytest.fixture
def read_only(tmp_path):
    """A read-only view of a folder (a read-only bind mount; root ignores file permissions)."""
    view = tmp_path / "view"
    view.mkdir()
    made = []

    def mount(folder):
        ok = (
            subprocess.run(
                ["mount", "--bind", str(folder), str(view)], capture_output=True
            ).returncode
            == 0
        )
        if ok:
            made.append(view)
            ok = (
                subprocess.run(
                    ["mount", "-o", "remount,bind,ro", str(view)], capture_output=True
                ).returncode
                == 0
            )
        if not ok:
            pytest.skip("no read-only bind mount here (needs root and mount rights)")
        return view

    yield mount
    for path in made:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_leveldb_on_a_read_only_filesystem_scans(tmp_path, read_only):
    records, expected = planted(n=120)
    path = tmp_path / "db"
    leveldb_with_tables_and_a_log(path, records[:60], records[60:])
    before = state(path)
    view = read_only(path)
    report = scan(str(view))
    assert [f.index for f in report.findings] == sorted(i for i, _ in expected)
    assert state(path) == before


def lmdb_store(path, n=3000, size=400):
    rng = np.random.default_rng(n)
    write_store(
        path,
        "lmdb",
        [
            (f"{i:06d}".encode(), datum(rng.standard_normal(size).astype(np.float32)))
            for i in range(n)
        ],
    )
    env = lmdb.open(str(path), readonly=True, lock=False)
    pages, psize = env.info()["last_pgno"] + 1, env.stat()["psize"]
    env.close()
    return pages, psize


def run_cli(*args):
    """The CLI in a child process: a SIGBUS or an abort there fails the test, not pytest."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "caffe_nantools", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("kept", [0.2, 0.6, 0.97])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_truncated_data_mdb_is_one_line_with_the_sizes(tmp_path, kept, workers):
    path = tmp_path / "db"
    pages, psize = lmdb_store(path)
    cut = int(pages * kept) * psize
    with open(path / "data.mdb", "r+b") as f:
        f.truncate(cut)
    result = run_cli("scan", str(path), "--workers", workers)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr
        == f"caffe-nantools scan: error: {path}: truncated LMDB ({cut} of {pages * psize} bytes); an interrupted copy? copy it again\n"
    )


#: The newest liblmdb seen to read a page whose header has no page type without an error:
#: Debian 11's 0.9.24 (python3-lmdb 1.0.0) does, the 0.9.36 bundled with py-lmdb 3.0.0 reports
#: MDB_CORRUPTED. Anywhere newer, a scan that says nothing of the damage is a failure.
SILENT_ON_UNTYPED_PAGES = (0, 9, 24)


@pytest.mark.parametrize("where", [0.2, 0.8])  # in the first worker's slice, in the parent's
def test_a_damaged_lmdb_page_is_the_same_one_line_in_one_process_and_in_several(tmp_path, where):
    path = tmp_path / "db"
    pages, psize = lmdb_store(path, size=40)
    raw = (path / "data.mdb").read_bytes()
    leaf = raw.index(b"%06d" % int(3000 * where)) // psize  # the page holding that record
    with open(path / "data.mdb", "r+b") as f:
        f.seek(leaf * psize)
        f.write(b"\xff" * 16)  # a page header of no page type
    results = [run_cli("scan", str(path), "--workers", w) for w in ("1", "2")]
    if lmdb.version() <= SILENT_ON_UNTYPED_PAGES:
        # Nothing to see there, but a scan that failed all the same must fail here too.
        assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
        pytest.skip(f"LMDB {lmdb.version()} reads a page of no type without an error")
    for result in results:
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"caffe-nantools scan: error: {path}: read failed (")
        assert "MDB_CORRUPTED" in result.stderr and "Traceback" not in result.stderr


def test_an_lmdb_folder_without_data_mdb_is_one_line_and_left_alone(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["scan", str(folder), "--backend", "lmdb"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert os.listdir(folder) == []


def test_a_store_that_cannot_be_opened_is_a_scan_error(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "CURRENT").write_text("MANIFEST-000099\n")  # names a manifest that is not there
    with pytest.raises(ScanError, match="cannot open as LevelDB"):
        scan(str(folder))
    assert sorted(os.listdir(folder)) == ["CURRENT"]
    shutil.rmtree(folder)
