"""Prototxt files (protobuf text format) read and edited without losing a byte.

``parse`` gives a tree whose ``dump`` is the input again, comments, blank lines and all;
edits change only the lines they insert or remove. ``Net`` is a net read from such a tree (its
layers, their phases and blobs); the field kinds (``FLOAT``, ``STRING``...) read a field's
value as Caffe would. The rest of the package imports these names from here, not from the
modules below (``tests/test_package_imports.py``); those import only one another and
:mod:`caffe_nantools.errors` and :mod:`caffe_nantools.pycaffe`, so this front imports nothing
that imports it back.
"""

from caffe_nantools.prototxt.edits import (
    EditError,
    add_field,
    added_line,
    change_value,
    following_sibling,
    is_added,
    set_param,
    undo,
)
from caffe_nantools.prototxt.fields import (
    BOOL,
    FLOAT,
    INT32,
    INT64,
    PHASE,
    POSITIVE,
    STRING,
    UINT32,
    Enum,
    FieldError,
    Kind,
)
from caffe_nantools.prototxt.net import (
    NET_FILES,
    PHASES,
    SOURCE_PARAMS,
    Layer,
    Net,
    NetError,
    NetState,
    Rule,
    inline_nets,
    rules_of_any,
)
from caffe_nantools.prototxt.style import Style, indentation
from caffe_nantools.prototxt.syntax import (
    Document,
    Node,
    ParseError,
    Token,
    collector_paused,
    decode,
    dump,
    iter_tokens,
    parse,
)
from caffe_nantools.prototxt.upgrade import UpgradeError, upgrade_v1
from caffe_nantools.prototxt.validate import CaffeRejectsError, caffe_pb2, validate

__all__ = [
    "set_param",
    "BOOL",
    "FLOAT",
    "INT32",
    "INT64",
    "NET_FILES",
    "PHASE",
    "PHASES",
    "POSITIVE",
    "SOURCE_PARAMS",
    "STRING",
    "UINT32",
    "CaffeRejectsError",
    "Document",
    "EditError",
    "Enum",
    "FieldError",
    "Kind",
    "Layer",
    "Net",
    "NetError",
    "NetState",
    "Node",
    "ParseError",
    "Rule",
    "Style",
    "Token",
    "UpgradeError",
    "add_field",
    "added_line",
    "change_value",
    "collector_paused",
    "decode",
    "caffe_pb2",
    "dump",
    "following_sibling",
    "indentation",
    "inline_nets",
    "is_added",
    "iter_tokens",
    "parse",
    "rules_of_any",
    "undo",
    "upgrade_v1",
    "validate",
]
