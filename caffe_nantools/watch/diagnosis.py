"""watch's diagnosis: the log's, as ``diagnose`` gives it with the solver the command names and
that solver's net, and the solver's lint shaping it where its lr_policy drives the rate to
infinity (lowering base_lr or clipping would only delay that NaN)."""

from __future__ import annotations

from typing import List, Optional

from caffe_nantools.cause import Cause
from caffe_nantools.diagnose import Blame, Diagnosis, diagnose
from caffe_nantools.diagnose.reading import Reader
from caffe_nantools.errors import NanToolsError
from caffe_nantools.lint import LintFinding, lint
from caffe_nantools.logs.opening import NotALogError
from caffe_nantools.watch.command import CommandSolver

#: Causes a growing rate explains better: the values blew up over the updates, or the log does
#: not say where they went bad.
_GROWTH = (Cause.EXPLODING_GRADIENTS, Cause.UNKNOWN)


def diagnosis_of(log: str, solver: Optional[CommandSolver], reader: Reader) -> Optional[Diagnosis]:
    """The log's diagnosis (from the reader that read it as it was written: the same answer as
    reading the file again), with the command's solver and net where diagnose can read them
    (they are Caffe's business: else the log alone); None when the log holds nothing of a
    Caffe log's."""
    tries = []
    if solver is not None:
        tries += [(solver.net, solver.path)] * bool(solver.net) + [(None, solver.path)]
    tries.append((None, None))
    for k, (net, path) in enumerate(tries):
        try:
            diagnosis = diagnose(log, net=net, solver=path, reader=reader)
        except NotALogError:
            return None
        except NanToolsError:
            if k + 1 == len(tries):
                raise
            continue
        return _shaped_by_policy(diagnosis, _policy_errors(path)) if path else diagnosis
    raise AssertionError("the last try raises or returns")


def _policy_errors(solver: str) -> List[LintFinding]:
    try:
        return [f for f in lint(solver=solver) if f.rule == "lr-policy" and f.severity == "error"]
    except NanToolsError:
        return []


def _shaped_by_policy(d: Diagnosis, policy: List[LintFinding]) -> Diagnosis:
    """An explosion (or an unknown cause) after updates, under a policy that grows the rate
    without bound: the policy is the cause, and fixing it the advice."""
    first = d.first_nonfinite
    if not policy or d.cause not in _GROWTH or (first is not None and first.iteration == 0):
        return d
    f = policy[0]
    d.cause = Cause.LR_POLICY
    d.summary.insert(
        0,
        f"the solver's lr_policy drives it ({f.file}:{f.line}): {f.message}{_rates(d)}; a lower "
        "base_lr or clip_gradients would only delay the NaN",
    )
    d.began = Blame(None, "lr", None, f"{f.message} ({f.file}:{f.line})")
    d.advice = [f"{f.file}:{f.line}: {f.message}; {f.fix}" for f in policy]
    d.suggested = {}
    return d


def _rates(d: Diagnosis) -> str:
    """How the log's learning rate grew up to the first non-finite value, where it shows."""
    first = d.first_nonfinite
    end = first.iteration if first is not None else None
    rates = [
        (i, v)
        for i, v in (d.trace.lr_series.items if d.trace is not None else [])
        if i is not None and (end is None or i <= end)
    ]
    if len(rates) < 2 or rates[-1][1] <= rates[0][1]:
        return ""
    (a, x), (b, y) = rates[0], rates[-1]
    return f"; the log's lr grew from {x:g} (iteration {a}) to {y:g} (iteration {b})"
