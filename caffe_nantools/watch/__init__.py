"""``watch``: run `caffe train` (or any command that trains with Caffe), pass its output through
as it comes, keep it in a log, read it as it is written and stop the run at the first
non-finite value with a snapshot, through Caffe's own signal handling (its stop, which writes
one, or a snapshot and then a stop).

    from caffe_nantools.watch import watch
    result = watch(["caffe", "train", "-solver", "solver.prototxt"], on_event=print)
    result.exit_status, result.requested, result.diagnosis
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple

from caffe_nantools import arguments
from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import FileError, check_writable, refuse_overlaps
from caffe_nantools.finite_snapshot import KEEP_GOOD, Finiteness, check_snapshot, keep_every
from caffe_nantools.watch.command import CommandSolver, is_caffe_train
from caffe_nantools.watch.diagnosis import diagnosis_of
from caffe_nantools.watch.effects import Effects
from caffe_nantools.watch.environment import child_env
from caffe_nantools.watch.follow_up import hunt_after
from caffe_nantools.watch.keeper import Keeper
from caffe_nantools.watch.monitor import Monitor
from caffe_nantools.watch.process import Child, Started, Terminal
from caffe_nantools.watch.report import (
    Hunted,
    Seen,
    Snapshot,
    WatchEvent,
    WatchResult,
    last_good,
    snapshots_of,
)

__all__ = ["WatchError", "WatchEvent", "WatchResult", "watch"]


class WatchError(NanToolsError):
    """The command cannot be watched: none given, or it cannot be started."""


def watch(
    command: Sequence[str],
    *,
    log: Optional[str] = None,
    stop_on_blowup: bool = False,
    snapshot: bool = True,
    on_event: Optional[Callable[[WatchEvent], None]] = None,
    timeout: float = 60.0,
    keep_good: Optional[float] = KEEP_GOOD,
    hunt: bool = False,
    resume: bool = False,
    keep_trace: bool = False,
) -> WatchResult:
    """``caffe-nantools watch [--log FILE] [--stop-on-blowup] [--no-snapshot] [--keep-good
    SECONDS] [--hunt [--resume]] -- COMMAND ...``.

    Args:
        command: the command and its arguments (``["caffe", "train", "-solver", "s.prototxt"]``).
        log: where its output is kept (a new file); default ``caffe-train-YYYYmmdd-HHMMSS.log``.
        stop_on_blowup: stop on values growing by orders of magnitude too, not only at a
            non-finite one.
        snapshot: ask Caffe for a snapshot before stopping it (without: SIGTERM, no snapshot).
        on_event: called with each :class:`WatchEvent` as it happens (warnings, the stop).
        timeout: seconds to wait for the snapshot, and for the command to end after each signal
            before the next, stronger one.
        keep_good: for `caffe train`, ask Caffe for a snapshot every this many seconds of
            training and keep the newest two whose values are all finite (0 or None: never).
        hunt: for `caffe train -solver S`, once a value went non-finite, hunt S from the last
            finite snapshot over the iterations up to the failing one and a margin
            (``result.hunted``: hunt's report and the command that resumes the training from the
            snapshot with the fix it verified, or why no hunt ran).
        resume: with ``hunt``, run that resume command under watch in turn, with the same
            options (once; ``result.resumed``, whose outcome is the exit status); its log is
            ``log`` with ``-resume`` before its extension.
        keep_trace: keep a sample of the debug_info trace for a report's pictures (as
            ``diagnose`` does; it slows the reading of a debug_info stream).

    Raises:
        WatchError: no command, one that cannot be started (one line), ``resume`` without
            ``hunt``.
        FileError: the log cannot be written, or exists already.
    """
    command = arguments.command("command", command)
    log = arguments.path("log", log, optional=True)
    options = _Options(
        stop_on_blowup=arguments.flag("stop_on_blowup", stop_on_blowup),
        snapshot=arguments.flag("snapshot", snapshot),
        timeout=arguments.positive("timeout", timeout),
        keep_good=keep_every("keep_good", keep_good),
        keep_trace=arguments.flag("keep_trace", keep_trace),
    )
    hunt, resume = arguments.flag("hunt", hunt), arguments.flag("resume", resume)
    if resume and not hunt:
        raise WatchError(
            "{resume}: needs {hunt} (it resumes with the fix the hunt verified)",
            arguments={"resume": True, "hunt": True},
        )
    if not command:
        raise WatchError(
            "no command to watch: give it after --, e.g. caffe-nantools watch -- caffe train -solver solver.prototxt"
        )
    emit = _Events(on_event)
    result = _watch_once(command, log, options, emit)
    if hunt and result.went_bad:
        result.hunted = _hunt(command, result, emit)
    if resume and result.hunted is not None and result.hunted.resume is not None:
        again = result.hunted.resume
        _tell(result, emit, WatchEvent("resume", f"resuming: {' '.join(again)}"))
        result.resumed = _watch_once(again, _resumed_log(log), options, _Events(on_event))
    return result


def _hunt(command: List[str], result: WatchResult, emit: _Events) -> Hunted:
    """``hunt=True``: the hunt from the last finite snapshot, told as it starts and ends."""

    def starting(state: str, iters: Optional[int]) -> None:
        over = f" over {iters} iterations" if iters else ""
        _tell(result, emit, WatchEvent("hunt", f"hunting from {state}{over}"))

    hunted = hunt_after(command, result, starting)
    if hunted.no_hunt:
        _tell(result, emit, WatchEvent("hunt", f"no hunt: {hunted.no_hunt}"))
    elif hunted.report is not None:
        v = hunted.report.verdict
        said = " ".join(hunted.resume) if hunted.resume else f"none ({hunted.no_resume})"
        _tell(result, emit, WatchEvent("hunt", f"hunt: cause {v.cause}; resume: {said}"))
    return hunted


def _tell(result: WatchResult, emit: _Events, event: WatchEvent) -> None:
    """An event after the run: in its result's events too."""
    emit(event)
    result.events.append(event)


def _resumed_log(log: Optional[str]) -> Optional[str]:
    """The resumed run's log: ``run-resume.log`` for ``run.log`` (a new timestamped one when
    none was given)."""
    if log is None:
        return None
    stem, ext = os.path.splitext(log)
    return f"{stem}-resume{ext}"


@dataclass(frozen=True)
class _Options:
    """How watch watches, as checked."""

    stop_on_blowup: bool
    snapshot: bool
    timeout: float
    keep_good: float
    keep_trace: bool


class _Events(List[WatchEvent]):
    """The events of a watch, each passed to ``on_event`` as it is added."""

    def __init__(self, on_event: Optional[Callable[[WatchEvent], None]]) -> None:
        super().__init__()
        self._on_event = on_event

    def __call__(self, event: WatchEvent) -> None:
        self.append(event)
        if self._on_event is not None:
            self._on_event(event)


def _watch_once(
    command: List[str], log: Optional[str], options: _Options, emit: _Events
) -> WatchResult:
    """One run of ``command`` under watch, to its end."""
    env, notes = child_env(os.environ, command)
    path, f = _new_log(log, command)
    solver = CommandSolver.of(command)
    effects = Effects.of(command, solver)
    keeper, not_kept = _keeper(command, solver, effects, options.keep_good, options.timeout)
    if keeper is None and options.keep_good and is_caffe_train(command):
        notes = notes + [not_kept]
    monitor = Monitor(
        effects,
        stop_on_blowup=options.stop_on_blowup,
        snapshot=options.snapshot,
        timeout=options.timeout,
        keeper=keeper,
        keep_trace=options.keep_trace,
    )
    returncode = _run(command, env, path, f, monitor, notes, emit)
    reader = monitor.reader
    if keeper is not None and returncode == -keeper.signum and reader.done is not None:
        # Caffe puts its signal handlers back once training is over: a request on its way then
        # ends the process, with the training and its last snapshot complete.
        emit(
            WatchEvent(
                "note",
                f"Caffe had ended its training (line {reader.done}: Optimization Done.) when "
                f"watch's snapshot request reached it; its end by that signal counts as a clean exit",
            )
        )
        returncode = 0
    bad_run = next((run for run in reader.runs if run.went_bad), None)
    for event in keeper.close(bad_run and bad_run.first_bad_line) if keeper is not None else []:
        emit(event)
    return _result(command, path, returncode, monitor, keeper, not_kept, solver, emit)


def _run(
    command: List[str],
    env: Dict[str, str],
    path: str,
    f: BinaryIO,
    monitor: Monitor,
    notes: List[str],
    emit: _Events,
) -> int:
    """The command started and watched to its end: its return code."""
    with f:
        try:
            started = Started(command, env)
        except OSError as e:
            f.close()
            os.unlink(path)  # empty, and made just now
            raise WatchError(_not_started(command[0], e)) from None
        emit(WatchEvent("start", f"logging to {path}"))
        for note in notes:
            emit(WatchEvent("note", note))
        return Child(started, f, monitor, emit, Terminal(sys.stdout), Terminal(sys.stderr)).run()


def _result(
    command: List[str],
    path: str,
    returncode: int,
    monitor: Monitor,
    keeper: Optional[Keeper],
    not_kept: Optional[str],
    solver: Optional[CommandSolver],
    events: List[WatchEvent],
) -> WatchResult:
    """What the run ended with: the snapshots named (those written after watch asked checked
    when a value went bad or watch stopped it), the last good one, the diagnosis."""
    reader = monitor.reader
    named = snapshots_of(reader.snapshots)
    bad_run = next((run for run in reader.runs if run.went_bad), None)
    asked = monitor.request_line
    requested = [s for s in named if asked is not None and s.line > asked]
    checked = dict(keeper.checked) if keeper is not None else {}

    def finiteness(s: Snapshot) -> Finiteness:
        if s.files not in checked:
            checked[s.files] = check_snapshot(list(s.files))
        return checked[s.files]

    if monitor.went_bad or monitor.stop_reason:
        for s in requested:
            finiteness(s)
    return WatchResult(
        command=command,
        log=path,
        returncode=returncode,
        stopped=monitor.stop_reason,
        went_bad=monitor.went_bad,
        received=monitor.received,
        seen=Seen.of(reader),
        snapshots=named,
        requested=requested,
        last_good=last_good(named, bad_run, finiteness) if bad_run is not None else None,
        diagnosis=diagnosis_of(path, solver, reader),
        events=list(events),
        periodic=solver.interval if solver is not None else None,
        checked=checked,
        kept=list(keeper.kept) if keeper is not None else [],
        not_kept=not_kept,
    )


def _keeper(
    command: Sequence[str],
    solver: Optional[CommandSolver],
    effects: Effects,
    every: float,
    timeout: float,
) -> Tuple[Optional[Keeper], Optional[str]]:
    """The keeper of ``--keep-good`` snapshots, or why there is none (said in the report)."""
    if not every:
        return None, "watch asked for none (--keep-good 0)"
    if not is_caffe_train(command):
        return None, (
            "the command is not `caffe train`, so only its own snapshots exist "
            "(watch asks Caffe alone for one, through its signals)"
        )
    signum = effects.signal_for("snapshot")
    if signum is None:
        flags = ", ".join(effects.describe(s) for s in effects.on)
        return None, f"no signal makes this Caffe snapshot ({flags}): watch keeps none of its own"
    interval = solver.interval if solver is not None else None
    return Keeper(every, signum, effects.describe(signum), periodic=interval, timeout=timeout), None


def _new_log(log: Optional[str], command: Sequence[str]) -> Tuple[str, BinaryIO]:
    """The log, created: the path given (which must be new, so no input is written over), or
    ``caffe-train-YYYYmmdd-HHMMSS.log`` here (``-2``, ``-3``... when two start in one second)."""
    if log is not None:
        refuse_overlaps(
            [("command", a) for a in _arguments(command) if os.path.isfile(a)], [("log", log)]
        )
        check_writable(log, new=True)
        return log, _create(log)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in itertools.count(1):
        name = f"caffe-train-{stamp}{f'-{k}' if k > 1 else ''}.log"
        if not os.path.lexists(name):
            return name, _create(name)
    raise AssertionError("itertools.count ended")


def _create(path: str) -> BinaryIO:
    try:
        return open(path, "xb")
    except FileExistsError:
        raise FileError(f"{path}: already exists; give a new path") from None
    except OSError as e:
        raise FileError(f"{path}: cannot write ({e.strerror or e})") from None


def _arguments(command: Sequence[str]) -> List[str]:
    """The arguments, and the values of ``-flag=value`` ones, that may name files."""
    return [part for arg in command for part in (arg, arg.partition("=")[2]) if part]


def _not_started(program: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"{program}: command not found"
    if isinstance(e, PermissionError):
        return f"{program}: not executable (permission denied)"
    return f"{program}: cannot run ({e.strerror or e})"
