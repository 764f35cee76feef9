"""``merge``: the --json reports of the shards of one scan joined into one report, refused when
a shard is there twice or missing, or when the parts are of different sources (or of a source
that changed between them): each report carries its shard (K/N) and its sources' fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Sequence, Tuple

from caffe_nantools import arguments
from caffe_nantools.files import read_text
from caffe_nantools.scan.report import ScanReport, merge_reports
from caffe_nantools.scan.source import ScanError


def fingerprint(path: str, backend: str) -> str:
    """What identifies a source's data: its absolute path and the names, sizes and modification
    times of its files (an LMDB's data.mdb, a LevelDB's files, an HDF5 list and its .h5 files,
    an image list); it changes when the data does."""
    if os.path.isdir(path):
        files = [
            e.path for e in os.scandir(path) if e.is_file() and e.name not in ("LOCK", "lock.mdb")
        ]
    else:
        files = [path]
    if backend == "hdf5":
        from caffe_nantools.scan.hdf5 import list_files

        files += [p for _, p in list_files(path) if p != path]
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape"))
    for name in sorted(files):
        stat = os.stat(name)
        digest.update(
            f"\0{os.path.basename(name)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode(
                "utf-8", "surrogateescape"
            )
        )
    return digest.hexdigest()[:16]


def merge_files(paths: Sequence[str]) -> ScanReport:
    """``caffe-nantools merge``: one report from the --json reports of ``paths``.

    Reports made before shards carried their K/N and sources (``origin``) are accepted with a
    note: duplicates and missing shards cannot be told among them.

    Raises:
        ScanError: a file that is not a scan report (one line naming it), a shard given twice or
            missing, shards of different splits or sources, a whole scan mixed with shards, or
            the same source in two whole scans.
    """
    parts = [(path, load_report(path)) for path in arguments.paths("paths", paths)]
    known = [(path, r) for path, r in parts if r.origin is not None]
    notes = []
    if len(known) < len(parts):
        older = ", ".join(path for path, r in parts if r.origin is None)
        notes.append(
            f"{older}: made by an older caffe-nantools (no shard or source in it): duplicate or missing shards cannot be detected"
        )
    shards = [(path, r) for path, r in known if r.shard is not None]
    if shards:
        _check_shards(known, shards, complete=len(known) == len(parts))
    else:
        _check_whole_scans(known)
    merged = merge_reports(report for _, report in parts)
    merged.notes.extend(notes)
    return merged


def load_report(path: str) -> ScanReport:
    """A report written by ``scan --json``.

    Raises:
        ScanError: not one (malformed or deeply nested JSON, missing or odd fields).
    """
    try:
        report = ScanReport.from_dict(json.loads(read_text(path)))
        # from_dict checks the keys; merging and rendering it alone, the values' types.
        merge_reports([report]).format_table()
    except RecursionError:
        raise ScanError(f"{path}: not the JSON of a scan report (nested too deeply)") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise ScanError(
            f"{path}: not the JSON of a scan report ({type(e).__name__}: {e})"
        ) from None
    return report


def _check_shards(
    known: List[Tuple[str, ScanReport]], shards: List[Tuple[str, ScanReport]], complete: bool
) -> None:
    first_path, first = shards[0]
    n = first.shard[1]
    seen: Dict[int, str] = {}
    for path, report in known:
        if report.shard is None:
            raise ScanError(
                f"{path} is a whole scan and {first_path} a shard: merge the shards of one scan"
            )
        if report.origin != first.origin:
            raise ScanError(
                f"{first_path} and {path} are reports of different sources, "
                f"or of a source that changed between them ({_difference(first.origin, report.origin)})"
            )
        k, m = report.shard
        if m != n:
            raise ScanError(
                f"{first_path} is a shard of {n} and {path} of {m}: shards of different splits"
            )
        if k in seen:
            raise ScanError(f"shard {k}/{n} given twice: {seen[k]} and {path}")
        seen[k] = path
    missing = [k for k in range(n) if k not in seen]
    if complete and missing:
        raise ScanError(
            "; ".join(f"shard {k}/{n} missing" for k in missing) + f": merge all {n} shards"
        )


def _check_whole_scans(known: List[Tuple[str, ScanReport]]) -> None:
    owners: Dict[str, str] = {}
    for path, report in known:
        for source in report.origin:
            if source in owners:
                raise ScanError(
                    f"{owners[source]} and {path} both scanned {source} whole: its records would count twice"
                )
            owners[source] = path


def _difference(a: Dict[str, str], b: Dict[str, str]) -> str:
    if set(a) != set(b):
        return f"{', '.join(sorted(a))} against {', '.join(sorted(b))}"
    return ", ".join(f"{source} changed" for source in sorted(a) if a[source] != b[source])
