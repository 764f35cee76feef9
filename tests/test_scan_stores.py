"""scan on LMDB and LevelDB stores of Datums: exactly the planted problems, by key."""

import json

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_nantools.scan import ScanReport, Source, merge_reports, scan
from caffe_nantools.scan.checks import Expect
from caffe_nantools.scan.stores import StoreError
from datums import datum
from stores import per_worker, planted, read_store, write_store
from needs import need

lmdb = need("lmdb")
need("plyvel")

BACKENDS = ["lmdb", "leveldb"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    records, expected = planted()
    path = tmp_path / request.param
    write_store(path, request.param, records)
    return str(path), request.param, expected


def comparable(report):
    """The report as a dict, means rounded: sums of float32 batches depend on where the batches
    (or shards) begin."""
    d = report.to_dict()
    for summary in d["summary"].values():
        for stats in summary["fields"].values():
            stats["mean"] = round(stats["mean"], 5) if stats["mean"] is not None else None
    return d


def found(report):
    return [(f.index, f.problem) for f in report.findings]


def test_scan_finds_exactly_the_planted_records(store):
    path, backend, expected = store
    report = scan(path)
    assert found(report) == sorted(expected)
    by_index = {f.index: f for f in report.findings}
    assert (
        by_index[7].key == "00000007" and by_index[7].detail == "1 NaN, 0 +inf, 0 -inf in 48 values"
    )
    assert by_index[150].detail == "0 NaN, 0 +inf, 1 -inf in 48 values"
    assert by_index[99].detail == "1x4x4, not 3x4x4 (the first record's)"
    assert by_index[42].detail == "label -3 is negative"
    assert by_index[201].detail.startswith("not a Datum: ")
    summary = report.summaries[path]
    assert summary.backend == backend and summary.records == 300
    assert summary.shapes == {"3x4x4": 298, "1x4x4": 1}
    assert report.return_code == 1


def test_clean_store_exits_0_with_a_summary(tmp_path, capsys):
    path = tmp_path / "clean"
    x = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    write_store(path, "lmdb", [(b"a", datum(x, label=1)), (b"b", datum(x + 1, label=2))])
    assert main(["scan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no bad records" in out and "float_data: min 0, max 12, mean 6" in out
    assert "labels: 1: 1, 2: 1" in out


def test_uint8_range_is_exact_when_a_later_batch_widens_it(tmp_path):
    # The first record's extremes are 10 and 20; records far into the store (past the first
    # read batch) go below and above them.
    path = tmp_path / "bytes"
    n = 3000
    img = np.full((3, 32, 32), 15, np.uint8)
    img[0, 0, :2] = 10, 20
    records = [(f"{i:05d}".encode(), datum(img, label=1)) for i in range(n)]
    low, high = img.copy(), img.copy()
    low[2, 5, 5], high[1, 1, 1] = 3, 240
    records[2500] = (records[2500][0], datum(low, label=1))
    records[2700] = (records[2700][0], datum(high, label=1))
    write_store(path, "lmdb", records)
    stats = scan(str(path)).summaries[str(path)].to_dict()["fields"]["data"]
    assert stats["min"] == 3 and stats["max"] == 240
    assert stats["mean"] == pytest.approx(
        (15 * img.size * n - 5 * n + 5 * n - 12 + 225) / (img.size * n)
    )


def test_uint8_and_encoded_images(tmp_path):
    from io import BytesIO

    from PIL import Image

    png = BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    img = np.zeros((3, 4, 4), np.uint8)
    records = [
        (b"0", datum(img, label=1)),
        (b"1", datum(data=png.getvalue(), shape=(3, 4, 4), encoded=True)),
        (b"2", datum(data=png.getvalue()[:20], shape=(3, 4, 4), encoded=True)),
        (b"3", datum(shape=(3, 4, 4))),
        (b"4", datum(data=b"\x01" * 40, shape=(3, 4, 4))),
    ]
    write_store(tmp_path / "db", "lmdb", records)
    report = scan(str(tmp_path / "db"))
    assert found(report) == [(2, "decode"), (3, "empty"), (4, "shape")]
    assert report.findings[2].detail == "40 values, but channels x height x width = 48"
    assert report.summaries[str(tmp_path / "db")].dtypes == {"uint8": 2, "encoded": 2}


@pytest.mark.parametrize("backend", BACKENDS)
def test_shards_cover_the_store_and_merge_to_the_whole(tmp_path, backend):
    records, expected = planted()
    write_store(tmp_path / "db", backend, records)
    parts = [scan(str(tmp_path / "db"), shard=(k, 3)) for k in range(3)]
    assert sum(p.summaries[str(tmp_path / "db")].records for p in parts) == 300
    merged = merge_reports(ScanReport.from_dict(json.loads(p.to_json())) for p in parts)
    whole = scan(str(tmp_path / "db"))
    assert comparable(merged) == comparable(whole)


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_give_the_same_report(tmp_path, backend):
    # Workers read LMDB values as views into the map, and count for the parent's progress bar.
    records, _ = planted()
    write_store(tmp_path / "db", backend, records)
    one = scan(str(tmp_path / "db"), workers=1)
    three = scan(str(tmp_path / "db"), workers=3, progress=True)
    assert len(one.findings) == 5
    if backend == "leveldb":  # one opener at a time: said, and scanned in one process
        assert three.notes == [
            "scanned in one process, not 3: a LevelDB opens in one process at a time"
        ]
        three.notes = []
    assert comparable(three) == comparable(one)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_slice_compares_shapes_with_the_stores_first_record(tmp_path, backend):
    # The odd record opens the second of three slices: a worker or a shard that compared with
    # its own first record flagged every other record of its slice, and missed the odd one.
    records = [
        (f"{i:08d}".encode(), datum(np.zeros((1, 4, 4) if i == 10 else (3, 4, 4), np.float32)))
        for i in range(30)
    ]
    write_store(tmp_path / "db", backend, records)
    path = str(tmp_path / "db")
    expected = [(10, "shape")]
    assert found(scan(path, workers=1)) == expected
    assert found(scan(path, workers=3)) == expected
    shards = [scan(path, shard=(k, 3)) for k in range(3)]
    assert [found(s) for s in shards] == [[], expected, []]


def test_a_store_gets_a_process_per_core_only_when_big_enough(tmp_path, monkeypatch):
    from caffe_nantools.scan import cores, scanner, stores

    records, _ = planted()
    write_store(tmp_path / "db", "lmdb", records)
    source = Source(str(tmp_path / "db"), "lmdb")
    monkeypatch.setattr(scanner.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cores, "cpu_quota", lambda: None)
    assert scanner.auto_workers(source) == 1  # a few kB: one process
    size = stores.lmdb_bytes(source.path)
    per_worker(monkeypatch, "lmdb", size // 3)
    assert scanner.auto_workers(source) == 3
    per_worker(monkeypatch, "lmdb", 1)
    assert scanner.auto_workers(source) == 4  # no more than the cores
    write_store(tmp_path / "ldb", "leveldb", records)
    assert scanner.auto_workers(Source(str(tmp_path / "ldb"), "leveldb")) == 1


def test_workers_1_keeps_to_one_core_and_the_default_reads_ahead(tmp_path, monkeypatch):
    from caffe_nantools.scan import keyvalue

    records, _ = planted()
    write_store(tmp_path / "db", "lmdb", records)
    threads = []
    monkeypatch.setattr(keyvalue, "prefetched", lambda batches: threads.append(1) or batches)
    one = scan(str(tmp_path / "db"), workers=1)
    assert threads == []
    assert comparable(scan(str(tmp_path / "db"))) == comparable(one) and threads == [1]


def test_a_worker_counts_for_the_parent_and_draws_nothing(capsys):
    from caffe_nantools.scan.progress import Progress, Tally

    counts = [0] * 4
    bar = Progress("db", 10, Tally(counts, 1))
    bar.update(3)
    bar.update(4)
    bar.close()
    assert counts == [0, 0, 7, 10] and capsys.readouterr().err == ""


def test_the_parent_draws_all_the_workers_counts(monkeypatch, capsys):
    from caffe_nantools.scan import progress

    counts = [40, 100, 0, 0]  # worker 0 is 40 records into its 100
    tally = progress.Tally(counts, 1, draws=True)
    bar = progress.Progress("db", 100, tally)
    bar.shown -= 1  # as if the last drawing were a second ago
    bar.update(10)
    assert "db: 50/200 records" in capsys.readouterr().err


def test_workers_without_shared_memory_still_scan(tmp_path, monkeypatch):
    import multiprocessing.context

    def no_shm(self, *args):
        raise FileNotFoundError(2, "No such file or directory", "/dev/shm")

    monkeypatch.setattr(multiprocessing.context.BaseContext, "RawArray", no_shm)
    records, _ = planted()
    write_store(tmp_path / "db", "lmdb", records)
    two = scan(
        str(tmp_path / "db"), workers=2, progress=True
    )  # a bar for this process's slice only
    assert comparable(two) == comparable(scan(str(tmp_path / "db"), workers=1))


@pytest.fixture
def two_worker_store(tmp_path):
    from caffe_nantools.scan import scanner

    records, _ = planted()
    write_store(tmp_path / "db", "lmdb", records)
    return str(tmp_path / "db"), scanner


def test_a_workers_error_stops_the_scan_in_one_line(two_worker_store, monkeypatch, capsys):
    path, scanner = two_worker_store
    real = scanner._scan_shard

    def shard(source, k, n, max_findings, progress):
        if k == 0:  # runs in the child process (forked with this patch)
            raise StoreError(f"{source.path}: read failed (MDB_CORRUPTED)")
        return real(source, k, n, max_findings, progress)

    monkeypatch.setattr(scanner, "_scan_shard", shard)
    assert main(["scan", path, "--workers", "2"]) == 2
    assert (
        capsys.readouterr().err
        == f"caffe-nantools scan: error: {path}: read failed (MDB_CORRUPTED)\n"
    )


def test_a_worker_that_dies_is_named(two_worker_store, monkeypatch):
    import os

    path, scanner = two_worker_store
    real = scanner._scan_shard
    monkeypatch.setattr(
        scanner,
        "_scan_shard",
        lambda source, k, *rest: os._exit(3) if k == 0 else real(source, k, *rest),
    )
    with pytest.raises(
        scanner.ScanError, match="worker 0 of 2 ended without a report \\(exit code 3\\)"
    ):
        scan(path, workers=2)


def test_limit_and_max_findings(tmp_path):
    records, expected = planted()
    write_store(tmp_path / "db", "lmdb", records)
    report = scan(str(tmp_path / "db"), limit=100)
    assert found(report) == [(7, "nan"), (42, "label"), (99, "shape")]
    assert report.summaries[str(tmp_path / "db")].records == 100
    capped = scan(str(tmp_path / "db"), max_findings=2)
    assert len(capped.findings) == 2 and capped.unlisted == 3
    assert "... and 3 more findings, past the most to list" in capped.format_table()


@pytest.mark.parametrize("backend", BACKENDS)
def test_write_clean_copies_the_good_records_only(tmp_path, backend):
    records, expected = planted()
    write_store(tmp_path / "db", backend, records)
    report = scan(str(tmp_path / "db"), write_clean=str(tmp_path / "clean"))
    assert report.notes == [f"wrote {tmp_path / 'clean'}: 295 records, 5 bad ones left out"]
    # LevelDB has no read-only mode: opening it may rewrite its log, never its records.
    assert read_store(tmp_path / "db", backend) == records
    again = scan(str(tmp_path / "clean"), backend=backend)
    assert again.findings == [] and again.summaries[str(tmp_path / "clean")].records == 295


def test_num_classes_and_overflow_from_the_net(tmp_path):
    from caffe_nantools.scan.keyvalue import scan_store

    x = np.full((1, 1, 4), 1e37, np.float32)
    write_store(
        tmp_path / "db", "lmdb", [(b"a", datum(x, label=3)), (b"b", datum(x / 1e30, label=1))]
    )
    report = ScanReport()
    scan_store(Source(str(tmp_path / "db"), "lmdb", Expect(num_classes=3, scale=100.0)), report)
    assert sorted((f.index, f.problem, f.detail) for f in report.findings) == [
        (0, "label", "label 3 >= 3, the number of classes"),
        (0, "overflow", "(x - 0) * 100 reaches 1e+39, past float32's range: inf in the net"),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/nothing"], "nothing: no such file or folder"),
        (
            ["{tmp}"],
            "a folder that is neither an LMDB (data.mdb) nor a LevelDB (CURRENT); "
            "if it is one of them, say which: --backend lmdb or --backend leveldb",
        ),
        (["{tmp}", "--backend", "lmdb"], "cannot open as LMDB"),
        (["{db}", "--write-clean", "{db}"], "already exists; give a new path"),
        (
            ["{db}", "--shard", "0/2", "--workers", "2"],
            "--shard 0/2 and --workers 2 exclude each other",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    records, _ = planted(n=10)
    write_store(tmp_path / "db", "lmdb", records)
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path / "empty", db=tmp_path / "db") for a in args]
    assert main(["scan"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_merge_command_joins_json_reports(tmp_path, capsys):
    records, expected = planted()
    write_store(tmp_path / "db", "lmdb", records)
    paths = []
    for k in range(2):
        assert main(["scan", str(tmp_path / "db"), "--shard", f"{k}/2", "--json"]) == 1
        path = tmp_path / f"part{k}.json"
        path.write_text(capsys.readouterr().out)
        paths.append(str(path))
    assert main(["merge", *paths, "--json"]) == 1
    merged = json.loads(capsys.readouterr().out)
    assert [(f["index"], f["problem"]) for f in merged["findings"]] == sorted(expected)
    (tmp_path / "bad.json").write_text("{}")
    assert main(["merge", str(tmp_path / "bad.json")]) == 2


def test_csv_output(tmp_path, capsys):
    records, _ = planted(n=10)
    write_store(tmp_path / "db", "lmdb", records)
    assert main(["scan", str(tmp_path / "db"), "--csv"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "source,index,key,field,problem,detail"
    assert lines[1].split(",")[1:5] == ["7", "00000007", "float_data", "nan"]


def test_keys_with_control_bytes_are_written_escaped():
    from caffe_nantools.scan.checks import key_text

    assert key_text(b"\xff\x00\xfe") == "\\xff\\x00\\xfe"
    assert key_text(b"line\nbreak\ttab") == "line\\x0abreak\\x09tab"
    assert key_text("00000001_bildäöü.jpg".encode()) == "00000001_bildäöü.jpg"
