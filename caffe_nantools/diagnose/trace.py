"""debug_info lines read into records: which pass, layer and blob, and the blob's mean |x|.

Caffe prints, on display iterations with ``debug_info: true``::

    [Forward] Layer conv1, top blob conv1 data: 0.755242
    [Forward] Layer conv1, param blob 0 data: 0.277692
    [Backward] Layer ip1, bottom blob conv1 diff: 0.00451672
    [Backward] Layer ip1, param blob 0 diff: 0.177086
    [Backward] All net params (data, diff): L1 norm = (62.5624, 220.243); L2 norm = (2.6113, 9.04274)

forward in net order, then backward in reverse order, then the norms (an E line).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from caffe_nantools.logs import Span, parse_value

#: A finite mean |x| this large is as good as non-finite: a MAX Pooling window that lies past
#: its input outputs -FLT_MAX (3.4e38), and the next layer turns that into inf.
HUGE = 1e37

_RECORD = re.compile(
    r"\[(Forward|Backward)\] Layer (.*?), (top|bottom|param) blob (.*) (?:data|diff): (\S+)\s*$"
)
_NORMS = re.compile(
    r"\[Backward\] All net params \(data, diff\): L1 norm = \((\S+), (\S+)\); L2 norm = \((\S+), (\S+)\)"
)


def is_bad(value: float) -> bool:
    """Non-finite, or finite but within reach of float32's end."""
    return not math.isfinite(value) or abs(value) >= HUGE


@dataclass(frozen=True)
class Record:
    """One debug_info value.

    ``pass_`` is ``forward`` (data of a top or param blob) or ``backward`` (diff of a bottom or
    param blob); ``kind`` is ``top``, ``bottom`` or ``param``; param blobs are named by index
    unless the net names them.
    """

    line: int
    pass_: str
    layer: str
    kind: str
    blob: str
    value: float

    @property
    def bad(self) -> bool:
        return is_bad(self.value)

    @property
    def what(self) -> str:
        """The blob as a reader would name it: ``top conv1``, ``param 0``."""
        return f"{self.kind} {self.blob}"


@dataclass(frozen=True)
class Norms:
    """The all-params line: L1 and L2 norms of every learnable param's data and diff."""

    line: int
    l1_data: float
    l1_diff: float
    l2_data: float
    l2_diff: float

    @property
    def bad(self) -> bool:
        return any(is_bad(v) for v in (self.l1_data, self.l1_diff, self.l2_data, self.l2_diff))


@dataclass
class Block:
    """The debug_info lines of one displayed training iteration.

    ``iteration`` is that of the solver's loss line that closed the block, or None when the
    log ended (or a run stopped) before it: a crash in mid-iteration.
    """

    iteration: Optional[int]
    records: List[Record]
    norms: List[Norms]
    texts: dict  # line number -> the line's text, for evidence

    def text(self, line: int) -> str:
        return self.texts.get(line, "")


def parse_block(pieces: List[Span], iteration: Optional[int]) -> Block:
    """The records of a block's raw lines; their texts as the log has them, for evidence."""
    records: List[Record] = []
    norms: List[Norms] = []
    texts = {}
    for piece in pieces:
        for number, raw in enumerate(piece.data.decode("utf-8", "replace").split("\n"), piece.line):
            if "] " not in raw:
                continue
            m = _RECORD.search(raw)
            if m is not None:
                value = _number(m.group(5))
                if value is None:
                    continue
                direction, layer, kind, blob = m.group(1, 2, 3, 4)
                records.append(Record(number, direction.lower(), layer, kind, blob, value))
                texts[number] = piece.original(number, raw.rstrip("\r"))
                continue
            values = net_norms(raw)
            if values is not None:
                norms.append(Norms(number, *values))
                texts[number] = piece.original(number, raw.rstrip("\r"))
    return Block(iteration, records, norms, texts)


def net_norms(line: str) -> Optional[Tuple[float, float, float, float]]:
    """The norms of debug_info's ``All net params`` line: L1 of the data and of the diff, L2 of
    the data and of the diff; None for another line, or one whose values are not numbers."""
    m = _NORMS.search(line)
    if m is None:
        return None
    values = [_number(v) for v in m.groups()]
    return None if None in values else tuple(values)


def _number(text: str) -> Optional[float]:
    try:
        return parse_value(text)
    except ValueError:
        return None
