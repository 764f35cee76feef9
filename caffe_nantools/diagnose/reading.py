"""A Caffe log read into what the diagnosis needs, per run, in constant memory.

Caffe's order on a display iteration N (checked against Caffe 1.0's own logs): the test
passes due at N (their forward lines, then ``Test net output`` lines), N's forward and
backward debug lines, ``Iteration N ..., loss = X``, the train outputs, ``Iteration N, lr = Y``
and the clipping line. So the debug lines since the last solver line belong to the iteration
whose loss line closes them; lines inside a test pass are the test net's and are passed over.

Only a window of the last blocks is kept (raw) until the first suspect block; then the window
and that block are parsed and kept, and the rest of the log is read for its solver lines only
(and, for a plot, a thinned-out sample of blocks).
"""

from __future__ import annotations

import collections
import dataclasses
import re
from dataclasses import dataclass, field
from typing import (
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from caffe_nantools.diagnose.series import Curves, Sampled
from caffe_nantools.diagnose.trace import Block, is_bad, parse_block
from caffe_nantools.logs import (
    LOSS,
    Candidates,
    RATE,
    Displays,
    Event,
    Finding,
    Marked,
    Span,
    holds_known_message,
    parse_event,
    parse_line,
    parse_value,
)

#: Displayed iterations kept before the first non-finite one, to see a blow-up coming.
WINDOW = 12
#: The longest crash line quoted whole.
_QUOTED = 200
#: -log(FLT_MIN): SoftmaxWithLoss's loss once the probability of the true class underflows to 0
#: (Caffe clamps it at FLT_MIN), the classic sign of exploded scores or labels out of range.
SATURATED_SOFTMAX_LOSS = 87.3365


def _crash_text(crash: Finding) -> str:
    """The line of a crash, or from its marker on where the line is long (a paste that lost
    its line breaks holds a whole log in one)."""
    text = crash.text
    if len(text) > _QUOTED:
        text = text[max(text.find(crash.token), 0) :][:_QUOTED]
    return text


def is_saturated(loss: float) -> bool:
    return abs(loss - SATURATED_SOFTMAX_LOSS) < 0.01


#: A block that never sees its loss line (no solver around it) is cut at this size.
MAX_BLOCK_BYTES = 64 << 20

_CHECK = re.compile(
    r"caffe-nantools (?:NonFiniteError|warning): check '(.*?)': blob '(.*?)' (forward|backward) \w+ "
    r"at iteration (\d{1,18}) \((\w+)\)"
)
#: Caffe's own line before it writes a snapshot's weights or solver state (binary or HDF5).
_SNAPSHOT = re.compile(r"Snapshotting (?:solver state )?to (?:binary proto|HDF5) file (.+?)\s*$")
_CLIPPING = re.compile(r"Gradient clipping: scaling down gradients \(L2 norm (\S+) > (\S+)\)")
_ABORT = re.compile(
    r"Check failed|\*\*\\?\* (?:Check failure|Aborted at)|Traceback \(most recent call last\)"
)
_ABORT_LETTERS = "C*T"
#: A frame of glog's stack trace (``@ 0x7f... caffe::SampleBBox()``) and of a Python traceback.
_FRAME = re.compile(r"\s*@\s+0x[0-9a-fA-F]+\s+(.+?)\s*$")
_PY_FRAME = re.compile(r'\s*File "(.*)", line (\d+), in (.+?)\s*$')
#: The last line of a Python traceback: ``ValueError: msg``, ``KeyError``, ``mod.Error: msg``.
_PY_ERROR = re.compile(r"[A-Za-z_][\w.]*(?::.*)?$")
#: Frames kept of a stack trace: the failing function is among the first.
FRAMES = 16


@dataclass(frozen=True)
class Evidence:
    line: int
    text: str


@dataclass(frozen=True)
class Valued(Evidence):
    """A solver line with its iteration and value (a loss, a rate, an output)."""

    iteration: Optional[int] = None
    value: float = 0.0
    name: str = ""


@dataclass(frozen=True)
class Abort(Evidence):
    """How a run ended early: ``kind`` is ``check`` (a failed CHECK), ``fatal`` (another of glog's
    F lines), ``python`` (an exception, ``text`` its last line) or ``crash`` (only a stack trace
    or ``*** Aborted at``); ``frames`` are the functions of its stack trace (innermost first), or
    the Python frame that raised."""

    kind: str = ""
    source: str = ""
    frames: Tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckError(Evidence):
    """A CheckFiniteLayer line: the check's label, the blob, the pass and its own count."""

    check: str = ""
    blob: str = ""
    pass_: str = ""
    iteration: int = 0
    phase: str = ""


@dataclass
class Column:
    """One displayed iteration, reduced for the heatmap: per layer the largest mean |x| of its
    tops (forward) and of its bottom diffs (backward)."""

    iteration: Optional[int]
    forward: Dict[str, float]
    backward: Dict[str, float]

    @classmethod
    def of(cls, block: Block) -> Column:
        forward: Dict[str, float] = {}
        backward: Dict[str, float] = {}
        for r in block.records:
            if r.kind == "param":
                continue
            into = forward if r.pass_ == "forward" else backward
            into[r.layer] = larger(into.get(r.layer), r.value)
        return cls(block.iteration, forward, backward)


def larger(a: Optional[float], b: float) -> float:
    """The larger magnitude; a non-finite value wins, so it shows."""
    if a is None or is_bad(b):
        return b
    return a if is_bad(a) or a >= b else b


@dataclass
class Run:
    """What one run (from a ``Solving`` line to the next) left in the log."""

    displayed: int = 0
    has_debug: bool = False
    iterations: List[int] = field(default_factory=list)  # of the last two loss lines
    first_bad_loss: Optional[Valued] = None
    first_bad_lr: Optional[Valued] = None
    first_bad_output: Optional[Valued] = None
    #: The first non-finite output of a test pass (iteration: the one the test ran at).
    first_bad_test: Optional[Valued] = None
    #: Every train output of the iteration whose loss went bad first.
    bad_iteration_outputs: List[Valued] = field(default_factory=list)
    losses: Deque[Valued] = field(default_factory=lambda: collections.deque(maxlen=WINDOW))
    #: The learning rates of the last displayed iterations up to the first bad block.
    rates: Deque[Tuple[Optional[int], float]] = field(
        default_factory=lambda: collections.deque(maxlen=4 * WINDOW)
    )
    #: The first loss at 87.3365 = -log(FLT_MIN): softmax's probability of the true class is 0.
    pinned: Optional[Valued] = None
    clipped: int = 0
    first_clipping: Optional[Evidence] = None
    checks: List[CheckError] = field(default_factory=list)
    abort: Optional[Abort] = None
    #: The last displayed iteration before the abort.
    abort_after: Optional[int] = None
    #: The run's first line (its ``Solving`` line, or the log's first).
    start: int = 1
    #: The second pass's first non-finite value and crash marker in the run's lines.
    first_found: Optional[Finding] = None
    first_crash: Optional[Finding] = None
    #: The last displayed iterations before ``first_found`` and ``first_crash``.
    found_after: Optional[int] = None
    crash_after: Optional[int] = None
    #: A non-finite value only the second pass saw, before any the reading saw (``name``: the
    #: value as written, ``iteration``: the last displayed one before it). Set as soon as the
    #: second pass finds it (watch stops on it); inside a debug_info block with a suspect value,
    #: once the block is complete and read.
    unread: Optional[Valued] = None
    #: The first block with a suspect value, parsed, and the blocks before it.
    suspect: Optional[Block] = None
    window: List[Block] = field(default_factory=list)
    layers: Dict[str, None] = field(default_factory=dict)  # forward order, first seen
    columns: Sampled = field(default_factory=Sampled)
    loss_series: Sampled = field(default_factory=Sampled)
    lr_series: Sampled = field(default_factory=Sampled)
    #: Every curve of the run for a report (the loss, the rate, each output), read with it.
    curves: Optional[Curves] = None

    @property
    def went_bad(self) -> bool:
        return bool(
            self.suspect
            or self.first_bad_loss
            or self.first_bad_lr
            or self.checks
            or self.first_bad_test
            or self.unread
        )

    @property
    def gap(self) -> Optional[int]:
        """Iterations between the last two displayed ones (Caffe's ``display``); None when
        they are not in order (pieces of a log pasted out of order)."""
        if len(self.iterations) < 2 or self.iterations[-1] <= self.iterations[-2]:
            return None
        return self.iterations[-1] - self.iterations[-2]

    @property
    def first_bad(self) -> Optional[Valued]:
        """The first non-finite value seen (loss, rate, trace, check layer or the second pass's),
        with its line and its solver iteration where the log tells it."""
        found = [
            v
            for v in (self.first_bad_loss, self.first_bad_lr, self.first_bad_test, self.unread)
            if v is not None
        ]
        found += [Valued(c.line, c.text) for c in self.checks[:1]]
        s = self.suspect
        if s is not None:
            for bad in (
                next((r for r in s.records if r.bad), None),
                next((n for n in s.norms if n.bad), None),
            ):
                if bad is not None:
                    found.append(Valued(bad.line, s.text(bad.line), s.iteration))
        return min(found, key=lambda v: v.line, default=None)

    @property
    def first_bad_line(self) -> Optional[int]:
        first = self.first_bad
        return first.line if first is not None else None


#: Text every line of an output of each kind holds (a cheap test before parsing a line).
_OUTPUT_MARKS = {
    "train_output": ("Train net output #",),
    "test_output": ("Test net output #", "Test score #"),
}


#: A train output's line, its value a number ``float`` reads (group 2).
_TRAIN_OUTPUT = re.compile(
    rb"\] +Train net output #\d{1,18}: (\S+) = ([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?=\s|$)"
)


def _outputs(
    span: Span, data: bytes, kind: str, iteration: Optional[int]
) -> Iterator[Optional[Valued]]:
    """Each line of ``data`` (the start of ``span``): an output of ``kind`` (``train_output``,
    ``test_output``) as shown in the log, or None for any other line."""
    marks = _OUTPUT_MARKS[kind]
    for number, text in enumerate(data.decode("utf-8", "replace").split("\n"), span.line):
        glog = parse_line(text) if any(mark in text for mark in marks) else None
        event = parse_event(glog.message.strip(), number) if glog else None
        if event is None or event.kind != kind:
            yield None
        else:
            shown = span.original(number, text.rstrip("\r"))
            yield Valued(number, shown, iteration, event.value, event.name or "")


def _display_event(run: Displays, k: int) -> Event:
    """The event of line ``k`` of ``run`` (a loss or a rate line)."""
    glog = parse_line(run.text(k))
    return parse_event(glog.message.strip(), run.line + k)


class _Windows:
    """The entries of one run's windows (``losses``, ``rates``), in file order, whose making
    waits for the end of the run once a run of display lines was taken in bulk: of such a run
    only the line numbers are held, and only the entries that the windows keep in the end are
    made (later runs push out nearly all of them)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._due: List[Tuple[str, Optional[Displays], Sequence]] = []

    def _window(self, kind: str) -> Deque:
        return self.run.losses if kind == "loss" else self.run.rates

    def add(self, kind: str, item) -> None:
        """A ``loss`` (:class:`Valued`) or ``lr`` (iteration, rate) entry read one by one."""
        if self._due:
            self._due.append((kind, None, [item]))
        else:
            self._window(kind).append(item)

    def defer(self, kind: str, run: Displays, lines: np.ndarray) -> None:
        """The ``kind`` lines of ``run`` at ``lines``, to be made when :meth:`fill` comes."""
        if len(lines):
            self._due.append((kind, run, lines[-self._window(kind).maxlen :].tolist()))
            self._due = self._needed()

    def _needed(self) -> List[Tuple[str, Optional[Displays], Sequence]]:
        """The entries of ``_due`` that a window holds in the end."""
        later = {"loss": 0, "lr": 0}
        kept = []
        for entry in reversed(self._due):
            kind = entry[0]
            if later[kind] < self._window(kind).maxlen:
                kept.append(entry)
                later[kind] += len(entry[2])
        return kept[::-1]

    def fill(self) -> None:
        """Every entry due made and put in its window."""
        for kind, run, items in self._due:
            window = self._window(kind)
            if run is None:
                window.extend(items)
                continue
            for k in items:
                event = _display_event(run, k)
                if kind == "loss":
                    window.append(Valued(run.line + k, run.text(k), event.iteration, event.value))
                else:
                    window.append((event.iteration, event.value))
        self._due = []


class Reader:
    """Feeds on :func:`caffe_nantools.logs.chunks.read_log`'s pieces; ``runs`` holds the result.

    Args:
        plot: keep a sample of every series for a plot (parses a sample of the blocks).
    """

    def __init__(self, plot: bool = False) -> None:
        self.plot = plot
        self.runs: List[Run] = [self._run_from(1)]
        self._windows = _Windows(self.runs[-1])
        self._testing = False
        self._outputs_due = False
        self._test_iteration: Optional[int] = None
        self._test_net = 0
        self._pending: List[Span] = []
        self._pending_bytes = 0
        self._pending_suspect = False
        self._raw: Deque[Tuple[Optional[int], List[Span]]] = collections.deque(maxlen=WINDOW)
        self._seen = False
        #: The run whose first non-finite value the reading saw before the second pass did.
        self._settled: Optional[Run] = None
        self._traceback: Optional[Marked] = None  # a Python traceback whose last line is due
        self._frames_due = False
        #: Every snapshot file the log names, in order: (line, path).
        self.snapshots: List[Tuple[int, str]] = []
        #: The line of the current run's ``Optimization Done.``: the solver ended its training.
        self.done: Optional[int] = None

    @property
    def recognised(self) -> bool:
        """Whether any line was read as a Caffe log's: a solver line (outputs included), a
        debug_info line, a check layer's line or an abort."""
        return self._seen or any(r.has_debug for r in self.runs)

    @property
    def run(self) -> Run:
        return self.runs[-1]

    def wants_values(self) -> bool:
        """Whether :class:`Candidates` can still tell the reader anything: only until its run
        has its first non-finite value (:func:`read_log`'s ``wants_values``)."""
        return self.run.first_found is None

    def feed_all(
        self, pieces: Iterable[Union[Span, Marked, Finding, Candidates, Displays]]
    ) -> List[Run]:
        for piece in pieces:
            self.feed(piece)
        self.finish()
        return self.runs

    def feed(self, piece: Union[Span, Marked, Finding, Candidates, Displays]) -> None:
        if isinstance(piece, Span):
            self.span(piece)
        elif isinstance(piece, Candidates):
            self.candidates(piece)
        elif isinstance(piece, Finding):
            self.found(piece)
        elif isinstance(piece, Displays):
            self.displays(piece)
        else:
            self.marked(piece)

    def displays(self, run: Displays) -> None:
        """A run of display lines: its first loss line is read one by one, the lines after it
        only counted (the sampled ones parsed, the last two losses read for the iterations),
        when nothing else is due (debug_info blocks, a test pass, outputs, an abort's lines).
        The windows' entries of such a run are made only when the log ends, and only those
        that are kept: later runs push most of them out."""
        losses = np.flatnonzero(run.kinds == LOSS)
        head = int(losses[0]) + 1 if len(losses) else len(run.kinds)
        for piece in run.pieces(0, head):
            self.feed(piece)
        if head == len(run.kinds) or not self._plain():
            for piece in run.pieces(head):
                self.feed(piece)
            return
        rates = np.flatnonzero(run.kinds == RATE)
        if self.run.curves is not None:
            self._bulk_outputs(run, head, losses)
        losses, rates = losses[1:], rates[rates >= head]
        current = self.run
        self._count(run, losses, "loss")
        self._count(run, rates, "lr")
        self._seen = True
        self._pending, self._pending_bytes, self._pending_suspect = [], 0, False
        if len(losses):
            last = [_display_event(run, k).iteration for k in losses[-2:].tolist()]
            current.iterations = (current.iterations[-1:] + last)[-2:]
            if current.abort is None:
                current.abort_after = last[-1]
            if current.first_bad_loss is None:
                self._windows.defer("loss", run, losses)
        self._windows.defer("lr", run, rates)

    def _run_from(self, line: int) -> Run:
        """A new run, its first line ``line``; with its curves for a plot."""
        return Run(start=line, curves=Curves() if self.plot else None)

    def _bulk_outputs(self, run: Displays, head: int, losses: np.ndarray) -> None:
        """The train outputs among the lines of ``run`` from ``head`` on (all finite, as no line
        of a Displays is suspect) added to the curves, only the values the curves keep read;
        each one's iteration is the loss line's before it (``losses``: the loss lines of
        ``run``)."""
        begin = int(run.breaks[head - 1]) + 1 if head else 0
        found: Dict[bytes, List[int]] = {}
        for m in _TRAIN_OUTPUT.finditer(run.data, begin):
            found.setdefault(m.group(1), []).append(m.start())
        for name, offsets in found.items():
            lines = np.searchsorted(run.breaks, offsets)
            before = losses[np.searchsorted(losses, lines) - 1]

            def point(k: int, offsets=offsets, before=before) -> Tuple[int, float]:
                value = float(_TRAIN_OUTPUT.match(run.data, offsets[k]).group(2))
                return _display_event(run, int(before[k])).iteration, value

            curve = self.run.curves.output("train", name.decode("utf-8", "replace"))
            curve.add_finite(len(lines), point)

    def _curve_outputs(self, span: Span, data: bytes, phase: str) -> None:
        """The ``phase`` outputs among the lines of ``data`` (the start of ``span``) added to the
        run's curves: a test pass's at its iteration (a second test net's named ``net1/...``),
        the train net's at the last displayed iteration."""
        run = self.run
        if run.curves is None:
            return
        marks = [mark.encode() for mark in _OUTPUT_MARKS[f"{phase}_output"]]
        at = [k for k in (data.find(mark) for mark in marks) if k >= 0]
        if not at:
            return
        if phase == "test":
            iteration = self._test_iteration
        else:
            iteration = run.iterations[-1] if run.iterations else None
        if iteration is None:
            return
        # Only the lines from the first output to the last are decoded (a block may follow).
        begin = data.rfind(b"\n", 0, min(at)) + 1
        end = data.find(b"\n", max(data.rfind(mark) for mark in marks))
        lines = Span(
            data[begin : len(data) if end < 0 else end],
            span.line + data.count(b"\n", 0, begin),
            span.suspect,
            span.originals,
        )
        prefix = f"net{self._test_net}/" if phase == "test" and self._test_net else ""
        for output in _outputs(lines, lines.data, f"{phase}_output", iteration):
            if output is not None:
                run.curves.output(phase, prefix + output.name).add(iteration, output.value)

    def _plain(self) -> bool:
        """Whether a display line needs nothing but counting, sampling and the windows."""
        return not (
            self.run.has_debug
            or self._testing
            or self._outputs_due
            or self._frames_due
            or self._traceback is not None
        )

    def _count(self, run: Displays, lines: np.ndarray, kind: str) -> None:
        """Loss or rate lines of ``run`` added to their series (the windows are filled apart)."""
        series = self.run.loss_series if kind == "loss" else self.run.lr_series
        if kind == "loss":
            self.run.displayed += len(lines)

        def item(k: int) -> Tuple[int, float]:
            event = _display_event(run, int(lines[k]))
            return event.iteration, event.value

        series.add_many(len(lines), item)
        curves = self.run.curves
        if curves is not None:
            (curves.loss if kind == "loss" else curves.rate).add_finite(len(lines), item)

    def candidates(self, candidates: Candidates) -> None:
        """Lines that may hold a non-finite value: looked at only while the run has none."""
        if self.wants_values():
            found = candidates.first()
            if found is not None:
                self.found(found)

    def found(self, finding: Finding) -> None:
        """A line of the second pass (:mod:`caffe_nantools.logs.sweep`): its first non-finite
        value and crash marker count for the run they are in; a Caffe message on its line makes
        the log a Caffe log, even where no reading took it (glued into another record)."""
        run = self.run
        self._seen = self._seen or holds_known_message(finding.text)
        if finding.kind == "crash":
            if run.first_crash is None:
                run.first_crash = finding
                run.crash_after = run.iterations[-1] if run.iterations else None
        elif run.first_found is None:
            run.first_found = finding
            run.found_after = run.iterations[-1] if run.iterations else None
            self._settle(run)

    def span(self, span: Span) -> None:
        if not self._seen:
            self._seen = b" net output #" in span.data or b"Test score #" in span.data
        if self._traceback is not None or self._frames_due:
            self._abort_lines(span)
        if self._testing:
            # The test pass ends with its outputs; what follows them is the train net's.
            cut = max(span.data.rfind(b"Test net output #"), span.data.rfind(b"Test score #"))
            cut = span.data.find(b"\n", cut) + 1 if cut >= 0 else 0
            if cut == 0:
                return
            if self.run.first_bad_test is None:
                self._bad_test_output(span, cut)
            self._curve_outputs(span, span.data[:cut], "test")
            self._testing = False
            span = Span(
                span.data[cut:],
                span.line + span.data.count(b"\n", 0, cut),
                span.suspect,
                span.originals,
            )
        elif (
            span.suspect
            and self.run.first_bad_test is None
            and b"Test " in span.data  # one scan for both marks (a NaN that persists: every span)
            and (b"Test net output #" in span.data or b"Test score #" in span.data)
        ):
            self._bad_test_output(span, len(span.data))  # pasted without its "Testing net" line
        if self._outputs_due:
            self._outputs_due = False
            self._bad_output(span)
        self._curve_outputs(span, span.data, "train")
        self._pending.append(span)
        self._pending_bytes += len(span.data)
        self._pending_suspect |= span.suspect
        if self._pending_bytes > MAX_BLOCK_BYTES:
            self._close_block(None)

    def _solver_note(self, marked: Marked, message: str) -> bool:
        """A snapshot, the end of the training or a clipping, read from ``message``; whether
        it was one of them."""
        m = _SNAPSHOT.match(message)
        if m:
            self.snapshots.append((marked.line, m.group(1)))
        elif message.startswith("Optimization Done"):
            self.done = marked.line
        elif _CLIPPING.match(message):
            self._seen = True
            self.run.clipped += 1
            if self.run.first_clipping is None:
                self.run.first_clipping = Evidence(marked.line, marked.shown)
        else:
            return False
        return True

    def marked(self, marked: Marked) -> None:
        glog = parse_line(marked.text)
        if glog is None:
            return
        message = glog.message.strip()
        # The first letter tells most marked messages apart before a regex has to.
        first = message[:1]
        if glog.level == "F" or (first in _ABORT_LETTERS and _ABORT.match(message)):
            self._seen = True
            self._abort(marked, glog.level, glog.source, message)
            return
        if first == "c" and message.startswith("caffe-nantools "):
            self._check_line(marked, message)
            return
        if first in "SOG" and self._solver_note(marked, message):
            return
        event = parse_event(message, marked.line)
        if event is None:
            return
        self._seen = True
        self._frames_due = False  # the stack trace of an abort is over
        if event.kind == "run":
            self._close_block(None)
            run = self.run
            if run.displayed or run.went_bad or run.has_debug or run.abort or run.first_found:
                self._windows.fill()
                self.runs.append(self._run_from(marked.line))
                self._windows = _Windows(self.runs[-1])
            elif run.first_crash is None:
                run.start = marked.line
            self._raw.clear()
            self._testing = False
            self._outputs_due = False  # the outputs due were the run's before
            self.done = None
        elif event.kind == "test":
            self._close_block(None)
            self._testing = True
            self._test_iteration = event.iteration
            self._test_net = event.index or 0
        elif event.kind == "loss":
            self._testing = False
            self._close_block(event.iteration)
            self._loss(Valued(marked.line, marked.shown, event.iteration, event.value))
        elif event.kind == "lr":
            run = self.run
            run.lr_series.add((event.iteration, event.value))
            if run.curves is not None:
                run.curves.rate.add(event.iteration, event.value)
            if run.suspect is None or event.iteration == run.suspect.iteration:
                self._windows.add("lr", (event.iteration, event.value))
            if run.first_bad_lr is None and is_bad(event.value):
                run.first_bad_lr = Valued(marked.line, marked.shown, event.iteration, event.value)

    def recent_blocks(self) -> List[Block]:
        """The debug_info blocks of the last displayed iterations, parsed; empty once the run went
        bad (its window is in ``run.window`` then)."""
        return [parse_block(pieces, iteration) for iteration, pieces in self._raw]

    def _bad_test_output(self, span: Span, cut: int) -> None:
        """The first non-finite output among a test pass's output lines."""
        for output in _outputs(span, span.data[:cut], "test_output", self._test_iteration):
            if output is not None and is_bad(output.value):
                self.run.first_bad_test = output
                return

    def _bad_output(self, span: Span) -> None:
        """The train outputs among the lines after the first bad loss, and the first bad one."""
        run = self.run
        iteration = run.iterations[-1] if run.iterations else None
        for output in _outputs(span, span.data, "train_output", iteration):
            if output is None:
                if run.bad_iteration_outputs:
                    return  # the outputs are one run of lines
                continue
            run.bad_iteration_outputs.append(output)
            if run.first_bad_output is None and is_bad(output.value):
                run.first_bad_output = output

    def _abort(self, marked: Marked, level: str, source: str, message: str) -> None:
        """Keep the run's first abort line that says why (a failed CHECK, an F line, a Python
        exception) over the ones that only say that it happened."""
        if message.startswith("Traceback "):
            self._traceback = marked
            return
        kind = (
            "check" if message.startswith("Check failed") else "fatal" if level == "F" else "crash"
        )
        current = self.run.abort
        if current is None or (current.kind == "crash" and kind != "crash"):
            self.run.abort = Abort(
                marked.line, marked.shown, kind, source, current.frames if current else ()
            )
        self._frames_due = True

    def _abort_lines(self, span: Span) -> None:
        """The frames of a stack trace, and the last line of a Python traceback, in the lines
        after an abort."""
        python_frame = ""
        for number, text in enumerate(span.data.decode("utf-8", "replace").split("\n"), span.line):
            text = text.rstrip("\r")
            run = self.run
            m = _FRAME.match(text)
            if m is not None and run.abort is not None and len(run.abort.frames) < FRAMES:
                run.abort = dataclasses.replace(run.abort, frames=run.abort.frames + (m.group(1),))
                continue
            if self._traceback is None:
                continue
            m = _PY_FRAME.match(text)
            if m is not None:
                python_frame = f"{m.group(3)} ({m.group(1)}:{m.group(2)})"
            elif text[:1].strip() and _PY_ERROR.match(text) and parse_line(text) is None:
                if run.abort is None or run.abort.kind == "crash":
                    frames = (python_frame,) if python_frame else ()
                    run.abort = Abort(number, span.original(number, text), "python", "", frames)
                self._traceback = None
                self._frames_due = False
                return

    def _loss(self, loss: Valued) -> None:
        run = self.run
        run.displayed += 1
        run.iterations = run.iterations[-1:] + [loss.iteration]
        if run.abort is None:
            run.abort_after = loss.iteration
        run.loss_series.add((loss.iteration, loss.value))
        if run.curves is not None:
            run.curves.loss.add(loss.iteration, loss.value)
        if run.pinned is None and is_saturated(loss.value):
            run.pinned = loss
        if run.first_bad_loss is None:
            self._windows.add("loss", loss)
            if is_bad(loss.value):
                run.first_bad_loss = loss
                self._outputs_due = True

    def _check_line(self, marked: Marked, message: str) -> None:
        m = _CHECK.search(message)
        if m is None:
            return
        self._seen = True
        check, blob, pass_, iteration, phase = m.groups()
        if len(self.run.checks) < WINDOW:
            self.run.checks.append(
                CheckError(marked.line, marked.shown, check, blob, pass_, int(iteration), phase)
            )

    def finish(self) -> None:
        """The log ended: a traceback whose last line never came is the abort itself; what the
        second pass found before anything the reading saw is the run's too."""
        self._close_block(None)
        self._windows.fill()
        if self._traceback is not None and self.run.abort is None:
            t = self._traceback
            self.run.abort = Abort(t.line, t.shown, "python")
        for run in self.runs:
            crash = run.first_crash
            if crash is not None and run.abort is None:
                self._seen = True
                run.abort = Abort(crash.line, _crash_text(crash), "crash")
                run.abort_after = run.crash_after

    def _settle(self, run: Run) -> None:
        """The second pass's first non-finite value becomes the run's ``unread`` one where the
        reading saw none on its line or before it; in a debug_info block with a suspect value,
        only once the block is complete and read (its loss line closes it)."""
        found = run.first_found
        if found is None or run.unread is not None or run is self._settled:
            return
        if run is self.run and self._in_suspect_block(found.line):
            return
        read = run.first_bad
        if read is None or found.line < read.line:
            run.unread = Valued(
                found.line, found.text, run.found_after, parse_value(found.token), found.token
            )
        else:
            self._settled = run  # the reading saw one first: more reading only finds later ones

    def _in_suspect_block(self, line: int) -> bool:
        """Whether ``line`` is in the debug_info block being read, which holds a suspect value."""
        pending = self._pending
        return (
            self._pending_suspect
            and line >= pending[0].line
            and (
                self.run.has_debug
                or any(b"[Forward] " in p.data or b"[Backward] " in p.data for p in pending)
            )
        )

    def _close_block(self, iteration: Optional[int]) -> None:
        pieces, suspect = self._pending, self._pending_suspect
        self._pending, self._pending_bytes, self._pending_suspect = [], 0, False
        if pieces:
            self._read_block(pieces, suspect, iteration)
        self._settle(self.run)

    def _read_block(self, pieces: List[Span], suspect: bool, iteration: Optional[int]) -> None:
        run = self.run
        if not run.has_debug:
            if not any(b"[Forward] " in p.data or b"[Backward] " in p.data for p in pieces):
                return
            run.has_debug = True
        block = None
        if run.suspect is None:
            if suspect:
                block = parse_block(pieces, iteration)
                if any(r.bad for r in block.records) or any(n.bad for n in block.norms):
                    run.suspect = block
                    run.window = [parse_block(p, i) for i, p in self._raw]
                    self._raw.clear()
                    for earlier in run.window:
                        self._learn_layers(earlier)
            if run.suspect is None:
                self._raw.append((iteration, pieces))
        if block is not None or (self.plot and run.columns.wants_next()):
            block = block or parse_block(pieces, iteration)
            self._learn_layers(block)
            if self.plot:
                run.columns.add(Column.of(block))
        elif self.plot:
            run.columns.add(None)

    def _learn_layers(self, block: Block) -> None:
        for r in block.records:
            if r.pass_ == "forward" and r.layer not in self.run.layers:
                self.run.layers[r.layer] = None
