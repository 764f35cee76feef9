"""What CheckFiniteLayer does, without Caffe: its param_str, and what happens on a bad blob.

``layers.py`` only moves Caffe blobs in and out of a :class:`Checker`; everything that can be
tested without Caffe lives here.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.errors import CheckConfigError, NonFiniteError
from caffe_nantools.finite import finite_stats, is_finite

PASSES = ("forward", "backward", "both")
ACTIONS = ("raise", "warn", "dump")
PHASES = {0: "TRAIN", 1: "TEST"}


@dataclass(frozen=True)
class CheckConfig:
    """The options of one check layer, as its ``param_str`` gives them.

    Attributes:
        name: label of the layer in messages and dump file names.
        blobs: names of the checked blobs, one per bottom (Caffe does not tell a Python layer
            its blob names); empty means ``bottom[0]``, ``bottom[1]``...
        writer: the layer whose output the check follows (inject writes it), for the verdict;
            None for a net input or a hand-written check.
        check: ``forward`` (bottom data), ``backward`` (top diff) or ``both``.
        on: ``raise`` a NonFiniteError, ``warn`` in the log and go on, or ``dump`` the blobs
            and a JSON report to ``dump_dir`` and then raise.
        dump_dir: where ``on=dump`` writes.
        max_abs: also act on finite values with ``|x| > max_abs``, the early sign of a blow-up.
        every: check only every N-th pass (the 0th, Nth, 2Nth...).
    """

    name: str = "CheckFiniteLayer"
    blobs: Tuple[str, ...] = ()
    writer: Optional[str] = None
    check: str = "both"
    on: str = "raise"
    dump_dir: str = "nancheck-dump"
    max_abs: Optional[float] = None
    every: int = 1


def _text(key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CheckConfigError(f"{key} must be a non-empty string, got {_shown(value)}")
    return value.strip()


def _choice(allowed: Sequence[str]) -> Callable[[str, object], str]:
    def convert(key: str, value) -> str:
        if value not in allowed:
            raise CheckConfigError(
                f"{key}={_shown(value)} is not allowed (allowed values: {', '.join(allowed)})"
            )
        return value

    return convert


def _names(key: str, value) -> Tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise CheckConfigError(f"{key} must be a list of blob names, got {_shown(value)}")
    return tuple(_text(key, item) for item in items)


def _positive_float(key: str, value) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise CheckConfigError(f"{key}={_shown(value)} must be a finite number > 0")
    return number


#: The largest ``every``: Caffe counts iterations in an int, far below it.
MAX_EVERY = 2**63 - 1


def _positive_int(key: str, value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = (
            value if 1 <= value <= MAX_EVERY else None
        )  # str() of a huge int fails on Python >= 3.11
    else:
        digits = str(value).strip().lstrip("+") if isinstance(value, str) else ""
        number = (
            int(digits)
            if re.fullmatch(r"[0-9]{1,19}", digits) and 1 <= int(digits) <= MAX_EVERY
            else None
        )
    if number is None:
        raise CheckConfigError(
            f"{key}={_shown(value)} must be an integer >= 1 (and <= {MAX_EVERY})"
        )
    return number


def _shown(value, limit: int = 40) -> str:
    """A value for a one-line message, cut short when long (a number of thousands of digits)."""
    text = (
        repr(value)
        if not isinstance(value, int) or value.bit_length() < 64
        else f"an integer of {value.bit_length()} bits"
    )
    return text if len(text) <= limit else f"{text[: limit - 8]}... ({len(text)} characters)"


_CONVERTERS: Dict[str, Callable] = {
    "name": _text,
    "blobs": _names,
    "writer": _text,
    "check": _choice(PASSES),
    "on": _choice(ACTIONS),
    "dump_dir": _text,
    "max_abs": _positive_float,
    "every": _positive_int,
}


def check_value(key: str, value):
    """One param_str value converted as the layer converts it.

    Raises:
        CheckConfigError: an unknown key or a bad value.
    """
    if key not in _CONVERTERS:
        raise CheckConfigError(
            f"unknown key {key!r} (allowed keys: {', '.join(sorted(_CONVERTERS))})"
        )
    return _CONVERTERS[key](key, value)


def _split_pairs(text: str) -> Dict[str, str]:
    """``a=1 b=x,y;c=2`` -> {a: 1, b: "x,y", c: 2}: pairs are separated by whitespace, ``;``
    or ``,``, and a comma-separated piece without ``=`` continues the previous value (a list)."""
    pairs: Dict[str, str] = {}
    key = None
    for piece in re.split(r"[\s;,]+", text.strip()):
        if not piece:
            continue
        if "=" in piece:
            key, _, value = piece.partition("=")
            key = key.strip()
            if not key:
                raise CheckConfigError(f"{piece!r} has no key before '='")
            if key in pairs:
                raise CheckConfigError(f"key {key!r} is given twice")
            pairs[key] = value
        elif key is None:
            raise CheckConfigError(
                f"{piece!r} is not a key=value pair (use key=value pairs, a JSON object, "
                "or one bare word as the name)"
            )
        else:
            pairs[key] += "," + piece
    return pairs


def parse_param_str(param_str: str) -> CheckConfig:
    """Read a check layer's ``param_str``.

    Three forms are accepted: a JSON object (``{"name": "fc7", "on": "warn"}``), ``key=value``
    pairs (``name=fc7 on=warn blobs=fc7,fc8``) and one bare word, taken as the name (the
    original StackOverflow layer's form). An empty string gives the defaults.

    Raises:
        CheckConfigError: unknown key or bad value; the message names the key, the allowed
            keys or values, and quotes the whole param_str.
    """
    text = param_str.strip()
    try:
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except ValueError as e:
                raise CheckConfigError(f"not valid JSON: {e}") from None
            except RecursionError:
                raise CheckConfigError(
                    "JSON nested too deeply (an object of plain values is expected)"
                ) from None
            if not isinstance(raw, dict):
                raise CheckConfigError("a JSON param_str must be an object")
        elif "=" in text:
            raw = _split_pairs(text)
        elif re.fullmatch(r"[^\s{}\[\]\"',;]+", text):
            raw = {"name": text}
        elif text:
            raise CheckConfigError(
                "use key=value pairs, a JSON object, or one bare word as the name"
            )
        else:
            raw = {}
        for key in sorted(set(raw) - set(_CONVERTERS))[:1]:
            check_value(key, raw[key])
        values = {key: check_value(key, value) for key, value in raw.items()}
        if "dump_dir" in values and values.get("on") != "dump":
            raise CheckConfigError("dump_dir is used only with on=dump")
    except CheckConfigError as e:
        raise CheckConfigError(
            f"CheckFiniteLayer param_str {_shown(param_str, 200)}: {e}"
        ) from None
    return CheckConfig(**values)


def _safe_filename(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "blob"


def _atomic_write(path: str, write: Callable) -> None:
    """Write through a temporary file in the same folder, so a crash leaves no half file."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def glog_line(level: str, message: str, source: str = "check_finite.py:0") -> str:
    """Format a line the way Caffe's glog does, so it sits in Caffe's log like Caffe's own."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now))
    micros = int((now % 1) * 1e6)
    return f"{level}{stamp}.{micros:06d} {threading.get_native_id():5d} {source}] {message}"


class Checker:
    """Runs one check layer's checks and acts on what they find.

    The caller signals each forward pass with :meth:`start_forward` and hands over the arrays
    with :meth:`check`.

    Args:
        config: the parsed param_str.
        n_blobs: how many blobs the layer checks (its bottom count).
        phase: ``TRAIN`` or ``TEST``.
        log: where warning and error lines go; Caffe's log is stderr.
    """

    def __init__(self, config: CheckConfig, n_blobs: int, phase: str, log=None) -> None:
        if config.blobs and len(config.blobs) != n_blobs:
            raise CheckConfigError(
                f"CheckFiniteLayer {config.name!r}: param_str names {len(config.blobs)} "
                f"blobs ({', '.join(config.blobs)}) but the layer has {n_blobs} bottoms"
            )
        self.config = config
        self.phase = phase
        self.blob_names = config.blobs or tuple(f"bottom[{i}]" for i in range(n_blobs))
        self.iteration = -1
        self.backward_due = False
        self._forward = config.check in ("forward", "both")
        self._backward = config.check in ("backward", "both")
        self._log = log

    def start_forward(self) -> bool:
        """Count a new forward pass; tell whether its bottoms are to be checked."""
        self.iteration += 1
        due = self.iteration % self.config.every == 0
        self.backward_due = due and self._backward
        return due and self._forward

    def check(self, pass_: str, arrays: Sequence[Optional[np.ndarray]]) -> None:
        """Check the blobs of one pass (None: not checked, e.g. no propagate_down) and act.

        Raises:
            NonFiniteError: for the first bad blob, unless ``on=warn``.
        """
        max_abs = self.config.max_abs
        bad = [i for i, x in enumerate(arrays) if x is not None and not is_finite(x, max_abs)]
        if bad:
            self._act(pass_, {i: arrays[i] for i in bad})

    def _act(self, pass_: str, bad: Dict[int, np.ndarray]) -> None:
        errors = [
            NonFiniteError(
                layer=self.config.name,
                blob=self.blob_names[i],
                writer=self.config.writer,
                pass_=pass_,
                phase=self.phase,
                iteration=self.iteration,
                stats=finite_stats(x, self.config.max_abs),
                max_abs=self.config.max_abs,
            )
            for i, x in bad.items()
        ]
        on = self.config.on
        # `caffe train` turns a Python exception into a bare abort without its text, so the
        # log line is written before raising.
        level, label = ("W", "warning") if on == "warn" else ("E", "NonFiniteError")
        lines = [glog_line(level, f"caffe-nantools {label}: {e}") for e in errors]
        if on == "dump":
            try:
                report = self._dump(pass_, bad, errors)
                note = f"caffe-nantools dumped the bad blobs; report: {report}"
            except (OSError, ValueError) as e:
                # The bad blob is the news; a failed dump (no room, no such folder, a NUL byte
                # in dump_dir) must not hide it.
                shown = re.sub(
                    r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], self.config.dump_dir
                )
                note = f"caffe-nantools could not dump the bad blobs to {shown}: {e}"
            lines.append(glog_line("E", note))
        log = self._log or sys.stderr
        log.write("\n".join(lines) + "\n")
        log.flush()
        if on != "warn":
            raise errors[0]

    def _dump(self, pass_: str, bad: Dict[int, np.ndarray], errors: List[NonFiniteError]) -> str:
        folder = self.config.dump_dir
        os.makedirs(folder, exist_ok=True)
        stem = f"{_safe_filename(self.config.name)}-{self.phase}-iter{self.iteration}-{pass_}"
        records = []
        for (i, x), error in zip(bad.items(), errors):
            path = os.path.join(folder, f"{stem}-{_safe_filename(self.blob_names[i])}.npy")
            _atomic_write(path, lambda f, x=x: np.save(f, x))
            records.append({**error.to_dict(), "file": os.path.abspath(path)})
        report = os.path.join(folder, stem + ".json")
        text = json.dumps({"errors": records}, indent=2) + "\n"
        _atomic_write(report, lambda f: f.write(text.encode()))
        return os.path.abspath(report)
