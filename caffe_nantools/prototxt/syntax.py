"""A lossless tree for protobuf text format as Caffe's prototxt files use it.

No schema is needed. Every byte of the input lives in some token: the token's own text, the
whitespace and comments before it (``pre``, starting at a line break) or the rest of its line
after it (``post``: spaces and a trailing comment). So ``dump(parse(text)) == text`` for every
input that parses, and a node inserted or removed takes exactly its own bytes with it.
"""
from __future__ import annotations

import bisect
import re
from typing import Iterator, List, Optional, Union

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


class Token:
    """One token with the bytes around it that it owns.

    ``kind`` is ``ident``, ``number``, ``string`` or ``symbol``; ``line``/``col`` are 1-based
    positions in the parsed text (for tokens of inserted snippets, in the snippet).
    """

    __slots__ = ("kind", "text", "pre", "post", "line", "col")

    def __init__(self, kind: str, text: str, pre: str, line: int, col: int) -> None:
        self.kind = kind
        self.text = text
        self.pre = pre
        self.post = ""
        self.line = line
        self.col = col

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.text!r}, {self.line}:{self.col})"


_SCANNER = re.compile(
    r"""(?P<trivia>(?:[ \t\r\n\f\v]+|\#[^\n]*)*)
    (?:
        (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>(?:0[xX][0-9A-Fa-f]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?[fF]?
                  |\.[0-9]+(?:[eE][+-]?[0-9]+)?[fF]?)(?![A-Za-z0-9_.]))
      | (?P<string>"(?:[^"\\\n]|\\[^\n])*"|'(?:[^'\\\n]|\\[^\n])*')
      | (?P<symbol>[{}\[\]:,;<>-])
      | (?P<end>\Z)
      | (?P<badnumber>[0-9.][A-Za-z0-9_.+-]*)
      | (?P<badstring>["'][^\n]*)
      | (?P<bad>.)
    )""",
    re.VERBOSE | re.DOTALL,
)

_CLOSE = {"{": "}", "<": ">"}
_SEPARATORS = (",", ";")


def _line_starts(text: str) -> List[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def tokenize(text: str, path: str = "<string>") -> tuple:
    """Split ``text`` into tokens; returns ``(tokens, tail)`` where ``tail`` is the trivia after
    the last token that is not on its line.

    Raises:
        ParseError: a character, number or string that cannot start a token.
    """
    starts = _line_starts(text)
    tokens: List[Token] = []
    prev: Optional[Token] = None
    pos = 0
    while True:
        m = _SCANNER.match(text, pos)
        trivia = m.group("trivia")
        kind = m.lastgroup
        if prev is not None:
            # The rest of the previous token's line belongs to it; the line break starts ours.
            brk = trivia.find("\n")
            if brk < 0:
                brk = len(trivia)
            elif brk > 0 and trivia[brk - 1] == "\r":
                brk -= 1
            prev.post, trivia = trivia[:brk], trivia[brk:]
        if kind == "end":
            return tokens, trivia
        start = m.start(kind)
        line = bisect.bisect_right(starts, start)
        col = start - starts[line - 1] + 1
        if kind not in ("ident", "number", "string", "symbol"):
            what = {
                "badnumber": f"invalid number {m.group(kind)!r}",
                "badstring": "unterminated string (strings end on the same line)",
                "bad": f"unexpected character {m.group(kind)!r}",
            }[kind]
            raise ParseError(what, path, line, col, _source_line(text, starts, line))
        prev = Token(kind, m.group(kind), trivia, line, col)
        tokens.append(prev)
        pos = m.end()


def _source_line(text: str, starts: List[int], line: int) -> str:
    end = text.find("\n", starts[line - 1])
    return text[starts[line - 1] : end if end >= 0 else len(text)].rstrip("\r")


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

    def __init__(self, items: list, is_message: bool, values: Optional[List[List[Token]]] = None) -> None:
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
    def children(self) -> List["Node"]:
        return [item for item in self.items if isinstance(item, Node)]

    def find(self, name: str) -> Optional["Node"]:
        """The first child field called ``name``, or None."""
        for item in self.items:
            if isinstance(item, Node) and item.name == name:
                return item
        return None

    def find_all(self, name: str) -> List["Node"]:
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
        return [decode(v) for node in self.find_all(name) if not node.is_message for v in node.values]

    # --- editing ---------------------------------------------------------------------------
    def insert(self, index: int, node: "Node") -> None:
        """Insert ``node`` as the child at position ``index`` among the children (a negative
        or too large index appends it before the closing brace)."""
        if not self.is_message:
            raise TypeError(f"{self.name} is a scalar field and holds no children")
        separated = self.items[-1].text in _SEPARATORS
        _insert(self, index, node, close_tokens=2 if separated else 1)

    def insert_after(self, ref: "Node", node: "Node") -> None:
        """Insert ``node`` right after the child ``ref`` (and ``ref``'s separator, if any)."""
        at = self.items.index(ref) + 1
        _place(self, at, node)

    def insert_before(self, ref: "Node", node: "Node") -> None:
        _place(self, self.items.index(ref), node)

    def remove(self, node: "Node") -> None:
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
    insert_after = Node.insert_after
    insert_before = Node.insert_before
    remove = Node.remove

    def insert(self, index: int, node: Node) -> None:
        """Insert ``node`` at position ``index`` among the top-level fields (appending when the
        index is negative or too large)."""
        _insert(self, index, node, close_tokens=0)

    def __repr__(self) -> str:
        return f"Document({self.path}, {len(self.items)} fields)"


def _insert(parent, index: int, node: Node, close_tokens: int) -> None:
    children = [i for i, item in enumerate(parent.items) if isinstance(item, Node)]
    _place(parent, children[index] if 0 <= index < len(children) else len(parent.items) - close_tokens, node)


def _place(parent, at: int, node: Node) -> None:
    parent.items.insert(at, node)
    node.parent = parent


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"', "?": "?",
            "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)


def _unescape(body: str) -> str:
    def one(m: "re.Match") -> str:
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
        return "".join(_unescape(t.text[1:-1]) for t in value)
    sign = -1 if first.text == "-" else 1
    token = value[-1]
    if token.kind == "ident":
        return ("-" if sign < 0 else "") + token.text
    text = token.text
    if text[:2] in ("0x", "0X"):
        return sign * int(text, 16)
    if re.fullmatch(r"[0-9]+", text):
        return sign * (int(text, 8) if len(text) > 1 and text[0] == "0" else int(text))
    return sign * float(text.rstrip("fF"))


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.tokens, self.tail = tokenize(text, path)
        self.pos = 0

    def error(self, message: str, token: Optional[Token] = None) -> ParseError:
        if token is None:
            token = self.tokens[self.pos] if self.pos < len(self.tokens) else None
        if token is None:  # at the end: point just past the last token
            lines = self.text.split("\n")
            line, col = len(lines), len(lines[-1].rstrip("\r")) + 1
            source = lines[-1].rstrip("\r")
        else:
            line, col = token.line, token.col
            source = _source_line(self.text, _line_starts(self.text), line)
        return ParseError(message, self.path, line, col, source)

    def peek(self) -> Optional[Token]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def looking_at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind in ("symbol", "ident") and token.text in texts

    def next(self, expected: str) -> Token:
        token = self.peek()
        if token is None:
            raise self.error(f"expected {expected}, found the end of the file")
        self.pos += 1
        return token

    def found(self, token: Token) -> str:
        return f"'{token.text}'" if token.kind != "string" else f"string {token.text}"

    def parse(self) -> Document:
        doc = Document([], self.tail, self.path)
        stack: list = [(doc, None)]  # (node being filled, the closing symbol it waits for)
        while True:
            container, closer = stack[-1]
            token = self.peek()
            if token is None:
                if closer is not None:
                    raise self.error(
                        f"expected '{closer}' to close '{container.name}' opened at "
                        f"{container.line}:{container.col}, found the end of the file"
                    )
                return doc
            if closer is not None and token.kind == "symbol" and token.text == closer:
                container.items.append(self.next(closer))
                if self.looking_at(*_SEPARATORS):
                    container.items.append(self.next("separator"))
                stack.pop()
                continue
            if token.kind != "ident":
                wanted = "a field name" + (f" or '{closer}'" if closer else "")
                raise self.error(f"expected {wanted}, found {self.found(token)}")
            items = [self.next("a field name")]
            if self.looking_at(":"):
                items.append(self.next("':'"))
            if self.looking_at("{", "<"):
                opener = self.next("'{'")
                items.append(opener)
                node = Node(items, is_message=True)
                self._attach(container, node)
                stack.append((node, _CLOSE[opener.text]))
                continue
            if len(items) == 1:
                after = self.peek()
                shown = self.found(after) if after else "the end of the file"
                raise self.error(f"expected ':' or '{{' after field name '{items[0].text}', found {shown}")
            node = Node(items, is_message=False)
            if self.looking_at("["):
                self._list(node)
            else:
                value = self._scalar()
                items.extend(value)
                node.values.append(value)
            if self.looking_at(*_SEPARATORS):
                items.append(self.next("separator"))
            self._attach(container, node)

    def _attach(self, container, node: Node) -> None:
        container.items.append(node)
        node.parent = container

    def _scalar(self) -> List[Token]:
        token = self.next("a value")
        if token.kind == "string":
            value = [token]
            while self.peek() is not None and self.peek().kind == "string":
                value.append(self.next("a string"))
            return value
        if token.kind in ("number", "ident"):
            return [token]
        if token.text == "-":
            after = self.next("a number after '-'")
            if after.kind == "number" or (after.kind == "ident" and after.text.lower() in ("inf", "infinity", "nan")):
                return [token, after]
            raise self.error(f"expected a number after '-', found {self.found(after)}", after)
        raise self.error(f"expected a value, found {self.found(token)}", token)

    def _list(self, node: Node) -> None:
        node.items.append(self.next("'['"))
        if self.looking_at("]"):
            node.items.append(self.next("']'"))
            return
        while True:
            value = self._scalar()
            node.items.extend(value)
            node.values.append(value)
            token = self.next("',' or ']'")
            node.items.append(token)
            if token.text == "]" and token.kind == "symbol":
                return
            if token.text != "," or token.kind != "symbol":
                raise self.error(f"expected ',' or ']' in the list, found {self.found(token)}", token)


def parse(text: str, path: str = "<string>") -> Document:
    """Parse protobuf text format into a lossless tree; ``dump`` gives ``text`` back.

    Raises:
        ParseError: with ``path:line:col`` and what was expected there.
    """
    return _Parser(text, path).parse()


def iter_tokens(root: Union[Document, Node]) -> Iterator[Token]:
    """Every token of a tree or subtree, in print order."""
    stack = [iter(root.items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, Node):
                stack.append(iter(item.items))
                break
            yield item
        else:
            stack.pop()


def dump(root: Union[Document, Node]) -> str:
    """The text of a tree or subtree, byte for byte as parsed plus any edits."""
    parts = []
    for token in iter_tokens(root):
        parts.append(token.pre)
        parts.append(token.text)
        parts.append(token.post)
    if isinstance(root, Document):
        parts.append(root.tail)
    return "".join(parts)
