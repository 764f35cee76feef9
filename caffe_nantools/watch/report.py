"""What a watch ends with: the command's status, why watch stopped it, what it saw and did on
the way (its events), the snapshots (the one asked for, the last good one) and the diagnosis of
the log."""

from __future__ import annotations

import re
import shlex
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from caffe_nantools import jsontext
from caffe_nantools.diagnose import Abort, Diagnosis, Reader, Run, is_bad
from caffe_nantools.errors import EXIT_ERROR, EXIT_FINDINGS
from caffe_nantools.finite_snapshot import Finiteness

_ITERATION = re.compile(r"_iter_(\d+)\.")
_SUFFIX = re.compile(r"\.(?:caffemodel|solverstate)(?:\.h5)?$")
#: The keys of a result's JSON, in their order: its fields' (some renamed) and what is worked
#: out of them (the statuses, what was seen, the snapshots asked for, the last good one).
_JSON_KEYS = (
    "command",
    "log",
    "status",
    "exit_status",
    "stopped",
    "non_finite",
    "received",
    "checked",
    "displayed",
    "snapshot",
    "snapshot_interval",
    "last_good_snapshot",
    "last_good_iteration",
    "finite",
    "kept",
    "not_kept",
    "snapshots",
    "warnings",
    "diagnosis",
    "hunt",
    "resumed",
)


@dataclass(frozen=True)
class WatchEvent:
    """Something watch saw or did, as it happened.

    ``kind``: ``start``, ``note`` (what watch changed in the command's environment),
    ``warning`` (an early sign, the run goes on), ``stop`` (watch stops the
    run: ``message`` says why), ``signal`` (watch sent ``signal`` to the command),
    ``forward`` (watch passed a signal it received on to the command), ``snapshot`` (Caffe
    wrote a snapshot file), ``keep`` (``--keep-good``: watch asked for a snapshot to keep,
    with ``signal``, or kept one), ``hunt`` (``--hunt``: its start and verdict, or why none ran)
    or ``resume`` (``--resume``: the command resumed under watch). ``line`` is the log line it is about, when there is one.
    """

    kind: str
    message: str
    line: Optional[int] = None
    signal: Optional[int] = None


@dataclass(frozen=True)
class Snapshot:
    """One snapshot: its files (weights, then solver state) and the log line naming the first."""

    line: int
    files: Tuple[str, ...]

    @property
    def iteration(self) -> Optional[int]:
        """From Caffe's file name, ``PREFIX_iter_N.caffemodel``: the weights after N updates."""
        m = _ITERATION.search(self.files[0])
        return int(m.group(1)) if m else None

    @property
    def solverstate(self) -> Optional[str]:
        return next((f for f in self.files if ".solverstate" in f), None)


@dataclass(frozen=True)
class Seen:
    """What of a Caffe log watch saw: any line of one (``recognised``), ``displayed`` loss lines
    (``last``: the iteration of the last), the first abort or crash its output shows (``abort``:
    a glog F line, a failed check, a shell's ``Segmentation fault``...)."""

    recognised: bool
    displayed: int
    last: Optional[int]
    abort: Optional[Abort] = None

    @classmethod
    def of(cls, reader: Reader) -> Seen:
        shown = [run.iterations[-1] for run in reader.runs if run.iterations]
        return cls(
            reader.recognised,
            sum(run.displayed for run in reader.runs),
            shown[-1] if shown else None,
            next((run.abort for run in reader.runs if run.abort is not None), None),
        )

    @property
    def checked(self) -> bool:
        """Whether watch saw the training's values: a loss line at least (without them, glog's
        INFO lines were hidden; Caffe logs debug_info's norms at ERROR)."""
        return self.displayed > 0

    def describe(self) -> str:
        """Why nothing was checked, or what was."""
        if not self.recognised:
            return "watch saw no line of a Caffe log, so it checked nothing"
        if not self.checked:
            return (
                "watch saw Caffe's lines but no loss line (INFO lines hidden: GLOG_minloglevel set by "
                "the command itself?), so it checked nothing"
            )
        last = f", the last {self.last}" if self.last is not None else ""
        return f"every value was finite ({self.displayed} displayed iterations{last})"


def _file_lists(snapshots: List[Snapshot]) -> List[List[str]]:
    return [list(s.files) for s in snapshots]


def snapshots_of(named: List[Tuple[int, str]]) -> List[Snapshot]:
    """Caffe's snapshot lines (line, file) grouped per snapshot."""
    found: List[Snapshot] = []
    for line, path in named:
        if found and _SUFFIX.sub("", found[-1].files[0]) == _SUFFIX.sub("", path):
            found[-1] = Snapshot(found[-1].line, found[-1].files + (path,))
        else:
            found.append(Snapshot(line, (path,)))
    return found


def last_good(
    snapshots: List[Snapshot],
    run: Run,
    finiteness: Optional[Callable[[Snapshot], Finiteness]] = None,
) -> Optional[Snapshot]:
    """The last snapshot of weights that every value up to it shows finite: named before the
    first bad line and, where ``finiteness`` checks its files, found finite there; one whose
    files were not checked only up to the last displayed iteration whose values were all
    finite (a weight can go bad in an update between two displays)."""
    first = run.first_bad_line
    if first is None:
        return None
    finite = [
        v.iteration
        for v in run.losses
        if v.line < first and not is_bad(v.value) and v.iteration is not None
    ]
    shown = max(finite, default=None)
    for s in reversed([s for s in snapshots if s.line < first]):
        found = finiteness(s).finite if finiteness is not None else None
        if found is True or (
            found is None and (s.iteration is None or shown is None or s.iteration <= shown)
        ):
            return s
    return None


@dataclass
class Hunted:
    """What ``--hunt`` did: hunt's report (a :class:`caffe_nantools.hunt.HuntReport`) from
    ``state`` (the last finite solver state) or why no hunt ran (one line, with the command that
    runs one); the user's command that resumes the training from the snapshot with the verified
    fix, or why there is none."""

    report: Optional[Any] = None
    state: Optional[str] = None
    no_hunt: Optional[str] = None
    resume: Optional[List[str]] = None
    no_resume: Optional[str] = None

    def to_dict(self) -> dict:
        return jsontext.fields_dict(self)

    def format(self) -> List[str]:
        """hunt's report under a line that says where it started, then the resume command."""
        if self.report is None:
            return [f"no hunt: {self.no_hunt}"] if self.no_hunt else []
        hunted = self.report.format().rstrip("\n").splitlines()
        lines = [f"hunt from {self.state}:"] + [f"  {line}" for line in hunted]
        if self.resume is not None:
            lines.append(
                f"resume: {shlex.join(self.resume)} (the last finite snapshot with the verified fix, "
                f"{self.report.fix.change}; your own files are untouched)"
            )
        else:
            lines.append(f"resume: none: {self.no_resume}")
        return lines


@dataclass
class WatchResult:
    """How a watched command ended.

    ``returncode`` is the command's as :mod:`subprocess` gives it (negative: killed by that
    signal); ``stopped`` why watch stopped it (``nonfinite``, ``blowup``) or None; ``went_bad``
    whether a value went non-finite; ``received`` the signals watch got and passed on;
    ``seen`` what of a Caffe log it saw (nothing seen is not an all-clear); ``requested`` the
    snapshots Caffe wrote after watch asked for one or stopped it (or passed
    on a signal; :attr:`asked` leaves the solver's periodic ones out); ``last_good`` the last
    snapshot before the first non-finite value whose files were not found non-finite
    (``checked`` says what the check of each snapshot's files found); ``kept`` the finite
    snapshots ``--keep-good`` kept; ``not_kept`` why it kept none of its own (off, not
    `caffe train`...); ``diagnosis`` the log's, as ``diagnose`` gives it (None when nothing in
    it was a Caffe log's); ``hunted`` what ``hunt=True`` did, ``resumed`` the watch of the
    resumed training with ``resume=True``.
    """

    command: List[str]
    log: str
    returncode: int
    stopped: Optional[str]
    went_bad: bool
    received: List[int]
    seen: Seen
    snapshots: List[Snapshot]
    requested: List[Snapshot]
    last_good: Optional[Snapshot]
    diagnosis: Optional[Diagnosis]
    events: List[WatchEvent] = field(default_factory=list)
    #: The solver's ``snapshot`` interval (0: none); None where no solver was read.
    periodic: Optional[int] = None
    checked: Dict[Tuple[str, ...], Finiteness] = field(default_factory=dict)
    kept: List[Snapshot] = field(default_factory=list)
    not_kept: Optional[str] = None
    #: ``--hunt``: the hunt from the last finite snapshot, or why none ran.
    hunted: Optional[Hunted] = None
    #: ``--resume``: the watch of the command that resumed the training with the fix.
    resumed: Optional[WatchResult] = None

    @property
    def status(self) -> int:
        """The command's exit status as a shell gives it: 128 + the signal that killed it."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode

    @property
    def exit_status(self) -> int:
        """watch's own: the resumed training's when there is one (the final outcome), else 1
        when a value went non-finite (or watch stopped a blow-up), else the command's when it
        failed, else 1 when its output shows an abort or a crash (a script that went on after
        Caffe died), else 2 when watch saw no value to check (not an all-clear)."""
        if self.resumed is not None:
            return self.resumed.exit_status
        if self.went_bad or self.stopped:
            return EXIT_FINDINGS
        if self.status == 0 and self.seen.abort is not None:
            return EXIT_FINDINGS
        if self.status == 0 and not self.seen.checked:
            return EXIT_ERROR
        return self.status

    @property
    def worth_a_diagnosis(self) -> bool:
        """Whether there is more to say than that it ended well."""
        d = self.diagnosis
        return d is not None and (
            self.went_bad or bool(self.stopped) or bool(self.received) or d.cause != "none"
        )

    @property
    def warnings(self) -> List[str]:
        return [e.message for e in self.events if e.kind == "warning"]

    def summary(self) -> str:
        """One line: how the command ended."""
        command = shlex.join(self.command).replace("\n", "\\n")
        if len(command) > 120:  # a script given inline
            command = command[:117] + "..."
        how = (
            f"was killed by {signal.Signals(-self.returncode).name}"
            if self.returncode < 0
            else f"ended with status {self.returncode}"
        )
        if self.stopped:
            why = "a blow-up" if self.stopped == "blowup" else "the first non-finite value"
            how = f"was stopped by watch at {why} ({how})"
        elif self.went_bad:
            how += " after a value went non-finite"
        elif self.returncode == 0 and self.seen.abort is not None:
            a = self.seen.abort
            how += f", but its output shows an abort (line {a.line}: {a.text.strip()[:160]})"
        elif self.returncode == 0 or not self.seen.checked:
            how += f"; {self.seen.describe()}"
        return f"`{command}` {how}; log: {self.log}"

    def format(self) -> str:
        """The diagnosis (as ``diagnose`` prints it), then the snapshots and the log."""
        lines = [self.diagnosis.format().rstrip("\n")] if self.diagnosis is not None else []
        lines.append(f"watch: {self.summary()}")
        lines += self.snapshot_lines()
        if self.hunted is not None:
            lines += self.hunted.format()
        if self.resumed is not None:
            lines.append("resumed:")
            lines += [f"  {line}" for line in self.resumed.format().rstrip("\n").splitlines()]
        return "\n".join(lines) + "\n"

    def snapshot_lines(self) -> List[str]:
        """Each snapshot Caffe wrote for watch or at its stop (why, and what its check found),
        then the last finite one, each line ``what: ...``."""
        lines = []
        asked = self.asked
        for s in self.requested:
            lines.append(
                f"snapshot: {', '.join(s.files)}: {self._why(s, bool(asked) and s is asked[0])}"
                f"{self._finite(s)}"
            )
        good = self.last_good
        if good is not None:
            resume = (
                f"; resume from it with -snapshot {good.solverstate}" if good.solverstate else ""
            )
            at = f"iteration {good.iteration}, " if good.iteration is not None else ""
            lines.append(
                f"last finite snapshot: {', '.join(good.files)} ({at}line {good.line}, before the first "
                f"non-finite value{self._finite(good, ', ')}){resume}"
            )
        elif self.went_bad:
            why = f"; {self.not_kept}" if self.not_kept else ""
            lines.append(
                f"last finite snapshot: none named in the log before the first non-finite value{why}"
            )
        return lines

    def _finite(self, s: Snapshot, sep: str = "; ") -> str:
        """What the check of ``s``'s files found, where they were checked."""
        found = self.checked.get(s.files)
        if found is None:
            return ""
        if found.finite is None:
            return f"{sep}not checked: {found.detail}"
        return f"{sep}{found.detail}" if found.finite else f"{sep}not finite: {found.detail}"

    def is_periodic(self, s: Snapshot) -> bool:
        """Whether Caffe writes ``s`` by itself: the solver's ``snapshot`` interval divides its
        iteration (where watch asked for one at such an iteration, Caffe wrote only this one)."""
        return bool(self.periodic) and s.iteration is not None and s.iteration % self.periodic == 0

    @property
    def asked(self) -> List[Snapshot]:
        """The snapshots written for watch: after it stopped the run (or passed on a signal),
        the solver's periodic ones left out."""
        return [s for s in self.requested if not self.is_periodic(s)]

    def _why(self, s: Snapshot, first: bool) -> str:
        """What ``s`` is: only the first snapshot watch asked for at its stop is the state
        after the first bad iteration."""
        at = f"iteration {s.iteration}" if s.iteration is not None else "an iteration not named"
        if self.is_periodic(s):
            return f"the solver's periodic snapshot (snapshot: {self.periodic}) of {at}"
        if not self.stopped:
            names = ", ".join(signal.Signals(n).name for n in self.received)
            return f"of {at}, written after watch passed on {names}"
        if self.periodic is None:
            return (
                f"of {at}, written after watch stopped the run (without the solver, watch cannot tell "
                "it from a periodic one)"
            )
        if not first:
            return f"of {at}, written as Caffe stopped"
        seen = "a blow-up" if self.stopped == "blowup" else "the first bad iteration"
        found = self.checked.get(s.files)
        may = "" if found and found.finite is not None else "; its values may be non-finite already"
        return f"the state just after {seen} was seen ({at}{may})"

    def to_dict(self) -> dict:
        plain = jsontext.fields_dict(
            self,
            keys={
                "went_bad": "non_finite",
                "periodic": "snapshot_interval",
                "checked": "finite",
                "hunted": "hunt",
            },
            convert={
                "received": lambda received: [signal.Signals(s).name for s in received],
                "checked": lambda checked: {
                    f: found.finite for files, found in checked.items() for f in files
                },
                "kept": _file_lists,
                "snapshots": _file_lists,
            },
            leave_out={"returncode", "seen", "requested", "last_good", "events"},
        )
        good = self.last_good
        reshaped = {
            "status": self.status,
            "exit_status": self.exit_status,
            "checked": self.seen.checked,
            "displayed": self.seen.displayed,
            "snapshot": [f for s in self.asked for f in s.files],
            "last_good_snapshot": list(good.files) if good is not None else None,
            "last_good_iteration": good.iteration if good is not None else None,
            "warnings": self.warnings,
        }
        record = {**plain, **reshaped}
        return {key: record[key] for key in _JSON_KEYS}

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict())
