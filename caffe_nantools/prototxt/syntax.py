"""A lossless tree for protobuf text format as Caffe's prototxt files use it.

No schema is needed. Every byte of the input lives in some token: the token's own text, the
whitespace and comments before it (``pre``, starting at a line break) or the rest of its line
after it (``post``: spaces and a trailing comment). So ``dump(parse(text)) == text`` for every
input that parses, and a node inserted or removed takes exactly its own bytes with it.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import re
from typing import Dict, Iterator, List, Optional, Tuple, Union

from caffe_nantools.errors import NanToolsError


class ParseError(NanToolsError, ValueError):
    """Text that is not protobuf text format. ``str()`` is ``path:line:col: message``.

    Attributes:
        path, line, col: where (1-based line and column).
        message: what was found and what was expected.
        source_line: the text of that line, for showing with a caret.
    """

    def __init__(self, message: str, path: str, line: int, col: int, source_line: str = "") -> None:
        self.message = message
        self.path = path
        self.line = line
        self.col = col
        self.source_line = source_line
        super().__init__(f"{path}:{line}:{col}: {message}")

    def context(self) -> str:
        """The offending line and a caret under the column."""
        return f"{self.source_line}\n{' ' * (self.col - 1)}^"


class Source:
    """The text that tokens came from; turns their offsets into lines and columns on demand
    (parsing itself never needs them)."""

    __slots__ = ("text", "path", "_starts")

    def __init__(self, text: str, path: str = "<string>") -> None:
        self.text = text
        self.path = path
        self._starts: Optional[List[int]] = None

    def position(self, offset: int) -> Tuple[int, int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1].rstrip("\r") if line <= len(lines) else ""


class Token:
    """One token with the bytes around it that it owns.

    ``kind`` is ``ident``, ``number``, ``string`` or ``symbol``; ``line``/``col`` are 1-based
    positions in the parsed text (for tokens of inserted snippets, in the snippet).
    """

    __slots__ = ("kind", "text", "pre", "post", "offset", "source")

    def __init__(self, kind: str, text: str, pre: str, offset: int, source: Source) -> None:
        self.kind = kind
        self.text = text
        self.pre = pre
        self.post = ""
        self.offset = offset
        self.source = source

    @property
    def line(self) -> int:
        return self.source.position(self.offset)[0]

    @property
    def col(self) -> int:
        return self.source.position(self.offset)[1]

    def error(self, message: str) -> ParseError:
        """A ParseError placed at this token."""
        line, col = self.source.position(self.offset)
        return ParseError(message, self.source.path, line, col, self.source.line_text(line))

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r}, {self.line}:{self.col})"


# Each match is (trivia, token, bad): whitespace and comments, then a token, or text that
# cannot start one; both empty at the end. Matches follow each other without gaps. A UTF-8
# byte-order mark (Windows editors write one) counts as whitespace.
_TOKENS = re.compile(
    r"""((?:[ \t\r\n\f\v\ufeff]+|\#[^\n]*)*)
    (?:
        ( [A-Za-z_][A-Za-z0-9_]*
        | (?:0[xX][0-9A-Fa-f]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?[fF]?
            |\.[0-9]+(?:[eE][+-]?[0-9]+)?[fF]?)(?![A-Za-z0-9_.])
        | "(?:[^"\\\n]|\\[^\n])*" | '(?:[^'\\\n]|\\[^\n])*'
        | [{}\[\]:,;<>-] )
      | ( [0-9.][A-Za-z0-9_.+-]* | ["'][^\n]* | . )
      | \Z
    )""",
    re.VERBOSE | re.DOTALL,
)
_KIND = {c: "ident" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"}
_KIND.update({c: "number" for c in "0123456789."})
_KIND.update({'"': "string", "'": "string"})

_CLOSE = {"{": "}", "<": ">"}
_SEPARATORS = (",", ";")


def tokenize(text: str, path: str = "<string>") -> Tuple[List[Token], str]:
    """Split ``text`` into tokens; returns ``(tokens, tail)`` where ``tail`` is the trivia after
    the last token that is not on its line.

    Raises:
        ParseError: a character, number or string that cannot start a token.
    """
    source = Source(text, path)
    tokens: List[Token] = []
    append = tokens.append
    kinds = _KIND
    prev: Optional[Token] = None
    offset = 0
    for trivia, good, bad in _TOKENS.findall(text):
        start = offset + len(trivia)
        if prev is not None and trivia:
            # The rest of the previous token's line belongs to it; the line break starts ours.
            brk = trivia.find("\n")
            if brk < 0:
                prev.post, trivia = trivia, ""
            elif brk:
                if trivia[brk - 1] == "\r":
                    brk -= 1
                prev.post, trivia = trivia[:brk], trivia[brk:]
        if not good:
            if bad:
                line, col = source.position(start)
                if bad[0] in "\"'":
                    what = "unterminated string (strings end on the same line)"
                elif bad[0] in "0123456789.":
                    what = f"invalid number '{shown(bad)}'"
                else:
                    what = f"unexpected character {bad!r}"
                raise ParseError(what, path, line, col, source.line_text(line))
            return tokens, trivia
        prev = Token(kinds.get(good[0], "symbol"), good, trivia, start, source)
        append(prev)
        offset = start + len(good)
    return tokens, ""


def shown(text: str, limit: int = 32) -> str:
    """Source text for a one-line message, cut short when long (a number of 5,000 digits)."""
    return text if len(text) <= limit else f"{text[: limit - 8]}... ({len(text)} characters)"


class Node:
    """A field: ``name: value`` (scalar) or ``name { ... }`` (message).

    Attributes:
        items: the tokens and child nodes in print order, e.g. for a message
            ``[name, ":"?, "{", child..., "}", separator?]``.
        values: for a scalar field, one token list per value (``[1, 2]`` has two; a value
            is several tokens for ``- inf`` or adjacent strings).
        parent: the enclosing Node or Document.
    """

    __slots__ = ("items", "values", "is_message", "parent")

    def __init__(
        self, items: list, is_message: bool, values: Optional[List[List[Token]]] = None
    ) -> None:
        self.items = items
        self.is_message = is_message
        self.values = values or []
        self.parent: Union[Node, Document, None] = None

    # --- reading ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.items[0].text

    @property
    def line(self) -> int:
        return self.items[0].line

    @property
    def col(self) -> int:
        return self.items[0].col

    @property
    def children(self) -> List[Node]:
        return [item for item in self.items if isinstance(item, Node)]

    def find(self, name: str) -> Optional[Node]:
        """The first child field called ``name``, or None."""
        for item in self.items:
            if isinstance(item, Node) and item.name == name:
                return item
        return None

    def find_all(self, name: str) -> List[Node]:
        return [item for item in self.items if isinstance(item, Node) and item.name == name]

    @property
    def raw_values(self) -> List[str]:
        """The values' source text (strings still quoted)."""
        return ["".join(t.text for t in value) for value in self.values]

    @property
    def value(self):
        """The decoded value of a scalar field (its first, for list syntax): ``str`` for strings
        and identifiers (enums, true/false, inf/nan), ``int`` or ``float`` for numbers."""
        return decode(self.values[0]) if self.values else None

    def get(self, name: str, default=None):
        """The decoded value of the first scalar child called ``name``."""
        for node in self.find_all(name):
            if not node.is_message:
                return node.value
        return default

    def get_all(self, name: str) -> list:
        """All decoded values of the scalar children called ``name``, in order (a repeated
        field may be written as several fields, as ``name: [a, b]``, or both)."""
        return [
            decode(v) for node in self.find_all(name) if not node.is_message for v in node.values
        ]

    def typed(self, kind):
        """This field's (first) value read as ``kind``, a type of :mod:`caffe_nantools.prototxt.fields`
        (None for an empty list).

        Raises:
            FieldError: the value is not of that type (a ParseError placed at the value).
        """
        if self.is_message:
            return kind.read(self, None)
        return kind.read(self, self.values[0]) if self.values else None

    def field(self, name: str, kind, default=None):
        """The first child called ``name`` read as ``kind`` (see :meth:`typed`), or ``default``."""
        node = self.find(name)
        value = node.typed(kind) if node is not None else None
        return default if value is None else value

    def fields(self, name: str, kind) -> list:
        """Every value of the children called ``name`` read as ``kind``, in order."""
        return [
            kind.read(node, v)
            for node in self.find_all(name)
            for v in (node.values if not node.is_message else [None])
        ]

    # --- editing ---------------------------------------------------------------------------
    def insert(self, index: int, node: Node) -> None:
        """Insert ``node`` as the child at position ``index`` among the children (a negative
        or too large index appends it before the closing brace)."""
        if not self.is_message:
            raise TypeError(f"{self.name} is a scalar field and holds no children")
        separated = self.items[-1].text in _SEPARATORS
        _insert(self, index, node, close_tokens=2 if separated else 1)

    def insert_after(self, ref: Node, node: Node) -> None:
        """Insert ``node`` right after the child ``ref`` (and ``ref``'s separator, if any)."""
        at = self.items.index(ref) + 1
        _place(self, at, node)

    def splice(self, after: Dict[int, List[Node]], before: Dict[int, List[Node]]) -> None:
        """Insert many nodes in one pass: ``after[id(child)]`` go right after that child (and
        its separator), ``before[id(child)]`` right before it, each list in its order."""
        items: list = []
        for item in self.items:
            key = id(item)
            for node in before.get(key, ()):
                node.parent = self
                items.append(node)
            items.append(item)
            for node in after.get(key, ()):
                node.parent = self
                items.append(node)
        self.items = items

    def remove(self, node: Node) -> None:
        self.items.remove(node)
        node.parent = None

    def __repr__(self) -> str:
        kind = "message" if self.is_message else f"= {' '.join(self.raw_values)}"
        return f"Node({self.name} {kind} at {self.line}:{self.col})"


class Document:
    """A whole file: its top-level fields, and the trailing whitespace and comments."""

    def __init__(self, items: List[Node], tail: str, path: str = "<string>") -> None:
        self.items: List[Union[Node, Token]] = items
        self.tail = tail
        self.path = path
        for node in items:
            node.parent = self

    children = Node.children
    find = Node.find
    find_all = Node.find_all
    get = Node.get
    get_all = Node.get_all
    field = Node.field
    fields = Node.fields
    insert_after = Node.insert_after
    splice = Node.splice
    remove = Node.remove

    def insert(self, index: int, node: Node) -> None:
        """Insert ``node`` at position ``index`` among the top-level fields (appending when the
        index is negative or too large)."""
        _insert(self, index, node, close_tokens=0)

    def __repr__(self) -> str:
        return f"Document({self.path}, {len(self.items)} fields)"


def _insert(parent, index: int, node: Node, close_tokens: int) -> None:
    children = [i for i, item in enumerate(parent.items) if isinstance(item, Node)]
    _place(
        parent,
        children[index] if 0 <= index < len(children) else len(parent.items) - close_tokens,
        node,
    )


def _place(parent, at: int, node: Node) -> None:
    parent.items.insert(at, node)
    node.parent = parent


_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)


def _unescape(body: str) -> str:
    def one(m: re.Match) -> str:
        octal, hexa, char = m.groups()
        if octal:
            return chr(int(octal, 8))
        if hexa:
            return chr(int(hexa, 16))
        return _ESCAPES.get(char, char)

    return _ESCAPE.sub(one, body) if "\\" in body else body


def decode(value: List[Token]):
    """Decode one value's tokens: see :attr:`Node.value`."""
    first = value[0]
    if first.kind == "string":
        if len(value) == 1 and "\\" not in first.text:
            return first.text[1:-1]
        return "".join(_unescape(t.text[1:-1]) for t in value)
    sign = -1 if first.text == "-" else 1
    token = value[-1]
    if token.kind == "ident":
        return ("-" if sign < 0 else "") + token.text
    text = token.text
    if text[:2] in ("0x", "0X"):
        return sign * int(text, 16)
    if _INTEGER.fullmatch(text):
        if len(text) > 1 and text[0] == "0":
            if not _OCTAL.fullmatch(text):
                raise token.error(
                    f"invalid number {text!r}: a leading 0 makes it octal (digits 0-7)"
                )
            return sign * int(text, 8)
        if len(text) <= MAX_INTEGER_DIGITS:
            return sign * int(text)
        # Longer than any protobuf integer (Python >= 3.11 also refuses to convert it): read it
        # as a float field would; typed integer fields say it is out of range.
    return sign * float(text.rstrip("fF"))


_INTEGER = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"0[0-7]*")
#: Digits of the largest protobuf integer (2**64 - 1).
MAX_INTEGER_DIGITS = 20


class _Parser:
    """Builds the tree with an explicit stack (no recursion limit on nesting). The loops are
    written out by hand over an index: this is the hot path of every command that reads a
    prototxt, and a tokenizer object with a method call per token (protobuf's text_format
    style) measured 9% slower overall."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.tokens, self.tail = tokenize(text, path)
        # An end mark after the last token, so that looking one token ahead never needs a bounds
        # check: its empty text matches no symbol and its kind no value.
        self.tokens.append(Token("end", "", "", len(text), Source(text, path)))

    def expected(self, what: str, at: int) -> ParseError:
        """``expected <what>, found <the token at index at>``, placed at that token."""
        token = self.tokens[at]
        if token.kind == "end":
            lines = self.text.split("\n")  # point just past the last character
            source = lines[-1].rstrip("\r")
            message = f"expected {what}, found the end of the file"
            return ParseError(message, self.path, len(lines), len(source) + 1, source)
        found = f"string {token.text}" if token.kind == "string" else f"'{token.text}'"
        return token.error(f"expected {what}, found {found}")

    def parse(self) -> Document:
        tokens = self.tokens
        n = len(tokens) - 1
        doc = Document([], self.tail, self.path)
        stack: list = []
        container, closer = doc, None  # the node being filled, and the symbol that closes it
        i = 0
        while i < n:
            token = tokens[i]
            text = token.text
            if text == closer:  # symbols never equal an ident, number or quoted string
                container.items.append(token)
                i += 1
                if tokens[i].text in _SEPARATORS:
                    container.items.append(tokens[i])
                    i += 1
                container, closer = stack.pop()
                continue
            if token.kind != "ident":
                raise self.expected("a field name" + (f" or '{closer}'" if closer else ""), i)
            items = [token]
            i += 1
            after = tokens[i].text
            if after == ":":
                items.append(tokens[i])
                i += 1
                after = tokens[i].text
            if after == "{" or after == "<":
                items.append(tokens[i])
                i += 1
                node = Node(items, True)
                node.parent = container
                container.items.append(node)
                stack.append((container, closer))
                container, closer = node, _CLOSE[after]
                continue
            if len(items) == 1:
                raise self.expected(f"':' or '{{' after field name '{text}'", i)
            node = Node(items, False)
            i = self._list(node, i) if after == "[" else self._scalar(node, i)
            if tokens[i].text in _SEPARATORS:
                items.append(tokens[i])
                i += 1
            node.parent = container
            container.items.append(node)
        if closer is not None:
            raise self.expected(
                f"'{closer}' to close '{container.name}' opened at {container.line}:{container.col}",
                n,
            )
        return doc

    def _scalar(self, node: Node, i: int) -> int:
        """Read one value at ``i`` into ``node``; returns the index after it."""
        tokens = self.tokens
        token = tokens[i]
        kind = token.kind
        if kind == "string":
            j = i + 1
            while tokens[j].kind == "string":
                j += 1
            value = tokens[i:j]
        elif kind == "number" or kind == "ident":
            value, j = [token], i + 1
        elif token.text == "-":
            after = tokens[i + 1]
            if not (
                after.kind == "number"
                or (after.kind == "ident" and after.text.lower() in ("inf", "infinity", "nan"))
            ):
                raise self.expected("a number after '-'", i + 1)
            value, j = [token, after], i + 2
        else:
            raise self.expected("a value", i)
        node.items.extend(value)
        node.values.append(value)
        return j

    def _list(self, node: Node, i: int) -> int:
        """Read ``[a, b, ...]`` starting at ``i`` (the '[') into ``node``."""
        tokens = self.tokens
        node.items.append(tokens[i])
        i += 1
        if tokens[i].text == "]":
            node.items.append(tokens[i])
            return i + 1
        while True:
            i = self._scalar(node, i)
            token = tokens[i]
            if token.kind == "end":
                raise self.expected("',' or ']'", i)
            node.items.append(token)
            if token.text == "]":
                return i + 1
            if token.text != ",":
                raise self.expected("',' or ']' in the list", i)
            i += 1


def parse(text: str, path: str = "<string>") -> Document:
    """Parse protobuf text format into a lossless tree; ``dump`` gives ``text`` back.

    Raises:
        ParseError: with ``path:line:col`` and what was expected there.
    """
    with collector_paused():
        return _Parser(text, path).parse()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a tree is built or edited: it is many small objects
    made at once, among which the collector finds nothing to free but which it would walk over
    and over while they are made (quadratic time on large nets)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def iter_tokens(root: Union[Document, Node]) -> Iterator[Token]:
    """Every token of a tree or subtree, in print order."""
    stack = [iter(root.items)]
    while stack:
        for item in stack[-1]:
            if type(item) is Node:  # a Token otherwise: trees hold no subclasses
                stack.append(iter(item.items))
                break
            yield item
        else:
            stack.pop()


def dump(root: Union[Document, Node]) -> str:
    """The text of a tree or subtree, byte for byte as parsed plus any edits."""
    parts: List[str] = []
    for token in iter_tokens(root):
        parts += (token.pre, token.text, token.post)
    if isinstance(root, Document):
        parts.append(root.tail)
    return "".join(parts)
