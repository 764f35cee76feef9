"""Caffe's own signal handling, as the command line sets it: `caffe train` snapshots on SIGHUP
and stops (writing its end-of-training snapshot) on SIGINT, unless ``-sighup_effect`` or
``-sigint_effect`` (``snapshot``, ``stop`` or ``none``) say otherwise."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

_FLAGS = {"sighup_effect": signal.SIGHUP, "sigint_effect": signal.SIGINT}


@dataclass(frozen=True)
class Effects:
    """What Caffe does on each of the signals it handles (``snapshot``, ``stop``, ``none``)."""

    on: Dict[int, str]

    @classmethod
    def of(cls, command: Sequence[str]) -> "Effects":
        """Caffe's defaults, changed by the flags of ``command``. A command that is not
        `caffe train` gets the defaults (its own handling of the signals decides)."""
        on = {signal.SIGHUP: "snapshot", signal.SIGINT: "stop"}
        for name, signum in _FLAGS.items():
            on[signum] = flag(command, name) or on[signum]
        return cls(on)

    def signal_for(self, effect: str) -> Optional[int]:
        """The signal whose effect is ``effect``, or None when neither has it."""
        return next((s for s, e in self.on.items() if e == effect), None)

    def describe(self, signum: int) -> str:
        """``SIGHUP: -sighup_effect snapshot``."""
        flag = next(f for f, s in _FLAGS.items() if s == signum)
        return f"{signal.Signals(signum).name}: -{flag} {self.on[signum]}"


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
