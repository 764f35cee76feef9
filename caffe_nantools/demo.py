"""The built-in example of the main job: a small LMDB with one record of NaN planted in it, a
small classifier and its solver, and ``hunt`` finding the record, the layer and a fix that it
shows to work."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

from caffe_nantools.cause import Cause
from caffe_nantools.hunt import HuntReport, hunt
from caffe_nantools.pycaffe import load_caffe
from caffe_nantools.templates import render

RECORDS = 48
BATCH = 8
SOURCE = "demo_lmdb"


@dataclass
class DemoResult:
    """The planted record's key, where the demo ran, and hunt's report."""

    key: str
    folder: str
    report: HuntReport

    @property
    def found(self) -> bool:
        """Whether hunt named the planted record and verified its fix."""
        v, fix = self.report.verdict, self.report.fix
        return (
            v.cause == Cause.BAD_INPUT
            and v.record is not None
            and v.record.key == self.key
            and bool(fix and fix.verified)
        )


def write_demo(folder: str, bad_record: int, seed: int = 0) -> str:
    """The demo's LMDB (float Datums, 3 classes, one NaN in ``bad_record``), net and solver in
    ``folder``; returns the solver's path."""
    import lmdb

    caffe = load_caffe()
    rng = np.random.RandomState(seed)
    env = lmdb.open(os.path.join(folder, SOURCE), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(RECORDS):
            x = rng.randn(1, 4, 4)
            if i == bad_record:
                x[0, 1, 2] = np.nan
            txn.put(f"{i:08d}".encode(), caffe.io.array_to_datum(x, i % 3).SerializeToString())
    env.close()
    with open(os.path.join(folder, "train_val.prototxt"), "w", encoding="utf-8") as f:
        f.write(render("demo_net.prototxt", source=SOURCE, batch=BATCH))
    with open(os.path.join(folder, "solver.prototxt"), "w", encoding="utf-8") as f:
        f.write(
            'net: "train_val.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 24\n'
            'display: 10\nsnapshot_prefix: "demo"\nsolver_mode: CPU\n'
        )
    return "solver.prototxt"


def run(
    *, bad_record: int = 21, folder: Optional[str] = None, progress: bool = False
) -> DemoResult:
    """Write the demo into ``folder`` (a new temporary one by default) and hunt its NaN.

    Raises:
        CaffeUnavailableError: pycaffe is not importable.
    """
    load_caffe()
    folder = folder or tempfile.mkdtemp(prefix="nantools-demo-")
    here = os.getcwd()
    os.chdir(folder)  # Caffe opens the net's source from the current folder
    try:
        solver = write_demo(folder, bad_record)
        report = hunt(solver, workdir=os.path.join(folder, "hunt"), progress=progress)
    finally:
        os.chdir(here)
    return DemoResult(f"{bad_record:08d}", folder, report)
