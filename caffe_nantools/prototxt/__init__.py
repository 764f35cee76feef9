"""Prototxt files (protobuf text format) read and edited without losing a byte.

``parse`` gives a tree whose ``dump`` is the input again, comments, blank lines and all;
edits change only the lines they insert or remove.
"""

from caffe_nantools.prototxt.syntax import (
    Document,
    Node,
    ParseError,
    Token,
    decode,
    dump,
    iter_tokens,
    parse,
)

__all__ = ["Document", "Node", "ParseError", "Token", "decode", "dump", "iter_tokens", "parse"]
