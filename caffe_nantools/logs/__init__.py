"""Caffe's training logs (glog format) read as a stream of events, and the tables made of them."""

from caffe_nantools.logs.glog import GlogLine, parse_line, parse_value
from caffe_nantools.logs.events import Event, read_events
from caffe_nantools.logs.tables import Tables, log2csv, tables_from_events

__all__ = [
    "Event",
    "GlogLine",
    "Tables",
    "log2csv",
    "parse_line",
    "parse_value",
    "read_events",
    "tables_from_events",
]
