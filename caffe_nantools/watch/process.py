"""The command watch runs: started in a process group of its own (a Ctrl-C reaches it once, from
watch), its stdout and stderr passed through to watch's own as they come, the whole lines of
both written to the log and read by the monitor, and the signals the monitor decides sent to
its group, as a terminal sends Ctrl-C to every process of a job.

Each piece read is looked at for a non-finite value at once (the second pass's look, on its
whole lines): where it holds one, the command is frozen (SIGSTOP) before the monitor reads
what came, and goes on (SIGCONT) once the monitor's signals are sent. Caffe acts on a signal at
the end of an iteration: frozen, it cannot run on while watch decides. A stop that asks for a
snapshot first freezes it again where Caffe names the solver state, until the stop is sent."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import selectors
import signal
import subprocess
import sys
import threading
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from caffe_nantools.logs import Lines, may_be_nonfinite, sweep_chunk
from caffe_nantools.watch.monitor import Monitor
from caffe_nantools.watch.report import WatchEvent

#: Seconds between looks at the clock while the command is quiet.
POLL = 0.1
#: Bytes read before the log and the monitor get them while the output never pauses (at once
#: when it pauses): every line is read, but taking each pipe read on its own would cost more
#: than the reading.
BATCH = 1 << 20
READ = 1 << 20
#: Bytes of an output's unfinished line kept for the look at the next piece.
TAIL = 1 << 12
FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
#: The guardian watch runs the command under, a script of the standard library only.
GUARDIAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guardian.py")


class Terminal:
    """One of watch's own outputs, which the command's bytes pass through to unchanged. One that
    went away (a closed pipe, a hung-up terminal) is left out from then on: the log still gets
    everything."""

    def __init__(self, stream: TextIO) -> None:
        stream.flush()  # what was printed before goes first
        self._text = stream
        self._binary = getattr(stream, "buffer", None)
        self.alive = True
        #: Whether the last byte passed through ended a line (watch's messages wait for it).
        self.at_line_start = True

    def write(self, data: bytes) -> None:
        self.at_line_start = data.endswith(b"\n")
        if not self.alive:
            return
        try:
            if self._binary is not None:
                self._binary.write(data)
                self._binary.flush()
            else:  # a stream without bytes (a notebook's)
                self._text.write(data.decode("utf-8", "replace"))
                self._text.flush()
        except (OSError, ValueError):
            self.alive = False


class Started:
    """The command, running under its guardian (:mod:`caffe_nantools.watch.guardian`): ``proc``
    is the guardian, whose outputs are the command's and whose exit status is the command's;
    ``group`` is the command's process group, where watch's signals go.

    Raises (on creation) OSError when the command cannot be started.
    """

    def __init__(self, command: Sequence[str], env: Dict[str, str]) -> None:
        given_lifeline, lifeline = os.pipe()  # watch writes nothing: its end closing counts
        report, given_report = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", GUARDIAN, str(given_lifeline), str(given_report)]
                + ["--", *command],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for watch does not reach it
                pass_fds=(given_lifeline, given_report),
            )
        except BaseException:
            os.close(lifeline)
            os.close(report)
            raise
        finally:
            os.close(given_lifeline)
            os.close(given_report)
        self._lifeline: Optional[int] = lifeline
        self._report = report
        self._lines: List[str] = []
        self._rest = b""
        while not self._lines and self._read_report():
            pass
        word, _, value = (self._lines.pop(0) if self._lines else "").partition(" ")
        if word != "started":
            self.proc.wait()
            self.left()
            number = int(value) if value.isdigit() else errno.EIO
            raise OSError(number, os.strerror(number))
        self.group = int(value)
        os.set_blocking(report, False)

    def signal(self, signum: int) -> None:
        """``signum`` to the command's group, as a terminal sends Ctrl-C to every process of a job."""
        if self.proc.returncode is not None:
            return  # the guardian is reaped: the group id may be another's now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.group, signum)

    def ended(self) -> bool:
        """Whether the command's first process ended (what it started may still run)."""
        with contextlib.suppress(BlockingIOError):
            self._read_report()
        return "ended" in self._lines

    def end(self) -> None:
        """Asks the guardian to end every process of the command (as watch's death would)."""
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def left(self) -> List[str]:
        """Once the guardian ended: the processes the command left running when its first one
        ended, which the guardian ended (``name (pid N)``)."""
        self.end()
        os.set_blocking(self._report, True)
        while self._read_report():
            pass
        os.close(self._report)
        found = [line.split(" ", 2) for line in self._lines if line.startswith("left ")]
        return [f"{parts[2]} (pid {parts[1]})" for parts in found if len(parts) == 3]

    def _read_report(self) -> bool:
        """The guardian's next lines; False at the end."""
        data = os.read(self._report, 4096)
        *lines, self._rest = (self._rest + data).split(b"\n")
        self._lines += [line.decode("utf-8", "replace") for line in lines]
        return bool(data)


class Child:
    """The plumbing around a started command; :meth:`run` returns its exit status when it ended
    (negative: killed by that signal).

    Args:
        emit: called with each event, once the command's stderr is at the start of a line (a
            message never lands inside a line of Caffe's).
    """

    def __init__(
        self,
        command: Started,
        log: BinaryIO,
        monitor: Monitor,
        emit: Callable[[WatchEvent], None],
        out: Terminal,
        err: Terminal,
    ) -> None:
        self.command = command
        self.proc = proc = command.proc
        self.log: Optional[BinaryIO] = log
        self.monitor = monitor
        self.emit = emit
        self.err = err
        self._streams = {proc.stdout.fileno(): (out, Lines()), proc.stderr.fileno(): (err, Lines())}
        self._raw: List[Tuple[int, bytes]] = []  # (fd, piece) as read
        self._raw_bytes = 0
        self._pending: List[memoryview] = []  # whole lines, for the monitor
        self._queued: List[WatchEvent] = []
        self._looks = {fd: FreezeLook() for fd in self._streams}
        self._frozen = False
        self._left_by: Optional[float] = None  # when what the command left running is ended

    def run(self) -> int:
        received: List[int] = []
        with _catching(received):
            try:
                self._loop(received)
            finally:
                self._thaw()
                self.command.end()  # when watch failed, the command must not outlive it
                returncode = self.proc.wait()
        left = self.command.left()
        if left:
            self.emit(
                WatchEvent(
                    "warning",
                    f"the command ended and left {', '.join(left)} running: watch ended "
                    f"{'it' if len(left) == 1 else 'them'} (no process of the command outlives watch)",
                )
            )
        return returncode

    def _loop(self, received: List[int]) -> None:
        selector = selectors.DefaultSelector()
        for pipe in (self.proc.stdout, self.proc.stderr):
            _widen(pipe.fileno())
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map() or self.proc.poll() is None:
            ready = selector.select(POLL) if selector.get_map() else self._wait()
            for key, _ in ready:
                self._read(selector, key)
            if (self._raw or self._pending) and (
                self._frozen or self._raw_bytes >= BATCH or not selector.select(0)
            ):
                self._flush()
            self._thaw()
            while received:
                self._deliver(self.monitor.receive(received.pop(0)))
            self._deliver(self.monitor.tick())
            self._end_what_is_left()
            if not ready and selector.get_map() and self.proc.poll() is not None:
                break  # it ended, and what holds its pipes open (a process it left behind) is not waited for
        for fd in list(selector.get_map()):
            self._end(fd)
        self._flush()
        self._deliver(self.monitor.close())
        self._emit(force=True)

    def _end_what_is_left(self) -> None:
        """Once the command's first process ended, what it left running is ended: at once, or,
        after watch stopped it or passed on a signal (its other processes may be acting on it:
        `bash -c 'caffe train ... & wait'` ends before Caffe's stop), after the timeout."""
        if self._left_by is None and self.command.ended():
            signalled = self.monitor.request_line is not None
            self._left_by = self.monitor.clock() + (self.monitor.timeout if signalled else 0.0)
        if self._left_by is not None and self.monitor.clock() >= self._left_by:
            self.command.end()

    def _wait(self) -> list:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(POLL)
        return []

    def _read(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        terminal, _ = self._streams[key.fd]
        data = os.read(key.fd, READ)
        if not data:
            selector.unregister(key.fileobj)
            self._end(key.fd)
            key.fileobj.close()
            return
        if self._freezes(key.fd, data) and not self._frozen:
            self.command.signal(signal.SIGSTOP)
            self._frozen = True
        terminal.write(data)
        self._raw.append((key.fd, data))
        self._raw_bytes += len(data)
        self._emit()

    def _freezes(self, fd: int, data: bytes) -> bool:
        """Whether the command is frozen as ``data`` is read: it shows a non-finite value before
        watch stopped the run, or, while the stop waits for the snapshot it asked for first,
        Caffe naming the solver state (the stop goes before the next iteration runs on)."""
        nonfinite = self._looks[fd].shows_nonfinite(data)  # every piece: it keeps the line's start
        if self.monitor.awaiting_snapshot:
            return b".solverstate" in data
        return nonfinite and self.monitor.stop_reason is None

    def _thaw(self) -> None:
        """The frozen command goes on: the monitor has read what came, and its signals (a stop)
        were sent, to be acted on as it goes on."""
        if self._frozen:
            self._frozen = False
            self.command.signal(signal.SIGCONT)

    def _end(self, fd: int) -> None:
        """An output ended: its last line, when it has no line break, ends in the log, which
        holds both outputs."""
        self._take()
        rest = self._streams[fd][1].rest()
        if rest:
            self._lines(rest + b"\n")

    def _take(self) -> None:
        """What was read, for the log and the monitor: the whole lines of each output, in the
        order they came (pieces of one output in a row are joined first: one copy a batch)."""
        raw, self._raw, self._raw_bytes = self._raw, [], 0
        for fd, pieces in itertools.groupby(raw, key=lambda r: r[0]):
            self._lines(*self._streams[fd][1].feed(b"".join(p for _, p in pieces)))

    def _lines(self, text: bytes, end: Optional[int] = None) -> None:
        """Whole lines, ``text[:end]``, for the log and the monitor."""
        view = memoryview(text)[: len(text) if end is None else end]
        if not view:
            return
        if self.log is not None:
            try:
                self.log.write(view)
                self.log.flush()
            except OSError as e:
                self.log = None
                self._deliver(
                    [
                        WatchEvent(
                            "warning",
                            f"the log cannot be written ({e.strerror or e}); "
                            "it ends here, the command goes on",
                        )
                    ]
                )
        self._pending.append(view)

    def _flush(self) -> None:
        self._take()
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            self._deliver(self.monitor.feed(data))

    def _deliver(self, events: List[WatchEvent]) -> None:
        for event in events:
            if event.signal is not None:
                self.command.signal(event.signal)
        self._queued += events
        self._emit()

    def _emit(self, force: bool = False) -> None:
        if self._queued and (force or self.err.at_line_start):
            queued, self._queued = self._queued, []
            for event in queued:
                self.emit(event)


class FreezeLook:
    """The look at each piece of an output as it is read, before the monitor's reading decides:
    whether the lines the piece ends hold a non-finite value, as the second pass finds one."""

    def __init__(self) -> None:
        self._tail = b""  # the start of the unfinished line (its last TAIL bytes)

    def shows_nonfinite(self, data: bytes) -> bool:
        cut = data.rfind(b"\n") + 1
        tail = self._tail
        self._tail = (data[cut:] if cut else tail + data)[-TAIL:]
        if not cut:
            return False
        # Most pieces: the sweep's first step alone rules it out, on the piece where it lies
        # (no copy of it), and on the line's start held from the piece before, with the seam.
        if not (may_be_nonfinite(data, cut) or may_be_nonfinite(tail + data[:8])):
            return False
        lines = tail + data[:cut]
        return any(f.kind == "nonfinite" for f in sweep_chunk(lines, len(lines), 1))


def _widen(fd: int) -> None:
    """A pipe of READ bytes where Linux allows it (64 KB by default): fewer, larger reads."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), READ)


@contextlib.contextmanager
def _catching(received: List[int]) -> Iterator[None]:
    """The signals watch gets while the command runs are noted, to be passed on, instead of
    ending watch (a handler can only be set in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in FORWARDED
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
