"""The pieces every command that starts a child process shares: a child that ends with its
parent, this package importable in a Python child, and how a Caffe child's log says why it
ended (Caffe ends its process on a failed CHECK through glog's abort, which Python cannot
catch: that is why hunt, scan and replay run Caffe's work apart from the command's own)."""

from __future__ import annotations

import ctypes
import os
import re
import signal
from typing import Dict, Optional

import caffe_nantools

_PR_SET_PDEATHSIG = 1

try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (AttributeError, OSError, TypeError):  # not Linux
    _PRCTL = None

#: glog's fatal line (``F0512 10:11:12.123456  4242 net.cpp:90] Check failed: ...``, the
#: date ``F20240512`` since glog 0.5): the file:line and message are kept, the level, time and
#: thread left out.
_FATAL = re.compile(r"^F(?:\d{4})?\d{4} [\d:.]+ +\d+ (.*)$", re.M)


def end_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """Run in the child (a ``preexec_fn``, or a worker's first step): the kernel sends it
    ``signum`` when the parent ``parent`` dies, even by SIGKILL (nothing else could pass it
    on), so that a child never outlives its command. Where there is no prctl (not Linux),
    nothing."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, int(signum))
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def python_env(**settings: str) -> Dict[str, str]:
    """The environment of a ``python -m caffe_nantools...`` child: this package first on
    PYTHONPATH (the command may run from a checkout that is not installed), ``settings`` on
    top of the command's own."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(caffe_nantools.__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **settings)


def log_tail(log: str, size: int = 1 << 16) -> str:
    """The end of the log file ``log``, where the lines of a process's last moments are."""
    with open(log, "rb") as f:
        f.seek(max(0, os.path.getsize(log) - size))
        return f.read().decode("utf-8", "replace")


def fatal_line(text: str) -> Optional[str]:
    """The first of glog's fatal lines in ``text`` (a failed CHECK, a LOG(FATAL)) as
    ``file:line] message``; None when there is none."""
    found = _FATAL.search(text)
    return found.group(1).strip() if found else None
