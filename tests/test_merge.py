"""merge: the shards of one scan, each once, all there, of one unchanged source; a file that is
not a report is one line naming it."""

import json
import os
from pathlib import Path

import pytest

from caffe_nantools.cli import main
from caffe_nantools.scan import ScanError, merge_files, scan


@pytest.fixture
def shards(tmp_path):
    """A list of 40 images (all missing: 40 findings) scanned in 4 shards; returns a function
    writing shard K's report as JSON."""
    source = tmp_path / "list.txt"
    source.write_text("".join(f"img{i}.png {i % 3}\n" for i in range(40)))

    def write(k, n=4, name=None, path=source):
        out = tmp_path / (name or f"part{k}of{n}.json")
        out.write_text(scan(str(path), backend="imagelist", shard=(k, n)).to_json())
        return str(out)

    write.source = source
    return write


def test_all_shards_merge_to_the_whole_scan(shards):
    parts = [shards(k) for k in (2, 0, 3, 1)]
    merged = merge_files(parts)
    whole = scan(str(shards.source), backend="imagelist")
    assert merged.to_dict() == whole.to_dict()
    assert [f.index for f in merged.findings] == list(range(40))


@pytest.mark.parametrize("given, missing", [((0, 1, 3), [2]), ((1, 2), [0, 3]), ((0, 1, 2), [3])])
def test_missing_shards_are_named(shards, capsys, given, missing):
    parts = [shards(k) for k in given]
    assert main(["merge", *parts]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "caffe-nantools merge: error: "
        + "; ".join(f"shard {k}/4 missing" for k in missing)
        + ": merge all 4 shards\n"
    )


@pytest.mark.parametrize("twice", [0, 3])
def test_a_shard_given_twice_is_refused(shards, tmp_path, twice):
    parts = [shards(k) for k in range(4)]
    copy = tmp_path / "again.json"
    copy.write_text(Path(parts[twice]).read_text())
    with pytest.raises(ScanError, match=f"shard {twice}/4 given twice: {parts[twice]} and {copy}"):
        merge_files(parts + [str(copy)])
    with pytest.raises(ScanError, match="given twice"):
        merge_files([parts[twice]] * 2)


def test_shards_of_a_source_that_changed_between_them_are_refused(shards):
    first = [shards(k) for k in (0, 1)]
    with open(shards.source, "a") as f:
        f.write("late.png 1\n")
    os.utime(shards.source, ns=(1, 10**18))
    later = [shards(k) for k in (2, 3)]
    with pytest.raises(
        ScanError,
        match=f"different sources, or of a source that changed between them \\({shards.source} changed\\)",
    ):
        merge_files(first + later)


def test_shards_of_different_sources_or_splits_are_refused(shards, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("x.png 1\ny.png 2\n")
    with pytest.raises(ScanError, match="different sources"):
        merge_files([shards(0), shards(1, name="o1.json", path=other)])
    with pytest.raises(ScanError, match="a shard of 4 and .* of 2: shards of different splits"):
        merge_files([shards(0), shards(1, n=2)])
    whole = tmp_path / "whole.json"
    whole.write_text(scan(str(shards.source), backend="imagelist").to_json())
    with pytest.raises(ScanError, match="is a whole scan and .* a shard"):
        merge_files([shards(0), str(whole)])
    with pytest.raises(ScanError, match="both scanned .* whole"):
        merge_files([str(whole), str(whole)])


def test_whole_scans_of_different_sources_merge(shards, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("x.png 1\n")
    paths = []
    for source in (shards.source, other):
        paths.append(str(tmp_path / f"{source.name}.json"))
        Path(paths[-1]).write_text(scan(str(source), backend="imagelist").to_json())
    merged = merge_files(paths)
    assert merged.sources == [str(shards.source), str(other)] and len(merged.findings) == 41


def test_reports_of_an_older_version_merge_with_a_note(shards, tmp_path):
    parts = []
    for k in (0, 1, 1):  # a duplicate it cannot see, and two shards missing
        d = json.loads(Path(shards(k)).read_text())
        del d["shard"], d["origin"]
        parts.append(tmp_path / f"old{len(parts)}.json")
        parts[-1].write_text(json.dumps(d))
    merged = merge_files([str(p) for p in parts])
    assert len(merged.findings) == 30
    assert merged.notes[-1] == (
        f"{parts[0]}, {parts[1]}, {parts[2]}: made by an older caffe-nantools (no shard or source in it): "
        "duplicate or missing shards cannot be detected"
    )


@pytest.mark.parametrize(
    "text, why",
    [
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ('{"sources": ' + "[" * 50000 + "]" * 50000 + "}", "nested too deeply"),
        ("{not json", "JSONDecodeError"),
        ("[1, 2]", "TypeError"),
        ('"a report"', "TypeError"),
        ('{"sources": [], "findings": [{"index": 1}], "summary": {}}', "TypeError"),
        (
            '{"sources": [], "findings": [], "summary": {"s": {"backend": "lmdb", "records": "many", "shapes": {}, '
            '"dtypes": {}, "labels": {}, "fields": {}}}}',
            "TypeError",
        ),
        (
            '{"sources": [], "findings": [], "summary": {}, "shard": [5, 2], "origin": {}}',
            "ValueError",
        ),
        ('{"sources": [], "findings": [], "summary": {}, "origin": [1]}', "ValueError"),
        ('{"sources": [], "findings": [], "summary": {}, "unlisted_findings": -3}', "TypeError"),
        ('{"sources": [], "findings": [], "summary": {}, "unlisted_findings": "9"}', "TypeError"),
    ],
)
def test_a_file_that_is_not_a_report_is_one_line_naming_it(tmp_path, capsys, shards, text, why):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    assert main(["merge", shards(0), str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"caffe-nantools merge: error: {bad}: not the JSON of a scan report (")
        and why in err
    )
    assert err.count("\n") == 1
