"""How hunt's training process ended when Caffe ended it: the signal that killed it, the
iterations it finished, the last layer the log shows at work, the Python exception behind a
Boost.Python error, and the cause the fatal line itself names (a missing file, a permission,
a module, a byte-order mark), which the scan's bad records must not be blamed for."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from caffe_nantools.inject import CHECK_PREFIX, check_place
from caffe_nantools.prototxt import Net, NetState

#: How far back from the end of the log the last layer line is looked for.
TAIL_BYTES = 1 << 20
#: What protobuf says of a UTF-8 byte-order mark (its first byte, 0xEF) at the start of a file.
BOM_REFUSED = "non ascii codepoint 239"
UTF8_BOM = b"\xef\xbb\xbf"
#: What a signal that ends a process without a word most likely means.
SIGNAL_MEANINGS = {
    "SIGKILL": "out of memory? (the kernel's OOM killer sends SIGKILL, as does `kill -9`; "
    "`dmesg` tells which)",
    "SIGSEGV": "segmentation fault",
    "SIGBUS": "bus error",
    "SIGABRT": "aborted",
}
#: ``[Forward] Layer X, top blob ...`` (debug_info), or a layer being set up.
_LAYER_LINE = re.compile(
    rb"\[(Forward|Backward)\] Layer (.+?), (?:top|bottom|param) blob|"
    rb"(?:Creating Layer|Setting up) (.+?)\r?$",
    re.M,
)
_PY_EXCEPTION = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))(?::\s*(.*))?$"
)
_MISSING = re.compile(r"(?:File not found|No such file or directory)(?::\s*(\S+))?")
_MODULE = re.compile(r"No module named '?([\w.]+)'?")


@dataclass
class Ending:
    """What ended the process. ``cause`` is the reason the fatal line or the signal names
    (None when it names none): then no record is to blame for the abort."""

    exit_code: int
    signal: Optional[str] = None  # SIGKILL, SIGSEGV, ...
    iterations: int = 0
    last_layer: Optional[Tuple[str, str]] = None  # (pass or "setup", layer as the log names it)
    python_error: Optional[Tuple[int, str]] = None  # (line, text)
    cause: Optional[str] = None

    @property
    def how(self) -> str:
        """``killed by SIGKILL``, ``segmentation fault (SIGSEGV)``, ``exit code 1``."""
        if self.signal is None:
            return f"exit code {self.exit_code}"
        meaning = SIGNAL_MEANINGS.get(self.signal)
        if self.signal == "SIGKILL" or meaning is None:
            return f"killed by {self.signal}"
        return f"{meaning} ({self.signal})"

    @property
    def why_killed(self) -> str:
        """What the signal most likely means, for a SIGKILL."""
        return f"{self.how}: {SIGNAL_MEANINGS['SIGKILL']}"


def read_ending(
    log: str,
    exit_code: int,
    iterations: int,
    *,
    fatal: Optional[str] = None,
    user_files: Sequence[str] = (),
) -> Ending:
    """The ending of the run that ``log`` recorded; ``iterations`` the ones known to have
    finished (the child's count, else the log's), ``fatal`` the line diagnose found that says
    why, ``user_files`` the user's solver and nets (one may start with a byte-order mark)."""
    ending = Ending(exit_code, iterations=iterations)
    if exit_code < 0:
        try:
            ending.signal = signal.Signals(-exit_code).name
        except ValueError:
            ending.signal = f"signal {-exit_code}"
    tail, first_line = _tail(log)
    ending.last_layer = _last_layer(tail)
    ending.python_error = _python_error(tail, first_line)
    ending.cause = _named_cause(fatal, ending, user_files)
    return ending


def crash_place(ending: Ending, net: Net) -> Optional[str]:
    """Where a process that ended without a word was, from the last layer line of the trace."""
    if ending.last_layer is None:
        return None
    pass_, name = ending.last_layer
    if pass_ == "setup":
        return f"while Caffe set up layer {name} (the log's last line names it)"
    after = name
    if name.startswith(CHECK_PREFIX):
        blob, writer = check_place(name)
        after = writer or blob
    layers = [l.name for l in net.active_layers(NetState("TRAIN"))]
    where = (
        f"the last check line in the log is {name} ({pass_})"
        if name != after
        else (f"the log's last layer line is {name} ({pass_})")
    )
    if after in layers:
        i = layers.index(after)
        step = 1 if pass_ == "forward" else -1
        if 0 <= i + step < len(layers):
            where += f": the process ended after layer {after}, in {layers[i + step]}'s {pass_} pass or later"
    return where


def _tail(log: str) -> Tuple[bytes, int]:
    """The end of the log, from the start of a line, and that line's number."""
    try:
        with open(log, "rb") as f:
            start = max(0, os.path.getsize(log) - TAIL_BYTES)
            lines = 1 + sum(
                f.read(min(1 << 20, start - at)).count(b"\n") for at in range(0, start, 1 << 20)
            )
            tail = f.read()
    except OSError:
        return b"", 1
    if start:
        cut = tail.find(b"\n") + 1
        return tail[cut:], lines + 1
    return tail, lines


def _last_layer(tail: bytes) -> Optional[Tuple[str, str]]:
    found = None
    for m in _LAYER_LINE.finditer(tail):
        found = m
    if found is None:
        return None
    if found.group(1):
        return found.group(1).decode().lower(), found.group(2).decode("utf-8", "replace")
    return "setup", found.group(3).decode("utf-8", "replace").strip()


def _python_error(tail: bytes, first_line: int) -> Optional[Tuple[int, str]]:
    """The Python exception that says why, with its line: a Boost.Python ``SystemError`` or
    ``error_already_set`` only says that one happened, so the first other one is taken."""
    for number, line in enumerate(tail.decode("utf-8", "replace").splitlines(), first_line):
        line = line.strip()
        if (
            _PY_EXCEPTION.match(line)
            and "Boost.Python" not in line
            and "error_already_set" not in line
        ):
            return number, line
    return None


def _named_cause(fatal: Optional[str], ending: Ending, user_files: Sequence[str]) -> Optional[str]:
    text = " ".join(t for t in (fatal, ending.python_error and ending.python_error[1]) if t)
    module = _MODULE.search(text)
    if module is not None:
        return (
            f"Python cannot import module {module.group(1)!r}: put its folder on PYTHONPATH "
            f"(or run from the folder that holds it; hunt ran in {os.getcwd()})"
        )
    if BOM_REFUSED in text or "Failed to parse" in text:
        marked = [f for f in user_files if _starts_with_bom(f)]
        if marked:
            return (
                f"{marked[0]} starts with a UTF-8 byte-order mark (BOM), which Caffe's parser "
                "refuses: remove the BOM (save the file as UTF-8 without BOM)"
            )
    missing = _MISSING.search(text)
    if missing is not None:
        name = missing.group(1)
        what = f"{name} is not there" if name else "a file or folder Caffe opens is not there"
        relative = name is None or not os.path.isabs(name)
        return what + (
            f" (Caffe opens relative paths from the folder it runs in: {os.getcwd()})"
            if relative
            else ""
        )
    if "Permission denied" in text:
        return (
            "permission denied: Caffe cannot open a file it needs, or lock a store it reads "
            "(an LMDB is opened with a lock file in its folder, so a read-only store stops "
            "it): give write access, or train on a copy"
        )
    if ending.signal == "SIGKILL":
        return f"the training process was {ending.why_killed}"
    return None


def _starts_with_bom(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == UTF8_BOM
    except OSError:
        return False
