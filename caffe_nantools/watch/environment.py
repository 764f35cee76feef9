"""The command's environment: glog made to show watch Caffe's INFO lines (the losses, rates and
debug_info it reads), or a refusal where the command line hides them, and Python's bytecode
cache kept out of the user's folders."""

from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.watch.command import flag

#: glog's variables that decide where its lines go; when the user set none, they go to stderr.
DESTINATION = ("GLOG_logtostderr", "GLOG_alsologtostderr", "GLOG_stderrthreshold", "GLOG_log_dir")
_BOOLEANS = ("logtostderr", "alsologtostderr")


class HiddenLinesError(NanToolsError):
    """The command's own flags keep Caffe's INFO lines from watch: it would check nothing."""


def child_env(
    environ: Mapping[str, str], command: Sequence[str] = ()
) -> Tuple[Dict[str, str], List[str]]:
    """The command's environment, and notes on what watch changed in it: glog's lines sent to
    stderr unless the user said where they go (then also to stderr, where that sends INFO
    elsewhere), from INFO up (``GLOG_minloglevel=0``), Python's stdout unbuffered unless the user
    set it, and no bytecode written beside the user's files unless the user said where it goes.

    Raises:
        HiddenLinesError: `caffe`'s command line sets glog's flags so that INFO lines never reach
            stderr (a flag there overrides the environment): watch could check nothing.
    """
    env = dict(environ)
    notes = []
    if not any(name in env for name in DESTINATION):
        env["GLOG_logtostderr"] = "1"
    given = _glog_flags(command)
    if not _to_stderr(env, given):
        env["GLOG_alsologtostderr"] = "1"
        if not _to_stderr(env, given):
            shown = _shown(given)
            raise HiddenLinesError(
                f"the command line's {shown} keep{'s' * (' ' not in shown)} Caffe's INFO lines "
                "(losses, rates, debug_info) from stderr, where watch reads them: add -alsologtostderr"
            )
        notes.append(
            "glog's variables send Caffe's INFO lines (losses, rates, debug_info) to files, not to "
            "stderr: the command runs with GLOG_alsologtostderr=1 too, so watch sees them (the files "
            "are still written)"
        )
    level = env.get("GLOG_minloglevel", "0").strip()
    if level not in ("", "0"):
        notes.append(
            f"GLOG_minloglevel={level} would hide Caffe's INFO lines (losses, rates, debug_info) "
            "from watch: the command runs with GLOG_minloglevel=0"
        )
    env["GLOG_minloglevel"] = "0"
    # A Python layer's print (or a script's) reaches watch as it is printed, not when a block
    # of stdout fills up or the run ends: a NaN it shows stops the run in time.
    env.setdefault("PYTHONUNBUFFERED", "1")
    if "PYTHONPYCACHEPREFIX" not in env:
        # A Python layer's module beside the user's net gets no __pycache__ there. Not a cache
        # prefix: Python would miss every existing cache and compile numpy and caffe again.
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if _number(given.get("minloglevel"), 0) != 0:
        raise HiddenLinesError(
            f"-minloglevel={given['minloglevel']} on the command line hides Caffe's INFO lines "
            "(losses, rates, debug_info) from watch: remove it (watch shows them)"
        )
    return env, notes


def _glog_flags(command: Sequence[str]) -> Dict[str, str]:
    """glog's flags on the command line of `caffe` (any action), which override glog's
    variables: ``-minloglevel=2``, ``-log_dir DIR``, ``-logtostderr``, ``-nologtostderr``..."""
    if not command or os.path.basename(command[0]) not in ("caffe", "caffe.bin"):
        return {}
    given = {}
    for name in ("minloglevel", "stderrthreshold", "log_dir"):
        value = flag(command, name)
        if value is not None:
            given[name] = value
    for arg in command[1:]:  # a boolean flag takes no value of its own after it
        key, sep, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-"):
            continue
        if key in _BOOLEANS:
            given[key] = value if sep else "true"
        elif key.startswith("no") and key[2:] in _BOOLEANS and not sep:
            given[key[2:]] = "false"
    return given


def _to_stderr(env: Mapping[str, str], given: Mapping[str, str]) -> bool:
    """Whether glog sends INFO lines to stderr, with these variables and these flags."""

    def setting(name: str) -> Optional[str]:
        return given.get(name, env.get(f"GLOG_{name}"))

    return (
        _true(setting("logtostderr"))
        or _true(setting("alsologtostderr"))
        or _number(setting("stderrthreshold"), 2) <= 0
    )


def _true(value: Optional[str]) -> bool:
    # glog reads a variable by its first letter (an empty one is true); gflags takes these words.
    if value is None:
        return False
    value = value.strip().lower()
    return value == "" or value[0] in "ty1"


def _number(value: Optional[str], default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _shown(given: Mapping[str, str]) -> str:
    return " ".join(
        f"-{name}={given[name]}"
        for name in ("logtostderr", "alsologtostderr", "stderrthreshold", "log_dir")
        if name in given
    )
