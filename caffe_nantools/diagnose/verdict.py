"""The one verdict that diagnose and hunt give: the cause, where it showed and began, the records
blamed, the evidence and the advice.

One :func:`~caffe_nantools.diagnose.judge` makes it from the evidence gathered first (a log's
run for diagnose; for hunt the checked training besides, with the scan, lint and the records
the failing batch read), and nothing changes it afterwards. A fix is no part of it: hunt tries
one for the verdict and keeps it beside the verdict in its report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional

from caffe_nantools.cause import Cause
from caffe_nantools.diagnose.blame import Blame
from caffe_nantools.diagnose.reading import Evidence
from caffe_nantools.jsontext import fields_dict

if TYPE_CHECKING:
    from caffe_nantools.scan.contracts import Breach

#: At most this many of the scan's bad records go into a verdict (the scan report has them all).
MAX_SCANNED = 100


@dataclass(frozen=True)
class RecordRef:
    """A record of a data source: its key, and its place where it is known (0-based)."""

    source: str
    key: str
    index: Optional[int] = None

    def to_dict(self) -> dict:
        """``source`` and ``key``; ``index`` as text where it is known, as hunt's JSON gives it."""
        out = {"source": self.source, "key": self.key}
        return out if self.index is None else {**out, "index": str(self.index)}


@dataclass(frozen=True)
class FirstNonfinite:
    """Where the first non-finite value showed in the log (:class:`Blame` says where the trouble
    began).

    ``pass_`` is ``forward``, ``backward`` or ``update`` for a trace record, ``lr`` for the rate,
    ``loss`` for a loss line, ``test`` for a TEST net output; ``iteration``, ``layer``, ``blob``
    and ``line`` are None where the log does not tell them.
    """

    iteration: Optional[int]
    pass_: str
    layer: Optional[str]
    blob: Optional[str]
    line: Optional[int]

    def to_dict(self) -> dict:
        return fields_dict(self, keys={"pass_": "pass"})


@dataclass
class Verdict:
    """Where and why. A verdict from a log alone says where the value showed in ``first`` and
    quotes the log in ``lines``; one from hunt's checked training names the place (``layer`` to
    ``phase``), the records that reached the net (``record`` first, for ``bad_input``) and says
    its evidence in sentences (``evidence``)."""

    cause: Cause
    layer: Optional[str] = None
    blob: Optional[str] = None
    pass_: Optional[str] = None
    iteration: Optional[int] = None
    phase: Optional[str] = None
    origin: Optional[Blame] = None  # where the trouble began, by the trace
    record: Optional[RecordRef] = None
    records: List[RecordRef] = field(default_factory=list)
    evidence: List[str] = field(default_factory=list)
    advice: List[str] = field(default_factory=list)
    #: A source's systematic breach of a loss or metric layer's contract, for ``bad_input``.
    breach: Optional[Breach] = None
    first: Optional[FirstNonfinite] = None
    #: The log's lines that show it, in the log's order.
    lines: List[Evidence] = field(default_factory=list)
    summary: List[str] = field(default_factory=list)  # what happened, a sentence a line
    warnings: List[str] = field(default_factory=list)  # not non-finite, but a sign of trouble
    #: Settings the advice gives numbers for: base_lr, clip_gradients.
    suggested: Dict[str, float] = field(default_factory=dict)

    def where(self) -> str:
        """Where it went wrong, in words: ``layer loss, pass forward, iteration 3``."""
        places = (
            ("layer", self.layer),
            ("blob", self.blob),
            ("pass", self.pass_),
            ("iteration", self.iteration),
            ("phase", self.phase),
        )
        return ", ".join(f"{name} {value}" for name, value in places if value is not None)

    def to_dict(self) -> dict:
        """hunt's JSON of it (diagnose's report gives the log's part in its own keys)."""
        return fields_dict(
            self,
            keys={"pass_": "pass"},
            convert={"records": lambda records: [r.to_dict() for r in records]},
            leave_out=LOG_ONLY,
        )


#: The fields that diagnose's report gives in its own keys (``first_nonfinite``, ...).
LOG_ONLY = ("first", "lines", "summary", "warnings", "suggested")
