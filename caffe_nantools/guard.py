"""A guard for training driven from Python: step a pycaffe solver and stop at the first
non-finite output, gradient or weight, named with its layer, pass, iteration and rate.

Caffe itself never looks: a NaN loss trains on for hours. After each guarded iteration the
net's outputs are checked (forward), every param's gradient as the backward pass left it
(through the solver's gradients-ready callback, before the update) and every param's data
after the update, so a value that went bad in the update is caught there, with that
iteration's learning rate.

This runs in the training process, next to Caffe: it imports numpy and the package's
pure-numpy modules only (the solver is handed in).

    from caffe_nantools import guard
    solver = caffe.SGDSolver("solver.prototxt")
    guard.step(solver, 1000)          # raises NonFiniteError at the first bad value
    guard.step(solver, 10**6, keep_good=1800)  # and keeps a finite snapshot every 30 minutes
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import warnings
import weakref
from typing import Dict, List, Optional, Set, Tuple

from caffe_nantools import arguments
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats, is_finite
from caffe_nantools.finite_snapshot import check_snapshot, keep_every

__all__ = ["Guard", "step"]


class Guard:
    """The checks of one solver. Made once per solver (its callback stays registered).

    Args:
        solver: a pycaffe solver (``caffe.SGDSolver(...)`` or ``caffe.get_solver(...)``).
        check_params: also check every param's gradient and data (one reduction each).
        max_abs: also stop at finite values beyond it (1e37 catches an overflow to FLT_MAX).

    Raises:
        ArgumentError: ``solver`` is not a solver (a path, say), or an option of a wrong value.
    """

    def __init__(
        self, solver, *, check_params: bool = True, max_abs: Optional[float] = None
    ) -> None:
        _check_solver(solver)
        self._solver = lambda: solver
        self.net = solver.net
        self.check_params = arguments.flag("check_params", check_params)
        self.max_abs = arguments.positive("max_abs", max_abs, optional=True)
        self._due = False
        #: The finite snapshots ``keep_good`` kept (their files), oldest first: two at most.
        self.kept: List[Tuple[str, ...]] = []
        self._next_keep: Optional[float] = None
        self._prefix: Optional[str] = None  # the snapshot_prefix, once a snapshot shows it
        self._removable: Set[Tuple[str, ...]] = set()
        self._bad_gradient: Optional[Tuple[str, int, object]] = None
        self._params: List[Tuple[str, int, object]] = [
            (layer, i, blob)
            for layer, blobs in self.net.params.items()
            for i, blob in enumerate(blobs)
        ]
        self._producers = _producers(self.net)
        # Where the solver offers it, gradients are checked as backward left them, before the
        # update mixes in the rate and the momentum.
        self.gradients_seen = hasattr(solver, "add_callback")
        if self.gradients_seen:
            # pycaffe never lets go of a callback (Caffe's solver does not free them): it holds
            # the guard weakly, so that the guard and the net it keeps can go.
            on_gradients = weakref.WeakMethod(self._on_gradients)
            solver.add_callback(_nothing, lambda: _call(on_gradients))

    @property
    def solver(self):
        return self._solver()

    def step(self, n: int = 1, *, every: int = 1, keep_good: Optional[float] = None) -> None:
        """Run ``n`` iterations, checking every ``every``-th; with ``keep_good``, a snapshot
        every ``keep_good`` seconds (after a checked iteration), kept when its files hold
        finite values only.

        Raises:
            NonFiniteError: the first bad output, gradient or param (``by="guard"``); its
                message and ``last_good`` name the last finite snapshot kept.
            ArgumentError: ``n`` not an integer of 0 or more, ``every`` not one of 1 or more,
                ``keep_good`` not seconds.
        """
        n = arguments.whole("n", n, 0)
        every = arguments.whole("every", every)
        keep_good = keep_every("keep_good", keep_good)
        solver = self.solver
        if keep_good and self._next_keep is None:
            self._next_keep = time.monotonic() + keep_good
        for _ in range(n):
            iteration = int(solver.iter)
            lr = learning_rate(solver)
            self._due = iteration % every == 0
            self._bad_gradient = None
            solver.step(1)
            if not self._due:
                continue
            try:
                self.check(iteration, lr)
            except NonFiniteError as e:
                raise self._naming_last_good(e) from None
            if keep_good and time.monotonic() >= self._next_keep:
                self._keep(solver)
                self._next_keep = time.monotonic() + keep_good

    def _keep(self, solver) -> None:
        """A snapshot, kept when finite; the older ones this guard wrote beyond the newest two
        removed, but never files that were there before its snapshot (the solver's
        ``snapshot`` interval wrote them too; pycaffe does not tell the prefix, so the first
        snapshot, which shows it, is never removed either)."""
        expected = self._prefix and f"{self._prefix}_iter_{int(solver.iter)}.caffemodel"
        ours = bool(expected) and not any(os.path.exists(expected + h5) for h5 in ("", ".h5"))
        files = _snapshot(solver)
        if len(files) != 2:
            warnings.warn(
                "keep_good: Caffe's INFO lines are hidden (GLOG_minloglevel?), so the files of "
                "solver.snapshot() are not known: none is checked or removed",
                stacklevel=3,
            )
            return
        self._prefix = files[0].rsplit("_iter_", 1)[0]
        if not check_snapshot(files).finite:
            return
        self.kept.append(files)
        if ours:
            self._removable.add(files)
        if len(self.kept) > 2:
            old = self.kept.pop(0)
            for path in old if old in self._removable else ():
                if os.path.exists(path):
                    os.unlink(path)

    def _naming_last_good(self, error: NonFiniteError) -> NonFiniteError:
        error.last_good = self.kept[-1] if self.kept else None
        if error.last_good is not None:
            state = error.last_good[1]
            error.args = (
                f"{error.args[0]}\nlast finite snapshot: {', '.join(error.last_good)} (iteration "
                f"{_iteration(error.last_good)}); resume from it with solver.restore({state!r})",
            )
        return error

    def check(self, iteration: int, lr: Optional[float]) -> None:
        """Check the state the last step left, in the order it was computed: outputs, gradients,
        then weights."""
        for name in self.net.outputs:
            data = self.net.blobs[name].data
            if not is_finite(data, self.max_abs):
                raise self._error(
                    self._producers.get(name, name), f"top {name}", "forward", iteration, lr, data
                )
        if not self.check_params:
            return
        if self._bad_gradient is not None:
            layer, i, stats = self._bad_gradient
            raise self._error(layer, f"param {i}", "backward", iteration, lr, stats=stats)
        for layer, i, blob in self._params:
            if not self.gradients_seen and not is_finite(blob.diff, self.max_abs):
                raise self._error(layer, f"param {i}", "backward", iteration, lr, blob.diff)
            if not is_finite(blob.data, self.max_abs):
                raise self._error(layer, f"param {i}", "update", iteration, lr, blob.data)

    def _on_gradients(self) -> None:
        if not (self._due and self.check_params) or self._bad_gradient is not None:
            return
        for layer, i, blob in self._params:
            if not is_finite(blob.diff, self.max_abs):
                # Raising inside Caffe's C++ loop would abort it: keep the finding for later.
                self._bad_gradient = (layer, i, finite_stats(blob.diff, self.max_abs))
                return

    def _error(
        self,
        layer: str,
        blob: str,
        pass_: str,
        iteration: int,
        lr: Optional[float],
        array=None,
        stats=None,
    ) -> NonFiniteError:
        return NonFiniteError(
            layer=layer,
            blob=blob,
            pass_=pass_,
            phase="TRAIN",
            iteration=iteration,
            stats=stats if stats is not None else finite_stats(array, self.max_abs),
            max_abs=self.max_abs,
            lr=lr,
            by="guard",
        )


def learning_rate(solver) -> Optional[float]:
    """The rate the solver's next iteration uses, where pycaffe tells it (``solver.lr``)."""
    rate = getattr(solver, "lr", None)
    if callable(rate):
        rate = rate()
    return float(rate) if rate is not None else None


#: Caffe's INFO line naming a snapshot file before it writes it.
_SNAPSHOT_LINE = re.compile(
    rb"Snapshotting (?:solver state )?to (?:binary proto|HDF5) file (.+?)\s*$", re.M
)


def _snapshot(solver) -> Tuple[str, ...]:
    """``solver.snapshot()``, and the files it wrote, as Caffe names them on stderr (pycaffe
    does not tell the snapshot_prefix): its lines are caught on their way and passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                solver.snapshot()
            finally:
                os.dup2(saved, 2)
            caught.seek(0)
            text = caught.read()
    finally:
        os.close(saved)
    os.write(2, text)
    return tuple(m.decode("utf-8", "replace") for m in _SNAPSHOT_LINE.findall(text))


def _iteration(files: Tuple[str, ...]) -> int:
    return int(files[0].rsplit("_iter_", 1)[1].split(".")[0])


def _producers(net) -> Dict[str, str]:
    """Blob name -> the layer that last writes it (an in-place layer rewrites its input)."""
    found: Dict[str, str] = {}
    for layer, tops in getattr(net, "top_names", {}).items():
        for top in tops:
            found[top] = layer
    return found


def _nothing() -> None:
    pass


def _call(method: weakref.WeakMethod) -> None:
    bound = method()
    if bound is not None:
        bound()


def _check_solver(solver) -> None:
    if not all(hasattr(solver, name) for name in ("step", "net", "iter")):
        raise arguments.ArgumentTypeError(
            "{solver}: not a pycaffe solver; pass caffe.get_solver(PATH) or caffe.SGDSolver(PATH)",
            arguments={"solver": solver},
        )


#: solver -> its guard, for step(). The guard holds that solver weakly (else neither would go):
#: once the caller lets go of the solver, its guard and the net it keeps go too.
_GUARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def step(
    solver,
    n: int = 1,
    *,
    check_params: bool = True,
    every: int = 1,
    max_abs: Optional[float] = None,
    keep_good: Optional[float] = None,
) -> None:
    """Step ``solver`` ``n`` iterations under a guard (one per solver, kept between calls for
    as long as the solver lives).

    ``keep_good``: seconds between two snapshots (``solver.snapshot()``) taken after a checked
    iteration and kept when their values are all finite (the newest two; 0 or None: none).

    Raises:
        NonFiniteError: the first bad output, gradient or param, with layer, blob, pass
            (``forward``, ``backward``, ``update``), iteration and learning rate, and the last
            finite snapshot kept (``last_good``, also in its message).
        ArgumentError: ``solver`` not a solver; ``n``, ``every``, ``check_params``,
            ``max_abs`` or ``keep_good`` of a wrong value (``every=0: must be 1 or more``).
    """
    _check_solver(solver)
    n = arguments.whole("n", n, 0)
    every = arguments.whole("every", every)
    check_params = arguments.flag("check_params", check_params)
    max_abs = arguments.positive("max_abs", max_abs, optional=True)
    guard = _GUARDS.get(solver)
    if guard is None:
        guard = Guard(solver, check_params=check_params, max_abs=max_abs)
        guard._solver = weakref.ref(solver)
        _GUARDS[solver] = guard
    guard.check_params, guard.max_abs = check_params, max_abs
    guard.step(n, every=every, keep_good=keep_good)
