"""The judgement of a whole source against the contracts of the loss and metric layers that
read it, once every record was scanned: a systematic breach is one ``contract`` finding with
its fix (and in the report's ``breaches``); a regression target far off the prediction's
scale is a note."""

from __future__ import annotations

from typing import Dict, Set

from caffe_nantools.scan.contracts import Breach, scale_note, systematic_breach
from caffe_nantools.scan.report import Finding, ScanReport
from caffe_nantools.scan.source import Source


def judge_contracts(source: Source, report: ScanReport) -> None:
    """Judge what ``source``'s records held (its summary's tallies) in ``report``."""
    summary = report.summaries.get(source.name)
    contracts = source.expect.contracts
    if summary is None or not contracts:
        return
    for blob, bounds in contracts.items():
        for bound in bounds:
            tally = summary.tallies.get((bound.layer, blob))
            if tally is None:
                continue
            others = [b for b in bounds if b is not bound]
            breach = systematic_breach(tally, bound, source.name, others)
            if breach is not None:
                report.breaches.append(breach)
                report.findings.append(
                    Finding(source.name, -1, bound.layer, blob, "contract", breach.detail)
                )
                break  # one finding for the blob: the others on it share the fault
            note = scale_note(tally, bound, source.name)
            if note is not None and note not in report.notes:
                report.notes.append(note)


def mended_rows(report: ScanReport, breach: Breach) -> Set[int]:
    """The records of ``breach``'s source whose only faults are breaches of the contract on
    its blob, which the breach's fix mends: a clean copy keeps them."""
    fields = {breach.bound.blob, "label"}  # an HDF5 dataset, a Datum's label
    rows: Dict[int, bool] = {}
    for f in report.findings:
        if f.source == breach.source and f.index >= 0:
            mended = (
                f.problem in ("label", "target") and f.field in fields and breach.mended(f.detail)
            )
            rows[f.index] = rows.get(f.index, True) and mended
    return {index for index, only in rows.items() if only}
