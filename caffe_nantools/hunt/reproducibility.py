"""Whether a hunt's failure comes back from the state it failed in: the failing iteration
replayed twice from its bundle (the weights it started with, the batch it read), the two
compared row by row; where they disagree, or the failure does not come back, once more with one
thread (BLAS's and OpenMP's) to tell the threads from the rest (the hardware, or a state the
bundle does not hold: a layer's own, random draws, the solver's history). A hunt from a snapshot
that stays finite says so too: the failure does not come back from that snapshot.

Replays agree when the same row is the first bad one (or the same step ended both), every row
has the same non-finite counts, and min, max and mean |x| match to float32's last digits."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Sequence

from caffe_nantools.errors import NanToolsError
from caffe_nantools.hunt.stages import FOUND, OK, Stages
from caffe_nantools.jsontext import fields_dict

if TYPE_CHECKING:
    from caffe_nantools.hunt.training import Training
    from caffe_nantools.replay import ReplayReport, Row

__all__ = [
    "Reproducibility",
    "ThreadRetry",
    "check_reproducible",
    "compare",
    "from_snapshot",
    "reproducibility",
]

#: Values that differ by no more than this (relative) agree: float32's rounding, summed over a
#: layer's inputs in another order.
TOLERANCE = 1e-4
#: The differences a report lists, at most.
SHOWN = 3
REPRODUCIBLE = "reproducible"


@dataclass
class ThreadRetry:
    """The replays with one thread: ``agree`` when there were two (the replays before it
    disagreed), ``came_back`` whether the failure showed."""

    replays: int
    agree: Optional[bool]
    came_back: Optional[bool]

    def to_dict(self) -> dict:
        return fields_dict(self)


@dataclass
class Reproducibility:
    """``replays`` of the failing iteration with the threads the machine gives, whether the
    first two ``agree`` (``differences``: the first rows that do not), whether the failure
    ``came_back`` in them (None for a failure in the update, which a replay does not run), the
    retry with one thread where it was needed, and the ``verdict`` in words."""

    replays: int
    agree: Optional[bool]
    came_back: Optional[bool]
    one_thread: Optional[ThreadRetry]
    verdict: str
    differences: List[str] = field(default_factory=list)
    #: The first replay, for a report's table of the failing iteration.
    replay: Optional[ReplayReport] = field(default=None, repr=False)

    @property
    def reproducible(self) -> bool:
        return self.verdict == REPRODUCIBLE

    def to_dict(self) -> dict:
        return fields_dict(self, leave_out=("replay",))

    def format(self) -> str:
        return f"  reproducible: {self.verdict}"


def compare(first: ReplayReport, second: ReplayReport) -> List[str]:
    """What differs between two replays of one bundle, in net order (empty: they agree)."""
    differences = []
    one, other = first.first_bad, second.first_bad
    if _name(one) != _name(other):
        differences.append(f"first non-finite: {_name(one)} vs {_name(other)}")
    if str(first.abort) != str(second.abort):
        differences.append(f"ended: {first.abort or 'not'} vs {second.abort or 'not'}")
    rows = {(r.what, r.name): r for r in second.forward + second.backward}
    for row in first.forward + first.backward:
        twin = rows.pop((row.what, row.name), None)
        if twin is None:
            differences.append(f"the {row.what} of {row.name}: measured in the first replay only")
        elif _differs(row, twin):
            differences.append(f"the {row.what} of {row.name}: {_figures(row)} vs {_figures(twin)}")
    differences += [
        f"the {what} of {name}: measured in the second replay only" for what, name in rows
    ]
    return differences


def _name(row: Optional[Row]) -> str:
    return f"the {row.what} of {row.name}" if row is not None else "none"


def _differs(row: Row, twin: Row) -> bool:
    counts = ("count", "nan", "posinf", "neginf", "huge")
    if any(getattr(row, c) != getattr(twin, c) for c in counts):
        return True
    return any(not _close(getattr(row, v), getattr(twin, v)) for v in ("min", "max", "mean_abs"))


def _close(a: Optional[float], b: Optional[float]) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-30)


def _figures(row: Row) -> str:
    return (
        f"{row.nan} NaN, {row.posinf} +inf, {row.neginf} -inf, {row.huge} >=1e37, "
        f"min {row.min:.6g}, max {row.max:.6g}"
        if row.min is not None and row.max is not None
        else f"{row.nan} NaN, {row.posinf} +inf, {row.neginf} -inf, no finite value"
    )


def _showed(report: ReplayReport) -> bool:
    return report.first_bad is not None or report.abort is not None


def _came_back(reports: Sequence[ReplayReport], update: bool) -> Optional[bool]:
    """Whether the failure showed in any of ``reports``; None for one in the update, which a
    replay does not run (forward and backward only)."""
    return None if update else any(_showed(r) for r in reports)


def _replays(
    bundle: str, count: int, gpu: Optional[int], threads: Optional[int] = None
) -> List[ReplayReport]:
    """``count`` replays of ``bundle``, each in a process of its own, side by side: the cost of
    one where there are cores to spare."""
    from caffe_nantools.replay import replay

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: replay(bundle, gpu=gpu, threads=threads), range(count)))


def check_reproducible(
    bundle: str, *, gpu: Optional[int] = None, update: bool = False
) -> Reproducibility:
    """Replay ``bundle`` twice and judge; once more with one thread where the two disagree
    (twice then, to see whether they agree with one) or the failure does not come back.
    ``update``: the failure was in the update, which no replay shows; only the agreement is
    judged.

    Raises:
        NanToolsError: a bundle that cannot be replayed (ReplayError), no pycaffe.
    """
    first, second = _replays(bundle, 2, gpu)
    differences = compare(first, second)
    came_back = _came_back([first, second], update)
    if not differences and came_back is not False:
        return Reproducibility(
            replays=2,
            agree=True,
            came_back=came_back,
            one_thread=None,
            verdict=REPRODUCIBLE,
            replay=first,
        )
    lone = _replays(bundle, 2 if differences else 1, gpu, threads=1)
    retry = ThreadRetry(
        replays=len(lone),
        agree=not compare(*lone) if len(lone) == 2 else None,
        came_back=_came_back(lone, update),
    )
    return Reproducibility(
        replays=2,
        agree=not differences,
        came_back=came_back,
        one_thread=retry,
        verdict=_verdict(first.iteration, differences, retry),
        differences=differences[:SHOWN],
        replay=first,
    )


ONE_THREAD = "with one thread (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1)"


def _verdict(iteration: Optional[int], differences: Sequence[str], retry: ThreadRetry) -> str:
    head = f"not reproducible from the state of iteration {iteration}"
    if differences:
        if retry.agree:
            comes = "" if retry.came_back is not False else " (and the failure does not come back)"
            return (
                f"{head}: two replays disagree ({differences[0]}); {ONE_THREAD} they agree"
                f"{comes}: the threads (BLAS, OpenMP) change the result; train with one thread "
                "to find the failure again"
            )
        return (
            f"{head}: two replays disagree ({differences[0]}), {ONE_THREAD} too: not the "
            "threads; the hardware, or random draws a layer makes of its own"
        )
    if retry.came_back:
        return (
            f"{head}: two replays stay finite, one {ONE_THREAD} fails again: the threads "
            "(BLAS, OpenMP) change the result; train with one thread to find it again"
        )
    return (
        f"{head}: the failure does not come back from its weights and batch (two replays, and "
        f"one {ONE_THREAD}): it needs a state before it (a layer's own, random draws, the "
        "solver's history), or was the hardware's"
    )


def from_snapshot(training: Training) -> Reproducibility:
    """A hunt from a snapshot whose training stayed finite: the failure does not come back
    from that state over those iterations."""
    end = training.start + training.iterations
    return Reproducibility(
        replays=0,
        agree=None,
        came_back=False,
        one_thread=None,
        verdict=f"not reproducible from the snapshot: iterations {training.start} to {end - 1} stayed "
        "finite; the failure needs more iterations (--iters), a state the snapshot does not hold "
        "(the data's order where it is shuffled, a layer's own), or came from the threads or "
        "the hardware",
    )


def reproducibility(
    stages: Stages, training: Training, *, snapshot: bool, gpu: Optional[int] = None
) -> Optional[Reproducibility]:
    """hunt's stage: the failing iteration's bundle replayed and judged, or why not."""
    name = "reproducible"
    error = training.error
    if training.replay is None:
        if snapshot and training.finite:
            return stages.run(name, lambda: from_snapshot(training), _judge)
        why = (
            "the training stayed finite: no failure to replay"
            if training.finite
            else "Caffe ended the training: no replay bundle"
            if training.aborted
            else "a test pass failed: the bundle replays training iterations only"
            if error is not None and error.phase == "TEST"
            else "no replay bundle was written"
        )
        stages.skip(name, why)
        return None
    update = error is not None and error.pass_ == "update"
    try:
        return stages.run(
            name, lambda: check_reproducible(training.replay, gpu=gpu, update=update), _judge
        )
    except NanToolsError:  # the stage holds the error; the verdict stands without it
        return None


def _judge(found: Reproducibility):
    if found.reproducible:
        how = "the failure comes back" if found.came_back else "forward and backward agree"
        return OK, f"{found.replays} replays agree: {how}", found.to_dict()
    return FOUND, found.verdict, found.to_dict()
