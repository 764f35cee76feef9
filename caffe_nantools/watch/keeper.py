"""``watch --keep-good``: a last finite snapshot for a `caffe train` that goes bad hours in.

Every ``every`` seconds of training, watch asks Caffe for a snapshot through its snapshot signal
(``-sighup_effect snapshot``, Caffe's default). Every snapshot Caffe writes is checked for
non-finite values once written (in a thread: a big model takes a while to read, and the output
must keep flowing); of those watch asked for, the newest finite one and the one before it are
kept and the older ones removed. A snapshot the solver's ``snapshot`` interval wrote, or one a
signal from the user asked for, is never removed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

from caffe_nantools.finite_snapshot import Finiteness, check_snapshot
from caffe_nantools.watch.report import Snapshot, WatchEvent

#: Seconds between looks at a snapshot Caffe is still writing.
LOOK = 0.1
#: A solver state whose end cannot be told (a fork's) is taken as written once its size has not
#: changed for this long.
SETTLED = 1.0

Files = Tuple[str, ...]


class Keeper:
    """The snapshots watch asks for and keeps.

    Args:
        every: seconds of training between two snapshots asked for.
        signum: Caffe's snapshot signal.
        describe: the signal as the command line sets it (``SIGHUP: -sighup_effect snapshot``).
        periodic: the solver's ``snapshot`` interval; None where it is unknown (no solver read):
            then nothing is removed, a snapshot watch asked for could be a periodic one.
        timeout: seconds to wait for a snapshot asked for, and for one to be written.
        check: how a snapshot's files are checked.
    """

    def __init__(
        self,
        every: float,
        signum: int,
        describe: str,
        *,
        periodic: Optional[int],
        timeout: float = 60.0,
        check: Callable[[List[str]], Finiteness] = check_snapshot,
    ) -> None:
        self.every = every
        self.signum = signum
        self.periodic = periodic
        self.timeout = timeout
        self._describe = describe
        self._check = check
        #: Every snapshot checked so far: its files -> what the check found.
        self.checked: Dict[Files, Finiteness] = {}
        #: The finite snapshots watch asked for that are kept, oldest first (two at most).
        self.kept: List[Snapshot] = []
        self._next: Optional[float] = None
        self._asked: Optional[Tuple[int, float]] = None  # (lines read, when) of the request
        self._user_asked = False
        self._files: List[Tuple[int, str]] = []
        self._last_iteration: Optional[int] = None
        self._running: List[Tuple[Snapshot, bool, concurrent.futures.Future]] = []
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

    def ask(self, now: float, lines: int) -> List[WatchEvent]:
        """Caffe's snapshot signal when one is due (training has begun: the first call starts
        the count)."""
        if self._next is None:
            self._next = now + self.every
        if self._asked is not None:
            if now < self._asked[1] + self.timeout:
                return []
            self._asked = None
            self._next = now + self.every
            return [
                WatchEvent(
                    "warning",
                    f"Caffe wrote no snapshot within {self.timeout:g} s of watch's {self._describe}",
                )
            ]
        if now < self._next:
            return []
        self._asked = (lines, now)
        self._next = now + self.every
        self._user_asked = False
        return [
            WatchEvent(
                "keep",
                f"asked Caffe for a snapshot to keep ({self._describe}; every {self.every:g} s)",
                signal=self.signum,
            )
        ]

    def user_asked(self) -> None:
        """A signal the user sent was passed on: the next snapshot is the user's."""
        self._user_asked = True

    def written(self, line: int, path: str) -> None:
        """Caffe names a snapshot file it writes (the weights, then the solver state): once both
        are named, the snapshot is checked."""
        self._files.append((line, path))
        if ".solverstate" not in path:
            return
        snapshot = Snapshot(self._files[0][0], tuple(p for _, p in self._files))
        self._files = []
        answer = self._asked is not None and snapshot.line > self._asked[0]
        periodic = self._is_periodic(snapshot)
        ours = answer and not self._user_asked and not periodic
        # A periodic snapshot written while the signal was on its way is not the answer: Caffe
        # answers at the end of the next iteration; or, at the same one, with the same files.
        if answer and (not periodic or snapshot.iteration == self._last_iteration):
            self._asked = None
        self._last_iteration = snapshot.iteration
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "watch-keep-good")
        future = self._pool.submit(_when_written, self._check, list(snapshot.files), self.timeout)
        self._running.append((snapshot, ours, future))

    def poll(self, bad_from: Optional[int] = None) -> List[WatchEvent]:
        """What the checks that ended found: each finite snapshot watch asked for, named before
        line ``bad_from`` (the first non-finite value's, where there is one), is kept and
        watch's older ones beyond the newest two removed; a warning for one that is not finite."""
        events: List[WatchEvent] = []
        while self._running and self._running[0][2].done():
            snapshot, ours, future = self._running.pop(0)
            found = self.checked[snapshot.files] = future.result()
            named = ", ".join(snapshot.files)
            if found.finite is False:
                events.append(
                    WatchEvent("warning", f"snapshot {named}: not finite: {found.detail}")
                )
            if not (ours and found.finite) or (bad_from is not None and snapshot.line > bad_from):
                continue
            self.kept.append(snapshot)
            removed = self.kept.pop(0) if len(self.kept) > 2 else None
            gone = f"; removed watch's older {', '.join(removed.files)}" if removed else ""
            if removed is not None:
                _remove(removed.files)
            events.append(
                WatchEvent(
                    "keep",
                    f"kept {named} (iteration {snapshot.iteration}): every value finite{gone}",
                )
            )
        return events

    def close(self, bad_from: Optional[int] = None) -> List[WatchEvent]:
        """Waits for the checks still running; what they found."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        return self.poll(bad_from)

    def _is_periodic(self, snapshot: Snapshot) -> bool:
        if self.periodic is None:
            return True  # unknown: never removed
        return (
            bool(self.periodic)
            and snapshot.iteration is not None
            and snapshot.iteration % self.periodic == 0
        )


def _when_written(
    check: Callable[[List[str]], Finiteness], files: List[str], timeout: float
) -> Finiteness:
    """The check of a snapshot once Caffe wrote it to its end (Caffe names a file before it
    writes it): at once where a value is not finite; else once the solver state is complete,
    or its size settled."""
    start = time.monotonic()
    sizes: Dict[str, Tuple[float, int]] = {}
    while True:
        found = check(files)
        now = time.monotonic()
        if found.finite is False or (found.complete and found.finite is not None):
            return found
        if found.finite is not None and _settled(files, sizes, now):
            return found
        if now > start + timeout:
            if found.finite is True:
                return Finiteness(
                    None, f"{files[-1]}: still being written after {timeout:g} s", found.iteration
                )
            return found
        time.sleep(LOOK)


def _settled(files: List[str], sizes: Dict[str, Tuple[float, int]], now: float) -> bool:
    """Whether no file changed size for SETTLED seconds (``sizes``: each one's size and since
    when, kept between looks)."""
    settled = True
    for path in files:
        try:
            size = os.path.getsize(path)
        except OSError:
            return False
        since, seen = sizes.get(path, (now, -1))
        if seen != size:
            sizes[path] = (now, size)
            settled = False
        elif now < since + SETTLED:
            settled = False
    return settled


def _remove(files: Files) -> None:
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
