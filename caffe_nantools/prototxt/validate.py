"""A second opinion from Caffe's own parser (``caffe_pb2`` with protobuf's text_format), where
pycaffe is installed: an edit that Caffe would reject is caught before it is written."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Optional

from caffe_nantools.errors import NanToolsError
from caffe_nantools.pycaffe import CaffeUnavailableError, load_caffe


class CaffeRejectsError(NanToolsError):
    """Caffe's parser does not accept the text (``path: line:col : what``); ``line``, ``col``
    and ``reason`` are the parser's (1 and the whole message where it gives no position)."""

    def __init__(self, path: str, said: str) -> None:
        super().__init__(f"{path}: Caffe's parser rejects it: {said}")
        m = re.match(r"(\d+):(\d+) : (.*)", said, re.DOTALL)
        self.line, self.col = (int(m.group(1)), int(m.group(2))) if m else (1, 1)
        self.reason = m.group(3) if m else said


def caffe_pb2() -> Optional[ModuleType]:
    """Caffe's generated protobuf module, or None where pycaffe is missing."""
    try:
        load_caffe()
        from caffe.proto import caffe_pb2 as module
    except (CaffeUnavailableError, ImportError):
        return None
    return module


def validate(text: str, path: str = "<string>", message: str = "NetParameter") -> bool:
    """Have Caffe's parser read ``text`` as ``message`` (``NetParameter`` or ``SolverParameter``).

    Returns:
        True when Caffe accepts it, False when there is no pycaffe here to ask.

    Raises:
        CaffeRejectsError: Caffe's parser rejects it; the message is Caffe's, with its position.
    """
    module = caffe_pb2()
    if module is None:
        return False
    from google.protobuf import text_format

    try:
        text_format.Parse(text, getattr(module, message)())
    except text_format.ParseError as e:
        raise CaffeRejectsError(path, str(e)) from None
    return True
