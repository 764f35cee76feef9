"""The house style of a prototxt file, so inserted lines look like their neighbours."""

from __future__ import annotations

import re
from dataclasses import dataclass

from caffe_nantools.prototxt.syntax import Document, Node, Token, iter_tokens


@dataclass(frozen=True)
class Style:
    """Line break, one level of indentation, and the usual string quote of a file."""

    newline: str = "\n"
    indent: str = "  "
    quote: str = '"'

    @classmethod
    def of(cls, doc: Document, text: str) -> Style:
        newline = "\r\n" if "\r\n" in text else "\n"
        indent = "  "
        for node in doc.children:
            if node.is_message and node.children:
                outer, inner = indentation(node), indentation(node.children[0])
                if (
                    inner.startswith(outer)
                    and len(inner) > len(outer)
                    and node.children[0].items[0].pre.find("\n") >= 0
                ):
                    indent = inner[len(outer) :]
                    break
        quotes = [t.text[0] for t in iter_tokens(doc) if t.kind == "string"]
        quote = "'" if quotes.count("'") > quotes.count('"') else '"'
        return cls(newline, indent, quote)

    def block(self, snippet: str, base: str) -> str:
        """``snippet`` (two-space indented, double quotes, ``\\n``) in this style, each line
        prefixed with ``base``, and starting with a line break."""
        lines = []
        for line in snippet.rstrip("\n").split("\n"):
            stripped = line.lstrip(" ")
            levels = (len(line) - len(stripped)) // 2
            if self.quote == "'":
                stripped = re.sub(r'"([^"\'\\]*)"', r"'\1'", stripped)
            lines.append(base + self.indent * levels + stripped)
        return self.newline + self.newline.join(lines)


def indentation(node: Node) -> str:
    """The whitespace that starts the line of ``node`` (empty if it does not start a line)."""
    first: Token = node.items[0]
    brk = first.pre.rfind("\n")
    return first.pre[brk + 1 :] if brk >= 0 else ""
