"""A second opinion from Caffe's own parser (``caffe_pb2`` with protobuf's text_format), where
pycaffe is installed: an edit that Caffe would reject is caught before it is written."""
from __future__ import annotations

from types import ModuleType
from typing import Optional

from caffe_nantools.pycaffe import CaffeUnavailableError, load_caffe


def caffe_pb2() -> Optional[ModuleType]:
    """Caffe's generated protobuf module, or None where pycaffe is missing."""
    try:
        load_caffe()
        from caffe.proto import caffe_pb2 as module
    except (CaffeUnavailableError, ImportError):
        return None
    return module


def caffe_rejects(text: str, message: str = "NetParameter") -> Optional[str]:
    """What Caffe's parser says is wrong with ``text`` read as ``message`` (``NetParameter`` or
    ``SolverParameter``), or None when it accepts it.

    Raises:
        CaffeUnavailableError: no pycaffe here.
    """
    module = caffe_pb2()
    if module is None:
        raise CaffeUnavailableError("validating against Caffe's schema needs pycaffe")
    from google.protobuf import text_format

    try:
        text_format.Parse(text, getattr(module, message)())
    except text_format.ParseError as e:
        return str(e)
    return None
