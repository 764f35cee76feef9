"""``watch --hunt`` and ``--resume``: once a `caffe train -solver S` went non-finite, a hunt
from the last finite snapshot over the failing window (:func:`caffe_nantools.hunt.hunt` with
``snapshot=``), and the user's own command resumed from that snapshot with the fix hunt
verified; or, in one line, why no hunt ran and the command that would run one."""

from __future__ import annotations

import shlex
from typing import Callable, List, Optional, Sequence

from caffe_nantools.cause import Cause
from caffe_nantools.errors import NanToolsError
from caffe_nantools.watch.command import flag, is_caffe_train
from caffe_nantools.watch.report import Hunted, Snapshot, WatchResult

#: Iterations hunted past the one that went non-finite: a failure the checked copies show a
#: little later (another thread count, a check placed after the blob) is still inside.
MARGIN = 10
#: Caffe takes a solver state or weights to start from, not both.
_START_FLAGS = ("solver", "snapshot", "weights")


def hunt_after(
    command: Sequence[str],
    result: WatchResult,
    starting: Callable[[str, Optional[int]], None] = lambda state, iters: None,
) -> Hunted:
    """The hunt from the last finite snapshot of ``result``, a run that went non-finite, or why
    none ran; ``starting`` is told the solver state and the iterations as it starts."""
    solver = flag(command, "solver") if is_caffe_train(command) else None
    good = result.last_good
    if solver is None:
        return Hunted(
            no_hunt="the command is not `caffe train -solver S`, so watch knows no solver to hunt; "
            "run `caffe-nantools hunt SOLVER` (with `--snapshot FILE.solverstate` from a finite "
            "snapshot of yours)"
        )
    if good is None or good.solverstate is None:
        what = "no finite snapshot" if good is None else f"no solver state of {good.files[0]}"
        return Hunted(
            no_hunt=f"{what} from before the first non-finite value to start from; run "
            f"`{_hunt_line(solver)}` to train it from the start"
        )
    iters = _window(result, good)
    from caffe_nantools.hunt import hunt  # pycaffe and hunt's stages: only when asked for

    starting(good.solverstate, iters)
    try:
        report = hunt(solver, snapshot=good.solverstate, iters=iters)
    except NanToolsError as e:
        return Hunted(
            no_hunt=f"hunt could not run: {e}; once that is fixed, run "
            f"`{_hunt_line(solver, good.solverstate, iters)}`"
        )
    fix = report.fix
    if fix is None or not fix.resume:
        why = "hunt found no cause" if report.verdict.cause == Cause.NONE else "no fix was verified"
        return Hunted(report, good.solverstate, no_resume=f"{why} from {good.solverstate}")
    fixed = flag(shlex.split(fix.resume), "solver")
    return Hunted(report, good.solverstate, resume=resumed(command, fixed, good.solverstate))


def resumed(command: Sequence[str], solver: str, state: str) -> List[str]:
    """``command`` (the user's Caffe, its flags) training ``solver`` from ``state``: its own
    ``-solver``, ``-snapshot`` and ``-weights`` are left out."""
    kept: List[str] = []
    skip = False
    for arg in command:
        name, sep, _ = arg.lstrip("-").partition("=")
        if skip:
            skip = False
        elif arg.startswith("-") and name in _START_FLAGS:
            skip = not sep
        else:
            kept.append(arg)
    return [*kept, "-solver", solver, "-snapshot", state]


def _window(result: WatchResult, good: Snapshot) -> Optional[int]:
    """Iterations from the snapshot to the one that went non-finite, and the margin (None,
    hunt's default, where either iteration is unknown)."""
    bad = result.diagnosis.first_bad_iteration if result.diagnosis is not None else None
    if bad is None or good.iteration is None:
        return None
    return max(bad - good.iteration, 0) + MARGIN


def _hunt_line(solver: str, state: Optional[str] = None, iters: Optional[int] = None) -> str:
    words = ["caffe-nantools", "hunt", solver]
    words += ["--snapshot", state] if state else []
    words += ["--iters", str(iters)] if iters else []
    return " ".join(shlex.quote(w) for w in words)
