"""The exceptions of caffe-nantools: one root, a small class per kind of failure."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from caffe_nantools.jsontext import fields_dict

if TYPE_CHECKING:
    from caffe_nantools.finite import FiniteStats


#: Exit status of every command: done and clean, done and something bad found, could not do it.
EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

#: How a message names one argument: from its name and value (``...`` for the name alone) to
#: the text.
Spelling = Callable[[str, object], str]


def python_spelling(name: str, value: object) -> str:
    """An argument as a caller of the library wrote it: ``workers=0``."""
    return name if value is ... else f"{name}={value!r}"


def literal(text: object) -> str:
    """Text the user gave (a path, a name, another error's message) for a message with
    arguments: its braces are doubled, so that they are never read as an argument's."""
    return str(text).replace("{", "{{").replace("}", "}}")


_PLACE = re.compile(r"\{\{|\}\}|\{(\w+)(:name|=[^{}]*)?\}")


class NanToolsError(Exception):
    """Root of every error caffe-nantools raises on purpose; the CLI prints it as one line.

    A message about the arguments of a library function names them in braces,
    ``NanToolsError("{workers}: must be 1 or more", arguments={"workers": 0})``, with the value
    (``{workers}``), without it (``{workers:name}``) or with another one, a string
    (``{mode=direct}``): ``str()`` spells them as Python does (``workers=0: ...``), and
    :meth:`spelled` as a caller says them (the CLI: ``--workers 0``), so that each interface
    speaks its own terms. In such a message, text the user gave goes through :func:`literal`.
    """

    def __init__(self, message: str = "", *, arguments: Optional[Mapping[str, object]] = None):
        self.template = message
        self.arguments = dict(arguments or {})
        super().__init__(self.spelled(python_spelling))

    def spelled(self, spell: Spelling) -> str:
        """The message with its arguments named by ``spell``."""
        if not self.arguments:
            return self.template

        def place(m: re.Match) -> str:
            name, how = m.group(1), m.group(2)
            if name is None:
                return m.group(0)[0]  # a doubled brace of literal text
            if name not in self.arguments:
                return m.group(0)
            if how is None:
                return spell(name, self.arguments[name])
            return spell(name, ... if how == ":name" else how[1:])

        return _PLACE.sub(place, self.template)


class CheckConfigError(NanToolsError, ValueError):
    """A CheckFiniteLayer ``param_str`` that names an unknown key or gives a bad value."""


#: What :meth:`NonFiniteError.to_dict` writes, in order.
_ERROR_FIELDS = (
    "layer",
    "blob",
    "writer",
    "pass_",
    "phase",
    "iteration",
    "max_abs",
    "lr",
    "by",
    "stats",
    "message",
)


class NonFiniteError(NanToolsError, RuntimeError):
    """A checked blob holds NaN or infinity (or, with ``max_abs``, values beyond it).

    Attributes:
        layer: the check layer's label (``name`` in its param_str); for the guard, the net's
            layer that owns the blob.
        blob: name of the offending blob (the guard's: ``param 0``, ``top loss``).
        writer: for a check, the layer whose output it follows (``writer`` in its param_str);
            None for a check at a net input, one without that key, and the guard.
        pass_: ``"forward"`` (blob data), ``"backward"`` (blob diff) or ``"update"`` (a param's
            data after the solver's update).
        phase: ``"TRAIN"`` or ``"TEST"``.
        iteration: the check layer's own 0-based count of forward passes; the solver's
            iteration for the guard.
        lr: the learning rate of that iteration, where known (the guard).
        by: ``"check"`` (a CheckFiniteLayer) or ``"guard"`` (:mod:`caffe_nantools.guard`).
        stats: the detailed counts (:class:`caffe_nantools.finite.FiniteStats`).
        nan, posinf, neginf, count, bad_samples, n_bad_samples, finite_min, finite_max:
            shortcuts to the same fields of ``stats``.
    """

    def __init__(
        self,
        *,
        layer: str,
        blob: str,
        pass_: str,
        phase: str,
        iteration: int,
        stats: FiniteStats,
        writer: Optional[str] = None,
        max_abs: Optional[float] = None,
        lr: Optional[float] = None,
        by: str = "check",
    ) -> None:
        self.layer = layer
        self.blob = blob
        self.writer = writer
        self.pass_ = pass_
        self.phase = phase
        self.iteration = iteration
        self.stats = stats
        self.max_abs = max_abs
        self.lr = lr
        self.by = by
        super().__init__(self._describe())

    def __getattr__(self, name: str):
        # nan, posinf, count... read through to the stats; only reached for missing attributes.
        stats = self.__dict__.get("stats")
        if stats is not None and name in stats.__dataclass_fields__:
            return getattr(stats, name)
        raise AttributeError(name)

    @property
    def message(self) -> str:
        return str(self)

    def to_dict(self) -> dict:
        """A JSON-ready record of the failure (the ``dump`` report uses it): its fields, the
        stats' among them, and its message."""
        return fields_dict(self, names=_ERROR_FIELDS, keys={"pass_": "pass"}, inline={"stats"})

    @classmethod
    def from_dict(cls, record: dict) -> NonFiniteError:
        """The error back from its :meth:`to_dict` record (hunt's training child sends it as
        JSON); its message is made again from the same fields."""
        from caffe_nantools.finite import FiniteStats

        stats = {name: record[name] for name in FiniteStats.__dataclass_fields__}
        stats["bad_samples"] = tuple(stats["bad_samples"])
        return cls(
            layer=record["layer"],
            blob=record["blob"],
            writer=record.get("writer"),  # missing in the records of older versions
            pass_=record["pass"],
            phase=record["phase"],
            iteration=record["iteration"],
            stats=FiniteStats(**stats),
            max_abs=record["max_abs"],
            lr=record["lr"],
            by=record["by"],
        )

    def _describe(self) -> str:
        s = self.stats
        what = "diff" if self.pass_ == "backward" else "data"
        parts = [s.counts]
        if s.over_max_abs:
            parts.append(f"{s.over_max_abs} finite values beyond max_abs={self.max_abs:g}")
        if s.n_bad_samples:
            shown = ", ".join(str(i) for i in s.bad_samples)
            more = ", ..." if s.n_bad_samples > len(s.bad_samples) else ""
            parts.append(f"bad samples [{shown}{more}] ({s.n_bad_samples} of {s.n_samples})")
        if s.finite_min is None:
            parts.append("no finite values")
        else:
            parts.append(f"finite values in [{s.finite_min:.6g}, {s.finite_max:.6g}]")
        if self.by == "guard":
            rate = f", lr {self.lr:g}" if self.lr is not None else ""
            head = (
                f"guard: layer '{self.layer}' {self.blob} {what} after the {self.pass_} of iteration "
                f"{self.iteration} ({self.phase}{rate})"
            )
        else:
            head = f"check '{self.layer}': blob '{self.blob}' {self.pass_} {what} at iteration {self.iteration} ({self.phase})"
        return head + ": " + "; ".join(parts)
