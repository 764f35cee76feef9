"""Caffe's training logs (glog format) read as a stream of events, and the tables made of them.

``read_log`` gives a log's chunks (``Lines``, ``Displays``, ``Marked`` lines, with their
``Span``s, and the second pass's crash ``Finding``s and ``Candidates`` for a non-finite value)
for a structured reading such as diagnose's; ``LogStream`` does the same for a log that is still
being written (watch), and ``sweep_lines``/``sweep_chunk`` the pass that finds a non-finite value
or a crash in a line of any layout. The rest of the package imports these names
from here, not from the modules below (``tests/test_package_imports.py``).
"""

from caffe_nantools.logs.chunks import Displays, Lines, LogStream, Marked, Span, read_log
from caffe_nantools.logs.glog import GlogLine, holds_known_message, parse_line, parse_value
from caffe_nantools.logs.events import Event, parse_event, read_events
from caffe_nantools.logs.opening import NotALogError, not_a_log, open_log
from caffe_nantools.logs.plain import LOSS, RATE
from caffe_nantools.logs.sweep import (
    Candidates,
    Finding,
    may_be_nonfinite,
    sweep_chunk,
    sweep_lines,
)
from caffe_nantools.logs.tables import Tables, log2csv, tables_from_events

__all__ = [
    "Candidates",
    "LOSS",
    "RATE",
    "Displays",
    "Event",
    "Finding",
    "GlogLine",
    "Lines",
    "LogStream",
    "Marked",
    "NotALogError",
    "Span",
    "Tables",
    "holds_known_message",
    "log2csv",
    "not_a_log",
    "open_log",
    "parse_event",
    "parse_line",
    "parse_value",
    "read_events",
    "read_log",
    "sweep_chunk",
    "may_be_nonfinite",
    "sweep_lines",
    "tables_from_events",
]
