"""Edits that remember themselves, so they can be undone byte for byte.

An added field or block carries ``# added by caffe-nantools`` on its first line; a changed value
carries ``# changed by caffe-nantools, was: <old text>`` at the end of its line. ``undo`` finds
both and restores the text as it was before.
"""
from __future__ import annotations

import re
from typing import List, Optional, Union

from caffe_nantools.errors import NanToolsError
from caffe_nantools.prototxt.style import Style, indentation
from caffe_nantools.prototxt.syntax import Document, Node, parse

ADDED_MARK = "added by caffe-nantools"
CHANGED_MARK = "  # changed by caffe-nantools, was: "
_CHANGED = re.compile(re.escape(CHANGED_MARK) + r"(.*)\Z")


class EditError(NanToolsError):
    """An edit that cannot be made so that it can be undone exactly."""


def is_added(node: Node) -> bool:
    """Whether ``node`` was added by an edit (its first line carries the marker)."""
    return any(ADDED_MARK in getattr(item, "post", "") for item in node.items[:3])


def add_field(doc: Document, text: str, style: Style) -> Node:
    """Append the scalar field ``text`` (``name: value``) to the top level of ``doc``, on a line
    of its own, marked as added."""
    if not doc.children:
        raise EditError(f"{doc.path}: has no fields to add {text!r} after")
    last = doc.children[-1]
    node = parse(f"{style.newline}{indentation(last)}{text}  # {ADDED_MARK}", doc.path).children[0]
    doc.insert(len(doc.children), node)
    return node


def change_value(node: Node, raw: str, following: Optional[Node]) -> None:
    """Set scalar ``node`` to the value text ``raw``, noting the old text at the end of its line.

    Args:
        following: the node after ``node`` (None if last): the note needs the value to end
            its line, or it would comment out what follows.

    Raises:
        EditError: the old value spans lines, or more follows it on its line.
    """
    first, last = node.values[0][0], node.values[-1][-1]
    start = node.items.index(first)
    end = node.items.index(last)
    old_tokens = node.items[start : end + 1]
    old = "".join(
        (t.pre if i else "") + t.text + (t.post if t is not last else "") for i, t in enumerate(old_tokens)
    )
    where = f"{node.name} at line {node.line}"
    if "\n" in old or "\r" in old:
        raise EditError(f"cannot change {where}: its value spans lines")
    has_separator = node.items[-1] is not last
    if has_separator or (following is not None and not following.items[0].pre.startswith(("\n", "\r\n"))):
        raise EditError(f"cannot change {where}: more follows it on its line; put it on a line of its own")
    # Changed before: the note already holds the original, which is what undo must restore.
    first.post = last.post if _CHANGED.search(last.post) else last.post + CHANGED_MARK + old
    first.text = raw
    node.items[start : end + 1] = [first]
    node.values = [[first]]


def undo(doc: Document) -> List[str]:
    """Remove the added top-level fields and restore the changed values; returns what was undone."""
    undone = []
    for node in doc.children:
        if is_added(node):
            label = node.get("name") if node.is_message else f"{node.name}: {' '.join(node.raw_values)}"
            undone.append(f"removed {node.name} {label}" if node.is_message else f"removed {label}")
            doc.remove(node)
        elif not node.is_message and node.values:
            token = node.values[-1][-1]
            m = _CHANGED.search(token.post)
            if m:
                undone.append(f"restored {node.name}: {m.group(1)}")
                token.post = token.post[: m.start()]
                token.text = m.group(1)
    return undone


def following_sibling(parent: Union[Document, Node], node: Node) -> Optional[Node]:
    children = parent.children
    i = children.index(node)
    return children[i + 1] if i + 1 < len(children) else None
