"""Train and test tables of a Caffe log, like Caffe's tools/extra/parse_log.py makes them
(NumIters, Seconds, LearningRate, then every output), but on Python 3, keeping the rows whose
values are ``nan``/``-nan``/``inf``, and with a Run column for logs of several runs."""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from caffe_nantools import arguments
from caffe_nantools.errors import literal
from caffe_nantools.files import FileError, refuse_overlaps, writing
from caffe_nantools.logs.opening import SOLVER_LINES, not_a_log, open_log
from caffe_nantools.logs.events import Event, read_events

FIXED = ["NumIters", "Seconds", "LearningRate"]


@dataclass
class Tables:
    """Rows of the train and test tables, as dicts keyed by column name."""

    train: List[Dict[str, float]] = field(default_factory=list)
    test: List[Dict[str, float]] = field(default_factory=list)
    train_columns: List[str] = field(default_factory=list)
    test_columns: List[str] = field(default_factory=list)

    def csv(self, which: str) -> str:
        rows, outputs = (
            (self.train, self.train_columns) if which == "train" else (self.test, self.test_columns)
        )
        columns = FIXED + outputs + ["Run"]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        return out.getvalue()


def _cell(value) -> str:
    """A value as text: empty when missing, ``nan``/``inf``/``-inf`` spelled out."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def tables_from_events(events: Iterable[Event]) -> Tables:
    """Build the tables: a train row per displayed iteration (its loss line, the outputs after
    it, its lr line) and a test row per test pass (with the last learning rate seen)."""
    tables = Tables()
    runs = 0  # "Solving" lines seen; a log cut before its first one is run 1 all the same
    lr: Optional[float] = None
    lr_iteration: Optional[int] = None  # 2014's solver printed the rate before the loss
    train: Dict[Tuple[int, int], Dict[str, float]] = {}
    row: Optional[Dict[str, float]] = None  # the row the next output lines belong to
    row_kind, test_net = "", 0
    displayed: Dict[Tuple[int, int], float] = {}
    for e in events:
        run = max(runs, 1)
        if e.kind == "run":
            runs += 1
            row = None
        elif e.kind == "loss":
            key = (run, e.iteration)
            if key not in train:
                train[key] = {"NumIters": e.iteration, "Seconds": e.time, "Run": run}
                if lr_iteration == e.iteration:
                    train[key]["LearningRate"] = lr
                tables.train.append(train[key])
            row, row_kind = train[key], "train"
            displayed[key] = e.value
        elif e.kind == "lr":
            lr, lr_iteration = e.value, e.iteration
            if (run, e.iteration) in train:
                train[(run, e.iteration)]["LearningRate"] = e.value
        elif e.kind == "test":
            row = {"NumIters": e.iteration, "Seconds": e.time, "Run": run}
            if lr is not None:
                row["LearningRate"] = lr
            tables.test.append(row)
            row_kind, test_net = "test", e.index
        elif row is not None and e.kind == f"{row_kind}_output":
            name = e.name if row_kind == "train" or not test_net else f"net{test_net}/{e.name}"
            if name in row:  # outputs of one name (a multi-label net's): each its own column
                name = f"{name}#{e.index}"
            columns = tables.train_columns if row_kind == "train" else tables.test_columns
            if name not in columns:
                columns.append(name)
            row[name] = e.value
    if displayed and not tables.train_columns:
        # 2014's solver printed no train outputs: the loss of its display lines is the only one.
        tables.train_columns.append("loss")
        for key, value in displayed.items():
            train[key]["loss"] = value
    return tables


def log2csv(log: str, outdir: str, *, force: bool = False) -> Tuple[str, str, Tables]:
    """``caffe-nantools log2csv``: write ``<log name>.train.csv`` and ``.test.csv`` to ``outdir``.

    Raises:
        FileError: the log cannot be read, or an output exists (without ``force``) or cannot be
            written.
        NotALogError: no solver line in the log.
    """
    log, outdir = arguments.path("log", log), arguments.path("outdir", outdir)
    force = arguments.flag("force", force)
    base = os.path.basename(log.rstrip("/"))
    paths = [os.path.join(outdir, f"{base}.{which}.csv") for which in ("train", "test")]
    if not force:
        for path in paths:
            if os.path.exists(path):
                raise FileError(
                    f"{literal(path)}: already exists; pass {{force}} to overwrite it",
                    arguments={"force": True},
                )
    refuse_overlaps([("log", log)], [(None, path) for path in paths])
    with open_log(log) as (f, _):
        events = read_events(io.TextIOWrapper(f, encoding="utf-8", errors="replace"))
        first = next(events, None)
        if first is None:
            raise not_a_log(log, SOLVER_LINES)
        tables = tables_from_events(itertools.chain([first], events))
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise FileError(f"{outdir}: cannot make the folder ({e.strerror or e})") from None
    with writing() as out:
        for path, which in zip(paths, ("train", "test")):
            out.text(path, tables.csv(which))
    return paths[0], paths[1], tables
