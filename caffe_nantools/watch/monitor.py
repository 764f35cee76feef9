"""What watch decides, apart from the process it watches: fed with the log's lines, the signals
watch receives and the passing time, it answers with events (warnings, a stop and the signals
that carry it out), so it can be driven by a test as well as by a running `caffe train`."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, List, Optional, Set, Tuple

from caffe_nantools.diagnose import Block, Reader, Run, Valued, find_blowup, is_saturated
from caffe_nantools.logs import LogStream
from caffe_nantools.watch.effects import Effects
from caffe_nantools.watch.report import WatchEvent

if TYPE_CHECKING:
    from caffe_nantools.watch.keeper import Keeper

#: A blow-up must last: each value is taken as the least of this many displays in a row (one
#: batch's loss or gradient can be 100 times another's in healthy training).
LASTING = 3
#: The blow-up check parses the window of recent debug_info blocks; it runs on a new display
#: only once this many times its own last cost has passed, so a fast log stream is not slowed.
DUTY = 50


class Monitor:
    """The decisions of one watch.

    Args:
        effects: what Caffe does on SIGHUP and SIGINT.
        stop_on_blowup: stop on a blow-up too, not only on a non-finite value.
        snapshot: stop Caffe with a snapshot (written by its stop where ``effects`` says it
            is, else asked for first).
        timeout: seconds to wait for a snapshot, and for the command to end before the next
            stronger signal (SIGTERM, then SIGKILL).
        keeper: asks for the snapshots ``--keep-good`` keeps while every value is finite.
        clock: seconds, monotonic.
    """

    def __init__(
        self,
        effects: Effects,
        *,
        stop_on_blowup: bool = False,
        snapshot: bool = True,
        timeout: float = 60.0,
        keeper: Optional[Keeper] = None,
        clock: Callable[[], float] = time.monotonic,
        keep_trace: bool = False,
    ) -> None:
        self.effects = effects
        self.stop_on_blowup = stop_on_blowup
        self.snapshot = snapshot
        self.timeout = timeout
        self.keeper = keeper
        self.clock = clock
        # The trace's sample, for a report: parsing it costs most of the reading of a
        # debug_info stream, so only when a report will draw it.
        self.reader = Reader(plot=keep_trace)
        # The second pass too, as diagnose reads a log: a NaN in a line of a layout the
        # reading does not know (a fork's loss layer, a Python layer's print) stops the run.
        self._stream = LogStream(sweep=True)
        #: Why watch stops the command (``nonfinite``, ``blowup``), once it does.
        self.stop_reason: Optional[str] = None
        #: Lines read when watch stopped the command, else when it first passed on a signal: the
        #: snapshots named after it were asked for.
        self.request_line: Optional[int] = None
        #: The signals watch received, in order.
        self.received: List[int] = []
        self._steps: List[Tuple[int, str]] = []
        self._deadline: Optional[float] = None
        self._awaiting_snapshot = False
        self._snapshots_seen = 0
        self._warned: Set[Tuple[int, str]] = set()
        self._checked_displays = -1
        self._check_cost = 0.0
        self._next_check = 0.0

    @property
    def went_bad(self) -> bool:
        """Whether any run of the log had a non-finite loss, rate, output or debug_info value."""
        return any(run.went_bad for run in self.reader.runs)

    def feed(self, data: bytes) -> List[WatchEvent]:
        """More of the log (pieces cut anywhere)."""
        for piece in self._stream.feed(data):
            self.reader.feed(piece)
        return self._look()

    def close(self) -> List[WatchEvent]:
        """The log ended."""
        for piece in self._stream.close():
            self.reader.feed(piece)
        events = self._look()
        self.reader.finish()  # what it adds comes too late to act on; the diagnosis reads it
        return events

    @property
    def awaiting_snapshot(self) -> bool:
        """Whether a stop waits for the snapshot it asked for first: its stop signal goes once
        Caffe names the solver state."""
        return self._awaiting_snapshot

    def tick(self) -> List[WatchEvent]:
        """Time passed: a snapshot to keep when one is due; the next signal of a stop when the
        command did not end in time."""
        if self._deadline is None or self.clock() < self._deadline:
            return self._keep()
        waited = self._awaiting_snapshot
        self._awaiting_snapshot = False
        if waited:
            return [
                WatchEvent("warning", f"no snapshot within {self.timeout:g} s")
            ] + self._next_step()
        return self._next_step(f"still running {self.timeout:g} s later: ")

    def receive(self, signum: int) -> List[WatchEvent]:
        """watch itself got ``signum`` (Ctrl-C, kill, a hangup): the command gets it too, to act
        on as configured; after a SIGTERM it is killed if it has not ended in time."""
        self.received.append(signum)
        if self.keeper is not None:
            self.keeper.user_asked()
        if self.request_line is None:
            self.request_line = self._stream.lines_read
        name = signal.Signals(signum).name
        how = f" ({self.effects.describe(signum)})" if signum in self.effects.on else ""
        events = [
            WatchEvent("forward", f"got {name}: passed it on to the command{how}", signal=signum)
        ]
        if signum == signal.SIGTERM and self._deadline is None:
            self._schedule([(signal.SIGKILL, "")])
        return events

    def _look(self) -> List[WatchEvent]:
        events = self._snapshots()
        run = self.reader.run
        if self.stop_reason is not None:
            return events
        if run.went_bad:
            first = run.first_bad
            where = f" at iteration {first.iteration}" if first.iteration is not None else ""
            if first is run.unread:
                after = f" after iteration {first.iteration}" if first.iteration is not None else ""
                where = f"{after} (in a line whose layout diagnose does not read)"
            return events + self._stop(
                "nonfinite",
                f"first non-finite value{where}, line {first.line}: {first.text.strip()}",
                first.line,
            )
        return events + self._warnings(run) + self._keep()

    def _snapshots(self) -> List[WatchEvent]:
        events = []
        for line, path in self.reader.snapshots[self._snapshots_seen :]:
            events.append(WatchEvent("snapshot", f"Caffe wrote {path}", line))
            if self.keeper is not None:
                self.keeper.written(line, path)
            if self._awaiting_snapshot and line > self.request_line and ".solverstate" in path:
                self._awaiting_snapshot = False
                events += self._next_step()
        self._snapshots_seen = len(self.reader.snapshots)
        return events

    def _warnings(self, run: Run) -> List[WatchEvent]:
        events = []
        key = len(self.reader.runs)
        if run.pinned is not None:
            p = run.pinned
            events += self._warn(
                key,
                "pinned",
                p.line,
                f"loss = {p.value:g} at iteration {p.iteration} (line {p.line}): that is -log(FLT_MIN), "
                "softmax gives the true class a probability of 0 (exploded scores, or labels out of range)",
            )
        if run.has_debug and run.gap is not None and run.gap > 1:
            events += self._warn(
                key,
                "display",
                None,
                f"display is {run.gap} with debug_info: only every {run.gap}th iteration is traced, the "
                "first bad one may go unseen; set display: 1 in the solver",
            )
        if run.displayed != self._checked_displays and self.clock() >= self._next_check:
            self._checked_displays = run.displayed
            start = self.clock()
            blowup = find_blowup(
                _lasting(self.reader.recent_blocks()), None, None, _lasting_losses(list(run.losses))
            )
            self._check_cost = self.clock() - start
            self._next_check = self.clock() + DUTY * self._check_cost
            # A loss that rose to 87.3365 is told by the warning above.
            if blowup is not None and not (blowup.layer is None and is_saturated(blowup.end[1])):
                b = blowup
                what = f"{b.what} of layer '{b.layer}'" if b.layer else b.what
                message = (
                    f"{what} grew from {b.start[1]:.3g} (iteration {b.start[0]}) to {b.end[1]:.3g} (iteration "
                    f"{b.end[0]}), {b.orders:.1f} orders of magnitude (each the least of {LASTING} displays in "
                    "a row): values are blowing up"
                )
                found = self._warn(key, "blowup", b.end[2], message)
                events += found
                if found and self.stop_on_blowup:
                    events += self._stop(
                        "blowup", f"stopping on the blow-up, as asked: {message}", b.end[2]
                    )
        return events

    def _keep(self) -> List[WatchEvent]:
        """What the keeper found, and its next request while every value is finite (once the
        training began and until it ended: Caffe handles its signals in between)."""
        if self.keeper is None:
            return []
        bad = next((run for run in self.reader.runs if run.went_bad), None)
        events = self.keeper.poll(bad.first_bad_line if bad is not None else None)
        if (
            bad is None
            and self.stop_reason is None
            and self.reader.recognised
            and self.reader.done is None
            and self._deadline is None
        ):
            events += self.keeper.ask(self.clock(), self._stream.lines_read)
        return events

    def _warn(self, key: int, what: str, line: Optional[int], message: str) -> List[WatchEvent]:
        if (key, what) in self._warned:
            return []
        self._warned.add((key, what))
        return [WatchEvent("warning", message, line)]

    def _stop(self, reason: str, message: str, line: Optional[int]) -> List[WatchEvent]:
        """The signals that stop the command: Caffe's stop signal alone where its stop writes
        a snapshot (snapshot_after_train), else Caffe's snapshot signal (the next step waits
        for its solver state to be written) and its stop signal (SIGTERM when there is none, or
        no snapshot is wanted), then SIGTERM and SIGKILL. Caffe takes one signal at the end of
        an iteration: the stop alone ends the run an iteration sooner."""
        self.stop_reason = reason
        self.request_line = self._stream.lines_read
        effects = self.effects
        snap, stop = effects.signal_for("snapshot"), effects.signal_for("stop")
        if not self.snapshot or (stop is not None and effects.stop_snapshots):
            snap = None
        steps = []
        if snap is not None:
            steps.append((snap, f"asked Caffe for a snapshot ({effects.describe(snap)})"))
        if self.snapshot and stop is not None:
            written = "; it writes a snapshot as it stops" if effects.stop_snapshots else ""
            steps.append((stop, f"asked Caffe to stop ({effects.describe(stop)}){written}"))
        steps.append((signal.SIGTERM, "sent SIGTERM"))
        steps.append((signal.SIGKILL, "sent SIGKILL"))
        self._awaiting_snapshot = snap is not None
        self._schedule(steps)
        return [WatchEvent("stop", message, line)] + self._next_step()

    def _schedule(self, steps: List[Tuple[int, str]]) -> None:
        self._steps = steps
        self._deadline = self.clock() + self.timeout

    def _next_step(self, why: str = "") -> List[WatchEvent]:
        if not self._steps:
            self._deadline = None
            return []
        signum, message = self._steps.pop(0)
        self._deadline = self.clock() + self.timeout if self._steps else None
        message = message or f"sent {signal.Signals(signum).name}"
        return [WatchEvent("signal", why + message, signal=signum)]


def _lasting(blocks: List[Block]) -> List[Block]:
    """The blocks from the LASTING-th on, each value the least of its own and those of the
    blocks before it (a net prints its blobs in the same order every time)."""
    out = []
    for k in range(LASTING - 1, len(blocks)):
        block = blocks[k]
        earlier = [b for b in blocks[k - LASTING + 1 : k] if len(b.records) == len(block.records)]
        records = [
            replace(r, value=min([r.value] + [b.records[i].value for b in earlier]))
            for i, r in enumerate(block.records)
        ]
        out.append(
            Block(
                block.iteration,
                records,
                block.norms and [_least_norms(block, earlier)],
                block.texts,
            )
        )
    return out


def _least_norms(block: Block, earlier: List[Block]):
    norms = [block.norms[-1]] + [b.norms[-1] for b in earlier if b.norms]
    return replace(
        block.norms[-1],
        l2_diff=min(n.l2_diff for n in norms),
        l2_data=min(n.l2_data for n in norms),
    )


def _lasting_losses(losses: List[Valued]) -> List[Valued]:
    return [
        replace(losses[k], value=min(v.value for v in losses[k - LASTING + 1 : k + 1]))
        for k in range(LASTING - 1, len(losses))
    ]
