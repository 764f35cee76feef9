"""Caffe's own signal handling, as the command line sets it: `caffe train` snapshots on SIGHUP
and stops (writing its end-of-training snapshot, unless the solver's ``snapshot_after_train`` is
false) on SIGINT, unless ``-sighup_effect`` or ``-sigint_effect`` (``snapshot``, ``stop`` or
``none``) say otherwise."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import read_text
from caffe_nantools.prototxt.fields import BOOL
from caffe_nantools.prototxt.syntax import parse
from caffe_nantools.solver_settings import value_of

_FLAGS = {"sighup_effect": signal.SIGHUP, "sigint_effect": signal.SIGINT}


@dataclass(frozen=True)
class Effects:
    """What Caffe does on each of the signals it handles (``snapshot``, ``stop``, ``none``)."""

    on: Dict[int, str]
    #: Caffe's stop writes a snapshot: the solver the command names leaves snapshot_after_train
    #: on (Caffe's default). False where that is not known (no solver that can be read).
    stop_snapshots: bool = False

    @classmethod
    def of(cls, command: Sequence[str]) -> "Effects":
        """Caffe's defaults, changed by the flags of ``command``; for `caffe train`, whether its
        stop writes a snapshot, from the solver file it names. A command that is not `caffe
        train` gets the defaults (its own handling of the signals decides), and is asked for a
        snapshot before it is stopped."""
        on = {signal.SIGHUP: "snapshot", signal.SIGINT: "stop"}
        for name, signum in _FLAGS.items():
            on[signum] = flag(command, name) or on[signum]
        solver = flag(command, "solver") if is_caffe_train(command) else None
        return cls(on, solver is not None and _snapshots_after_train(solver))

    def signal_for(self, effect: str) -> Optional[int]:
        """The signal whose effect is ``effect``, or None when neither has it."""
        return next((s for s, e in self.on.items() if e == effect), None)

    def describe(self, signum: int) -> str:
        """``SIGHUP: -sighup_effect snapshot``."""
        flag = next(f for f, s in _FLAGS.items() if s == signum)
        return f"{signal.Signals(signum).name}: -{flag} {self.on[signum]}"


def is_caffe_train(command: Sequence[str]) -> bool:
    """``caffe train ...`` (the tool by any path, or its ``caffe.bin`` build name): the one
    command whose signal handling and snapshot at the end of training this module knows."""
    return (
        len(command) > 1
        and os.path.basename(command[0]) in ("caffe", "caffe.bin")
        and command[1] == "train"
    )


def _snapshots_after_train(solver: str) -> bool:
    try:
        return value_of(parse(read_text(solver), solver), "snapshot_after_train", BOOL, True)
    except NanToolsError:  # unreadable or odd: Caffe reports it itself
        return False


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
