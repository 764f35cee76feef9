"""Child processes that end with their parent: a child that outlives a parent killed with
SIGKILL (nothing could pass the signal on) trains or reads on, under PID 1, for nobody."""

from __future__ import annotations

import os
import signal

_PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int) -> None:
    """In a child, before it does its work (a ``preexec_fn``, a worker's first call): on Linux
    the kernel sends it SIGKILL when ``parent`` dies; elsewhere nothing is done."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError, TypeError):  # not Linux
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
