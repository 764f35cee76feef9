"""Records/s and ETA of a scan on stderr, one bar for all the worker processes."""

from __future__ import annotations

import sys
import time
from typing import Optional, Tuple, Union


class Tally:
    """Records done and to do per worker process, in memory the processes share, so that one
    of them (``draws``) can show a progress bar for all."""

    def __init__(self, counts, k: int, draws: bool = False) -> None:
        self.counts, self.k, self.draws = counts, k, draws
        self.start = time.monotonic()

    def begin(self, total: int) -> None:
        self.counts[2 * self.k + 1] = total

    def add(self, n: int) -> None:
        self.counts[2 * self.k] += n

    def sums(self) -> Tuple[int, Optional[int]]:
        return sum(self.counts[0::2]), sum(self.counts[1::2]) or None


class Progress:
    """Records/s and ETA on stderr, redrawn at most 5 times a second; silent off a terminal.
    Given a :class:`Tally` instead of True, it counts there too and draws the sums of all the
    workers' counts, or nothing (a worker whose parent draws)."""

    def __init__(self, label: str, total: Optional[int], enabled: Union[bool, Tally]) -> None:
        self.label, self.total = label, total
        self.tally = enabled if isinstance(enabled, Tally) else None
        self.enabled = self.tally.draws if self.tally else enabled is True
        if self.tally and total is not None:
            self.tally.begin(total)
        self.done = 0
        self.start = self.tally.start if self.tally else time.monotonic()
        self.shown = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        if self.tally:
            self.tally.add(n)
        self.draw()

    def draw(self) -> None:
        now = time.monotonic()
        if self.enabled and now - self.shown >= 0.2:
            self.shown = now
            done, total = self.tally.sums() if self.tally else (self.done, self.total)
            rate = done / max(now - self.start, 1e-9)
            of = f"/{total}" if total else ""
            eta = f", ETA {(total - done) / rate:.0f} s" if total and rate else ""
            sys.stderr.write(f"\r{self.label}: {done}{of} records, {rate:,.0f}/s{eta}   ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()
