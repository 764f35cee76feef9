"""Caffe's own signal handling, as the command line sets it: `caffe train` snapshots on SIGHUP
and stops (writing its end-of-training snapshot, unless the solver's ``snapshot_after_train`` is
false) on SIGINT, unless ``-sighup_effect`` or ``-sigint_effect`` (``snapshot``, ``stop`` or
``none``) say otherwise."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from caffe_nantools.watch.command import CommandSolver, flag

_FLAGS = {"sighup_effect": signal.SIGHUP, "sigint_effect": signal.SIGINT}


@dataclass(frozen=True)
class Effects:
    """What Caffe does on each of the signals it handles (``snapshot``, ``stop``, ``none``)."""

    on: Dict[int, str]
    #: Caffe's stop writes a snapshot: the solver the command names leaves snapshot_after_train
    #: on (Caffe's default). False where that is not known (no solver that can be read).
    stop_snapshots: bool = False

    @classmethod
    def of(cls, command: Sequence[str], solver: Optional[CommandSolver] = None) -> Effects:
        """Caffe's defaults, changed by the flags of ``command``; for `caffe train`, whether its
        stop writes a snapshot, from the solver file it names (``solver``, read already, or read
        here). A command that is not `caffe train` gets the defaults (its own handling of the
        signals decides), and is asked for a snapshot before it is stopped."""
        on = {signal.SIGHUP: "snapshot", signal.SIGINT: "stop"}
        for name, signum in _FLAGS.items():
            on[signum] = flag(command, name) or on[signum]
        solver = solver or CommandSolver.of(command)
        return cls(on, solver is not None and solver.after_train)

    def signal_for(self, effect: str) -> Optional[int]:
        """The signal whose effect is ``effect``, or None when neither has it."""
        return next((s for s, e in self.on.items() if e == effect), None)

    def describe(self, signum: int) -> str:
        """``SIGHUP: -sighup_effect snapshot``."""
        flag = next(f for f, s in _FLAGS.items() if s == signum)
        return f"{signal.Signals(signum).name}: -{flag} {self.on[signum]}"
