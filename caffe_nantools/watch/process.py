"""The command watch runs: started in a process group of its own (a Ctrl-C reaches it once, from
watch), its stdout and stderr passed through to watch's own as they come, the whole lines of
both written to the log and read by the monitor, and the signals the monitor decides sent to
its group, as a terminal sends Ctrl-C to every process of a job."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import os
import selectors
import signal
import subprocess
import sys
import threading
from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from caffe_nantools.children import end_with_parent
from caffe_nantools.logs.chunks import Lines
from caffe_nantools.watch.monitor import Monitor, WatchEvent

#: Seconds between looks at the clock while the command is quiet.
POLL = 0.1
#: Bytes read before the log and the monitor get them while the output never pauses (at once
#: when it pauses): every line is read, but taking each pipe read on its own would cost more
#: than the reading.
BATCH = 1 << 20
READ = 1 << 20
FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


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


def start(command: Sequence[str], env: Dict[str, str]) -> subprocess.Popen:
    """The command, running. Raises OSError when it cannot be started."""
    return subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        # SIGTERM, which the command can clean up on, when watch dies.
        preexec_fn=functools.partial(end_with_parent, os.getpid(), signal.SIGTERM),
    )


class Child:
    """The plumbing around a started command; :meth:`run` returns its exit status when it ended
    (negative: killed by that signal).

    Args:
        emit: called with each event, once the command's stderr is at the start of a line (a
            message never lands inside a line of Caffe's).
    """

    def __init__(
        self,
        proc: subprocess.Popen,
        log: BinaryIO,
        monitor: Monitor,
        emit: Callable[[WatchEvent], None],
        out: Terminal,
        err: Terminal,
    ) -> None:
        self.proc = proc
        self.log: Optional[BinaryIO] = log
        self.monitor = monitor
        self.emit = emit
        self.err = err
        self._streams = {proc.stdout.fileno(): (out, Lines()), proc.stderr.fileno(): (err, Lines())}
        self._raw: List[Tuple[int, bytes]] = []  # (fd, piece) as read
        self._raw_bytes = 0
        self._pending: List[memoryview] = []  # whole lines, for the monitor
        self._queued: List[WatchEvent] = []

    def run(self) -> int:
        received: List[int] = []
        with _catching(received):
            try:
                self._loop(received)
            finally:
                if self.proc.poll() is None:  # watch failed: the command must not outlive it
                    self._send(signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(5)
                    self._send(signal.SIGKILL)
        return self.proc.wait()

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
                self._raw_bytes >= BATCH or not selector.select(0)
            ):
                self._flush()
            while received:
                self._deliver(self.monitor.receive(received.pop(0)))
            self._deliver(self.monitor.tick())
            if not ready and selector.get_map() and self.proc.poll() is not None:
                break  # it ended, and what holds its pipes open (a process it left behind) is not waited for
        for fd in list(selector.get_map()):
            self._end(fd)
        self._flush()
        self._deliver(self.monitor.close())
        self._emit(force=True)

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
        terminal.write(data)
        self._raw.append((key.fd, data))
        self._raw_bytes += len(data)
        self._emit()

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
                self._send(event.signal)
        self._queued += events
        self._emit()

    def _emit(self, force: bool = False) -> None:
        if self._queued and (force or self.err.at_line_start):
            queued, self._queued = self._queued, []
            for event in queued:
                self.emit(event)

    def _send(self, signum: int) -> None:
        if self.proc.returncode is not None:
            return  # reaped: its group id may be another's now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


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
