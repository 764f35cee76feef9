"""Find every bad sample of a Caffe data source (LMDB, LevelDB, HDF5, ImageData list), by key
or row, with what is wrong with it."""

from caffe_nantools.scan.merging import merge_files
from caffe_nantools.scan.report import Finding, ScanReport, Summary, merge_reports
from caffe_nantools.scan.backends import backend_names
from caffe_nantools.scan.scanner import detect_backend, scan
from caffe_nantools.scan.source import ScanError, Source

__all__ = [
    "Finding",
    "ScanError",
    "ScanReport",
    "Source",
    "Summary",
    "backend_names",
    "detect_backend",
    "merge_files",
    "merge_reports",
    "scan",
]
