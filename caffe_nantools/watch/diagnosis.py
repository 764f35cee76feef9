"""watch's diagnosis: the log's, as ``diagnose`` gives it with the solver the command names (and
the net that solver names: its lint, its rate and its lr_policy shape the cause and the advice)."""

from __future__ import annotations

from typing import Optional

from caffe_nantools.diagnose import Diagnosis, Reader, diagnose
from caffe_nantools.errors import NanToolsError
from caffe_nantools.logs import NotALogError
from caffe_nantools.watch.command import CommandSolver


def diagnosis_of(log: str, solver: Optional[CommandSolver], reader: Reader) -> Optional[Diagnosis]:
    """The log's diagnosis (from the reader that read it as it was written: the same answer as
    reading the file again), with the command's solver where diagnose can read it (it is
    Caffe's business: else the log alone); None when the log holds nothing of a Caffe log's."""
    tries = ([solver.path] if solver is not None else []) + [None]
    for k, path in enumerate(tries):
        try:
            return diagnose(log, solver=path, reader=reader)
        except NotALogError:
            return None
        except NanToolsError:
            if k + 1 == len(tries):
                raise
    raise AssertionError("the last try raises or returns")
