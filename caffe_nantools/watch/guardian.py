"""The guardian between watch and the command it runs, so that no process of the command outlives
watch, even one killed by SIGKILL (which runs no code of its own).

watch starts this file as a script (the standard library only, no import of the package, so it
starts fast and runs under ``python -I``): ``guardian.py LIFELINE REPORT -- COMMAND...``. It
becomes a child subreaper (orphans of the command's processes come to it, not to init), starts
the command in a session of its own and writes ``started PID`` (or ``error ERRNO``) to REPORT.
It holds the read end of LIFELINE, whose only write end watch holds: end of file on it means
watch is gone (or asks it to end the command), and every process below the guardian is ended
(SIGTERM, then SIGKILL after GRACE seconds). When the command's first process ends, it writes
``ended``; what that process left running may end by itself until watch asks, and what is ended
then is named (``left PID NAME``). The guardian exits as the command did (its status, or killed
by its signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

#: Seconds the processes left have between SIGTERM and SIGKILL.
GRACE = 5.0
#: Seconds between looks at what the command left running (their ends are not signalled here).
POLL = 0.2
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def main(argv: List[str]) -> int:
    lifeline, report = int(argv[1]), int(argv[2])
    command = argv[4:] if argv[3:4] == ["--"] else argv[3:]
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the select up
    me = os.getpid()
    try:
        child = subprocess.Popen(
            command,
            start_new_session=True,
            preexec_fn=(lambda: _end_with(me, prctl)) if prctl is not None else None,
        )
    except OSError as e:
        os.write(report, f"error {e.errno or 0}\n".encode())
        return 127
    os.write(report, f"started {child.pid}\n".encode())
    while _exited(child.pid) is None:
        if _watch_gone(lifeline, wake_r, None):
            _end_all(me, child.pid)  # all of it goes, the command too
            return 0
        _reap(me, child.pid)
    os.write(report, b"ended\n")
    # What it left running may be acting on a signal (a stop that writes a snapshot): watch says
    # when it must go, and until then it may end by itself.
    while [pid for pid, _ in _below(me) if pid != child.pid]:
        if _watch_gone(lifeline, wake_r, POLL):
            break
        _reap(me, child.pid)
    left = _end_all(me, child.pid, spare=child.pid)
    os.write(report, b"".join(f"left {pid} {name}\n".encode() for pid, name in left))
    _, status = os.waitpid(child.pid, 0)
    if os.WIFSIGNALED(status):
        _die_of(os.WTERMSIG(status))
    return os.WEXITSTATUS(status)


def _watch_gone(lifeline: int, wake: int, timeout: Optional[float]) -> bool:
    """Waits for a child to end (or ``timeout`` seconds); whether watch is gone meanwhile (or
    asks for the end)."""
    ready, _, _ = select.select([lifeline, wake], [], [], timeout)
    if wake in ready:
        os.read(wake, 4096)
    return lifeline in ready and not os.read(lifeline, 4096)


def _prctl() -> Optional[Callable[..., int]]:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError, TypeError):  # not Linux: the command's group is all it ends
        return None


def _end_with(guardian: int, prctl: Callable[..., int]) -> None:
    # In the command's first process: SIGTERM should the guardian itself be killed.
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != guardian:  # it died before that was set
        os._exit(1)


def _exited(pid: int) -> Optional[object]:
    """Whether the command's first process ended, left unreaped (its pid, and its process group,
    stay taken, so watch's signals to that group reach no other)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)


def _end_all(me: int, group: int, spare: Optional[int] = None) -> List[Tuple[int, str]]:
    """Every process below the guardian (and in the command's group) ended: SIGTERM, then
    SIGKILL to those still there after GRACE seconds (one stuck in the kernel is given up on
    GRACE seconds later). Returns those found at first (pid, name), ``spare`` (the command's
    ended first process) left out."""
    if not os.path.isdir("/proc"):  # no process tree to walk: the command's group alone
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGTERM)
        return []
    found = [(pid, name) for pid, name in _below(me) if pid != spare]
    start = time.monotonic()
    sent: Dict[int, int] = {}  # each process gets each signal once
    while time.monotonic() < start + 2 * GRACE:
        signum = signal.SIGTERM if time.monotonic() < start + GRACE else signal.SIGKILL
        running = [pid for pid, _ in _below(me) if pid != spare]
        if not running:
            break
        for pid in running:
            if sent.get(pid) != signum:
                with contextlib.suppress(OSError):  # gone already
                    os.kill(pid, signum)
                    os.kill(pid, signal.SIGCONT)  # one watch froze acts on it
        sent.update((pid, signum) for pid in running)
        time.sleep(0.05)
        _reap(me, spare)
    return found


def _reap(me: int, spare: Optional[int]) -> None:
    """The guardian's ended children (orphans that came to it), but not ``spare``."""
    for pid, state in _children(me):
        if pid != spare and state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _below(me: int) -> List[Tuple[int, str]]:
    """The processes below ``me`` that still run (pid, name); zombies are left out."""
    tree = _tree()
    found, todo = [], [me]
    while todo:
        for pid, state, name in tree.get(todo.pop(), ()):
            todo.append(pid)
            if state != "Z":
                found.append((pid, name))
    return found


def _children(me: int) -> List[Tuple[int, str]]:
    return [(pid, state) for pid, state, _ in _tree().get(me, ())]


def _tree() -> Dict[int, List[Tuple[int, str, str]]]:
    """Each process's children (pid, state, name), from /proc (empty where there is none)."""
    tree: Dict[int, List[Tuple[int, str, str]]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return tree
    for entry in names:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # it ended meanwhile
            continue
        name = stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode("utf-8", "replace")
        state, ppid = stat[stat.rfind(b")") + 2 :].split()[:2]
        tree.setdefault(int(ppid), []).append((int(entry), state.decode(), name))
    return tree


def _die_of(signum: int) -> None:
    """Ends the guardian by the signal that killed the command (no core file of its own)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal that does not end a process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
