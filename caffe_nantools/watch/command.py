"""What watch reads of the command it runs: gflags' flags on its line, and for `caffe train
-solver S` the solver S (read once): its snapshot settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import read_text
from caffe_nantools.prototxt import BOOL, INT32, parse
from caffe_nantools.solver_settings import value_of


def is_caffe_train(command: Sequence[str]) -> bool:
    """``caffe train ...`` (the tool by any path, or its ``caffe.bin`` build name): the one
    command whose signal handling, snapshots and solver watch knows."""
    return (
        len(command) > 1
        and os.path.basename(command[0]) in ("caffe", "caffe.bin")
        and command[1] == "train"
    )


def flag(command: Sequence[str], name: str) -> Optional[str]:
    """The value of gflags flag ``name`` on ``command``'s line: ``-name value`` or
    ``-name=value``, with one dash or two; the last one given counts."""
    value = None
    for k, arg in enumerate(command[1:], 1):
        key, sep, given = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or key != name:
            continue
        if sep:
            value = given
        elif k + 1 < len(command):
            value = command[k + 1]
    return value


@dataclass(frozen=True)
class CommandSolver:
    """The solver of a `caffe train -solver S` command, as Caffe reads it (paths from the
    current folder, where the command runs)."""

    path: str
    #: snapshot_after_train (Caffe's default: on): Caffe's stop writes a snapshot.
    after_train: bool
    #: ``snapshot``: Caffe snapshots every this many iterations by itself (0: never).
    interval: int

    @classmethod
    def of(cls, command: Sequence[str]) -> Optional[CommandSolver]:
        """The solver ``command`` names; None for another command, or a solver that cannot be
        read (Caffe reports that itself)."""
        path = flag(command, "solver") if is_caffe_train(command) else None
        if not path or not os.path.isfile(path):
            return None
        try:
            doc = parse(read_text(path), path)
            after_train = value_of(doc, "snapshot_after_train", BOOL, True)
            interval = value_of(doc, "snapshot", INT32, 0)
        except NanToolsError:
            return None
        return cls(path, after_train, interval)
