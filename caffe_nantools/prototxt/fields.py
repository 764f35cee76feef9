"""Field types of Caffe's schema, for reading values as Caffe's parser reads them.

``node.field("stride", POSITIVE, 1)`` gives an int, or raises a :class:`FieldError` placed at the
value (``net.prototxt:12:13: field stride: expected an integer from 1 to 4294967295, got 0``), as
Caffe's own parser or layer set-up would refuse it. Readers of nets and solvers take their values
through these kinds, so an odd value is one positioned line, never a TypeError deep inside.
"""

from __future__ import annotations

from typing import Any, List, Optional

from caffe_nantools.prototxt.syntax import Node, ParseError, Token, decode, shown


class FieldError(ParseError):
    """A field whose value is not of the type Caffe's schema gives it (or is out of its range)."""


class Kind:
    """One field type: :meth:`read` converts a value or raises a FieldError naming ``what``."""

    what = "a value"

    def convert(self, value: Any, tokens: List[Token]) -> Any:
        """The converted value, or None when ``value`` is not of this kind."""
        raise NotImplementedError

    def read(self, node: Node, tokens: Optional[List[Token]]) -> Any:
        """The value ``tokens`` of field ``node`` converted (None: the field is a block)."""
        if tokens is None:
            raise _error(
                node.items[0], f"field {node.name}: expected {self.what}, got a {{ }} block"
            )
        value = self.convert(decode(tokens), tokens)
        if value is None:
            raise _error(
                tokens[0],
                f"field {node.name}: expected {self.what}, got {shown(''.join(t.text for t in tokens))}",
            )
        return value


def _error(token: Token, message: str) -> FieldError:
    e = token.error(message)
    return FieldError(e.message, e.path, e.line, e.col, e.source_line)


class Integer(Kind):
    """A protobuf integer type, optionally with a higher minimum (as Caffe's CHECK_GT(stride, 0))."""

    def __init__(self, bits: int, signed: bool, minimum: Optional[int] = None) -> None:
        self.high = (1 << (bits - 1 if signed else bits)) - 1
        self.low = minimum if minimum is not None else -(1 << (bits - 1)) if signed else 0
        self.what = f"an integer from {self.low} to {self.high}"

    def convert(self, value: Any, tokens: List[Token]) -> Optional[int]:
        if (
            isinstance(value, int)
            and tokens[-1].kind == "number"
            and self.low <= value <= self.high
        ):
            return value
        return None


class Number(Kind):
    """``float``/``double``: any number, and inf/nan written as names."""

    what = "a number"
    _NAMES = {"inf": float("inf"), "infinity": float("inf"), "nan": float("nan")}

    def convert(self, value: Any, tokens: List[Token]) -> Optional[float]:
        kind = tokens[-1].kind
        if kind == "number":
            return float(value)
        if kind == "ident":
            number = self._NAMES.get(tokens[-1].text.lower())
            return None if number is None else (-number if tokens[0].text == "-" else number)
        return None


class Boolean(Kind):
    what = "true or false"
    _VALUES = {
        "true": True,
        "True": True,
        "t": True,
        "1": True,
        "false": False,
        "False": False,
        "f": False,
        "0": False,
    }

    def convert(self, value: Any, tokens: List[Token]) -> Optional[bool]:
        return (
            self._VALUES.get(tokens[0].text)
            if len(tokens) == 1 and tokens[0].kind != "string"
            else None
        )


class Enum(Kind):
    """An enum: one of its names, or its number (the names are numbered from 0 in Caffe's enums)."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.what = "one of " + ", ".join(names)

    def convert(self, value: Any, tokens: List[Token]) -> Optional[str]:
        kind = tokens[-1].kind
        if kind == "ident" and len(tokens) == 1:
            return value if value in self.names else None
        if kind == "number" and isinstance(value, int) and 0 <= value < len(self.names):
            return self.names[value]
        return None


class Text(Kind):
    what = "a quoted string"

    def convert(self, value: Any, tokens: List[Token]) -> Optional[str]:
        return value if tokens[0].kind == "string" else None


INT32, UINT32, INT64 = Integer(32, True), Integer(32, False), Integer(64, True)
#: Kernel sizes, strides and dilations: Caffe's layers refuse 0 at set-up.
POSITIVE = Integer(32, False, minimum=1)
FLOAT, BOOL, STRING = Number(), Boolean(), Text()
PHASE = Enum("TRAIN", "TEST")

__all__ = [
    "BOOL",
    "Enum",
    "FLOAT",
    "FieldError",
    "INT32",
    "INT64",
    "Integer",
    "Kind",
    "Number",
    "PHASE",
    "POSITIVE",
    "STRING",
    "Text",
    "UINT32",
]
