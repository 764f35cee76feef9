"""``scan --mode net``: each data layer read by Caffe itself, as the StackOverflow answer's
"data layer plus dummy loss" net, done so that it names records: the layer's own text (its
transform_param, mean file, decoding), shuffling off, one epoch, and every sample of every
batch checked and mapped back to its key or row (cursor order is key order; HDF5 rows in file
order). pycaffe runs in a child process: a record that makes Caffe abort is reported too."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile

from dataclasses import replace
from typing import List, Optional

import numpy as np

from caffe_nantools.children import fatal_line, python_env
from caffe_nantools.files import read_text
from caffe_nantools.finite import counts_text
from caffe_nantools.prototxt import Net, Node, dump, parse
from caffe_nantools.scan.backends import backend_of
from caffe_nantools.scan.checks import Collector, contract_problems
from caffe_nantools.scan.progress import Progress
from caffe_nantools.scan.records import Records
from caffe_nantools.scan.report import ScanReport
from caffe_nantools.scan.source import ScanError, Source
from caffe_nantools.errors import literal
from caffe_nantools.scan.net_sources import PARAMS, sources_from_net
from caffe_nantools.templates import render

PREFETCH = 3  # batches a Caffe 1.0 data layer loads ahead (BasePrefetchingDataLayer)


def scanner_layer(layer_node: Node, source, notes: List[str]) -> str:
    """The data layer's text for the scanner net: no phase rules, no shuffling or random skip,
    paths made absolute (the scanner net runs from another folder)."""
    node = parse(dump(layer_node)).children[0]
    for rule in node.find_all("include") + node.find_all("exclude"):
        node.remove(rule)
    params = node.find(PARAMS[str(node.get("type"))])
    _set(params, "source", json.dumps(os.path.abspath(source.path)))
    for flag, off in (("shuffle", "false"), ("rand_skip", "0")):
        field = params.find(flag)
        if field is not None and field.raw_values != [off]:
            field.values[0][0].text = off
            notes.append(
                f"layer {source.layer!r}: {flag} turned off in the scanner net, so batches follow the records' order"
            )
    transform = node.find("transform_param")
    if transform is not None and source.mean_file:
        _set(transform, "mean_file", json.dumps(os.path.abspath(source.mean_file)))
    return dump(node).strip("\r\n")


def _set(node: Node, name: str, raw: str) -> None:
    field = node.find(name)
    if field is not None:
        field.values[0][0].text = raw
        del field.values[0][1:]


def scan_net_mode(
    net_path: str,
    phase: str,
    report: ScanReport,
    *,
    limit: Optional[int] = None,
    max_findings: Optional[int] = None,
    progress: bool = False,
) -> List[Source]:
    """Scan the data layers of ``net_path`` in ``phase`` through Caffe into ``report``;
    returns the sources scanned."""
    net = Net.parse(read_text(net_path), net_path)
    sources, notes = sources_from_net(net_path, phase)
    report.notes.extend(notes)
    if not sources:
        raise ScanError(f"{net_path}: no Data, HDF5Data or ImageData layer in phase {phase}")
    layers = {layer.name: layer for layer in net.layers if layer.type in PARAMS}
    _check_layers_known([layers[source.layer] for source in sources])
    for source in sources:
        layer = layers[source.layer]
        records = Records(source)
        count = records.count if limit is None else min(records.count, limit)
        params = layer.node.find(PARAMS[layer.type])
        batch = int(params.get("batch_size", 1))
        collector = Collector(report, source.name, source.backend, max_findings)
        bar = Progress(os.path.basename(source.path), count, progress)
        try:
            _scan_layer(layer, source, phase, records, count, batch, collector, report.notes, bar)
        finally:
            bar.close()
    return sources


def _check_layers_known(layers) -> None:
    """A data layer of a fork (the SSD fork's AnnotatedData) that this pycaffe does not have
    is said now, not as Caffe's "Unknown layer type" from the child."""
    from caffe_nantools.pycaffe import load_caffe

    caffe = load_caffe()
    known = set(caffe.layer_type_list())
    for layer in layers:
        if layer.type not in known:
            fork = (
                "the SSD fork's pycaffe (weiliu89/caffe or one built on it)"
                if layer.type == "AnnotatedData"
                else "a pycaffe that has it"
            )
            raise ScanError(
                literal(
                    f"layer {layer.name!r} ({layer.type}): the pycaffe here "
                    f"({os.path.dirname(caffe.__file__)}) has no {layer.type} layer; "
                )
                + "{mode} "
                f"needs {fork}; "
                "{mode=direct} reads its records without Caffe",
                arguments={"mode": "net"},
            )


def _scan_layer(layer, source, phase, records, count, batch, collector, notes, bar) -> None:
    """Run the scanner net over the source; where Caffe aborts, name the records of that
    batch that direct checks find bad, and go on from a copy of the records left."""
    mapping = list(range(count))  # scanner-run position -> record index in the source
    run_source = source
    found: List[tuple] = []
    with tempfile.TemporaryDirectory(prefix="nantools-scan-") as tmp:
        for attempt in range(count + 1):
            text = render(
                "scanner_net.prototxt",
                data_layer=scanner_layer(layer.node, run_source, notes),
                bottoms="\n".join(f'  bottom: "{t}"' for t in layer.tops),
            )
            done, code, log = _run_child(
                text, phase, layer.tops, source, mapping, batch, collector, found, bar, tmp
            )
            if code == 0:
                break
            first = done * batch
            # Caffe's data layers load batches ahead in a thread: the record it stopped on may
            # be in any of the batches after the last one it handed over.
            failing = mapping[first : first + batch * (PREFETCH + 1)]
            culprits = _direct_findings(source, failing, log)
            if not culprits:
                failing = failing[:batch]
            found.extend(
                culprits
                or [
                    (
                        failing[0],
                        "batch",
                        "caffe_abort",
                        f"Caffe stopped reading records {failing[0]}..{failing[-1]}: {_last_error(log)}",
                    )
                ]
            )
            dropped = {f[0] for f in culprits} or set(failing)
            mapping = [i for i in mapping[first:] if i not in dropped]
            if not mapping:
                break
            run_source = _remainder(source, mapping, os.path.join(tmp, f"rest{attempt}"), notes)
            if run_source is None:
                break
    keys = records.keys(sorted({f[0] for f in found}))
    for index, field_name, problem, detail in sorted(found):
        collector.add(index, keys.get(index, str(index)), field_name, problem, detail)


def _run_child(text, phase, tops, source, mapping, batch, collector, found, bar, tmp):
    """One run of the scanner net; returns (complete batches, exit code, Caffe's log)."""
    iterations = math.ceil(len(mapping) / batch)
    path = os.path.join(tmp, "scanner.prototxt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    env = python_env()
    with open(os.path.join(tmp, "caffe.log"), "w+", encoding="utf-8", errors="replace") as log_file:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "caffe_nantools.scan.netrun",
                path,
                phase,
                str(iterations),
                source.expect.label_top or "",
                ",".join(source.expect.contracts or ()),
                *tops,
            ],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=env,
        )
        done = 0
        for line in child.stdout:
            first = done * batch
            records = mapping[first : first + batch]
            _read_batch(json.loads(line), records, source, collector, found)
            n = len(records)
            collector.summary.records += n
            done += 1
            bar.update(n)
        code = child.wait()
        log_file.seek(0)
        log = log_file.read()
    if code and done == 0 and fatal_line(log) is None:
        raise ScanError(f"the scanner net did not start: {_last_error(log)}")
    return done, code, log


def _read_batch(entries: dict, records: List[int], source, collector, found: List[tuple]) -> None:
    """One batch's report from the scanner child, by top: its samples with NaN or inf, its
    statistics, the samples that break what the net expects of the top, and its labels, counted
    or found bad (``records``: the source's record index of each sample of the batch)."""
    n, summary = len(records), collector.summary
    for top, entry in entries.items():
        for row, nan, posinf, neginf, total in entry["bad"]:
            if row < n:
                found.append(
                    (
                        records[row],
                        top,
                        "nan" if nan else "inf",
                        f"{counts_text(nan, posinf, neginf, total)} (after Caffe's transform)",
                    )
                )
        if "stats" in entry:
            summary.stats(top).update(*entry["stats"])
        if "values" in entry:
            rows = _rows(entry["values"][:n])
            for row, problem, why in contract_problems(rows, top, source.expect, collector):
                found.append((records[row], top, problem, f"{why} (after Caffe's transform)"))
        for row, label in enumerate(entry.get("labels", [])[:n]):
            problem = None if "values" in entry else _label_problem(label, source.expect)
            if problem:
                found.append((records[row], top, "label", problem))
            elif label == label:
                summary.labels[int(label) if float(label).is_integer() else label] += 1


def _direct_findings(source, indices: List[int], log: str) -> List[tuple]:
    """What direct checks find wrong with the records of the batch Caffe aborted on: the
    problems that stop Caffe (NaNs and labels of these records come from the next run)."""
    recheck = backend_of(source).recheck
    if recheck is None:
        return []
    scratch = ScanReport()
    recheck(source, sorted(indices), Collector(scratch, source.name, source.backend))
    message = _last_error(log)
    return [
        (f.index, f.field, f.problem, f"{f.detail}; Caffe stopped on it: {message}")
        for f in scratch.findings
        if f.problem in ("not_datum", "shape", "empty", "decode", "missing")
    ]


def _remainder(source, mapping: List[int], path: str, notes: List[str]):
    """A copy of the records at ``mapping`` (in order), to run Caffe on the rest; None where
    the backend cannot be cut."""
    subset = backend_of(source).subset
    if subset is None:
        notes.append(
            f"{source.path}: Caffe stopped on a record; net mode cannot go on past it in a {source.backend} source (direct mode can)"
        )
        return None
    subset(source, mapping, path)
    return replace(source, path=path)


def _rows(values) -> np.ndarray:
    """The rows of a contracted top from the child's (distinct values, counts) per row: the
    same values in another order, which is all a contract looks at."""
    return np.array([np.repeat(np.asarray(v, np.float64), c) for v, c in values])


def _label_problem(label: float, expect) -> Optional[str]:
    if label != label:
        return None  # a NaN label is already a nan finding
    if expect.ignore_label is not None and label == expect.ignore_label:
        return None
    if label < 0:
        return f"label {label:g} is negative"
    if expect.integer_labels and not float(label).is_integer():
        return f"label {label:g} is not a whole number (a classification label)"
    if expect.num_classes is not None and label >= expect.num_classes:
        return f"label {label:g} >= {expect.num_classes}, the number of classes"
    return None


def _last_error(log: str) -> str:
    lines = [line for line in log.splitlines() if line.startswith(("F", "E")) or "Error" in line]
    return (
        lines[-1] if lines else log.strip().splitlines()[-1] if log.strip() else "no message"
    ).strip()
