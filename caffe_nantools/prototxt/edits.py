"""Edits that remember themselves, so they can be undone byte for byte.

An added field or block carries ``# added by caffe-nantools`` on its first line; a changed value
carries ``# changed by caffe-nantools, was: <old text>`` at the end of its line. ``undo`` finds
both and restores the text as it was before. A marked field or block is taken out only when its
text is exactly what the edit writes for its values: a line the user added or changed in it,
or a block of the user's that merely carries the mark, is refused rather than deleted.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable, List, Optional, Sequence, Union

from caffe_nantools.errors import NanToolsError
from caffe_nantools.prototxt.style import Style, indentation
from caffe_nantools.prototxt.syntax import Document, Node, dump, iter_tokens, parse, shown

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
    node = parse(
        f"{style.newline}{indentation(doc.children[-1])}{added_line(text)}", doc.path
    ).children[0]
    doc.insert(len(doc.children), node)
    return node


def set_param(layer: Node, block: str, name: str, raw: str) -> None:
    """``block { name: raw }`` in ``layer``: the field's value replaced, else the field added
    to the block, else the block added, each on a line of its own indented as its siblings
    (a copy's edit, unmarked: it shows as one line in a diff against the user's file)."""
    params = layer.find(block)
    if params is None:
        _append(layer, f"{block} {{ {name}: {raw} }}")
        return
    field = params.find(name)
    if field is None:
        _append(params, f"{name}: {raw}")
        return
    field.values[0][0].text = raw
    del field.values[0][1:]


def _append(holder: Node, text: str) -> None:
    """``text`` as the last child of ``holder``: on a line of its own where the last child is
    (indented as it), else in the line, the space before the closing brace kept after it."""
    children = holder.children
    if children and "\n" in children[-1].items[0].pre:
        holder.insert(-1, parse("\n" + indentation(children[-1]) + text).children[0])
        return
    if not children and "\n" in holder.items[0].pre:
        holder.insert(-1, parse("\n" + indentation(holder) + "  " + text).children[0])
        return
    node = parse(text).children[0]
    before = list(iter_tokens(children[-1]))[-1] if children else holder.items[1]
    list(iter_tokens(node))[-1].post, before.post = before.post, " "
    holder.insert(-1, node)


def added_line(text: str) -> str:
    """The line :func:`add_field` writes for the field ``text`` (after its indentation)."""
    return f"{text}  # {ADDED_MARK}"


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
        (t.pre if i else "") + t.text + (t.post if t is not last else "")
        for i, t in enumerate(old_tokens)
    )
    where = f"{node.name} at line {node.line}"
    if "\n" in old or "\r" in old:
        raise EditError(f"cannot change {where}: its value spans lines")
    has_separator = node.items[-1] is not last
    if has_separator or (
        following is not None and not following.items[0].pre.startswith(("\n", "\r\n"))
    ):
        raise EditError(
            f"cannot change {where}: more follows it on its line; put it on a line of its own"
        )
    # Changed before: the note already holds the original, which is what undo must restore.
    first.post = last.post if _CHANGED.search(last.post) else last.post + CHANGED_MARK + old
    first.text = raw
    node.items[start : end + 1] = [first]
    node.values = [[first]]


def undo(
    doc: Document, written: Callable[[Node], Optional[str]], *, inside: Sequence[Node] = ()
) -> List[str]:
    """Remove the added fields and restore the changed values at the top level of ``doc`` and in
    the message fields ``inside`` (a solver's inline nets); returns what was undone.

    Args:
        written: for a marked node, the text the edit writes for a node with its values (from
            its first token on, as ``dump`` gives it), or None for a node the edit never adds.
            Blank lines before the node go with it; anything else before it is the user's.

    Raises:
        EditError: a marked node whose text is not that (``path:line: what differs``); nothing
            is changed then.
    """
    holders: List[Union[Document, Node]] = [doc, *inside]
    for holder in holders:
        for node in holder.children:
            if is_added(node):
                _check_written(doc.path, node, written(node))
            else:
                _check_restorable(doc.path, node)
    undone = []
    for holder in holders:
        within = f"{holder.name}: " if isinstance(holder, Node) else ""
        undone += [within + what for what in _undo_in(holder)]
    return undone


def _undo_in(holder: Union[Document, Node]) -> List[str]:
    undone = []
    for node in holder.children:
        if is_added(node):
            label = (
                node.get("name") if node.is_message else f"{node.name}: {' '.join(node.raw_values)}"
            )
            undone.append(f"removed {node.name} {label}" if node.is_message else f"removed {label}")
            holder.remove(node)
        elif not node.is_message and node.values:
            token = node.values[-1][-1]
            m = _CHANGED.search(token.post)
            if m:
                undone.append(f"restored {node.name}: {m.group(1)}")
                token.post = token.post[: m.start()]
                token.text = m.group(1)
    return undone


def _check_restorable(path: str, node: Node) -> None:
    """A changed value's old text must read back as one value of that field: a mark that says
    otherwise was not written by an edit."""
    if node.is_message or not node.values:
        return
    m = _CHANGED.search(node.values[-1][-1].post)
    if m is None:
        return
    try:
        restored = parse(f"{node.name}: {m.group(1)}").children
    except NanToolsError:
        restored = []
    if (
        len(restored) != 1
        or restored[0].is_message
        or len(restored[0].values) != 1
        or len(restored[0].values[0]) != 1
    ):
        raise EditError(
            f"{path}:{node.line}: field {node.name}: the value its mark says it was, {m.group(1)!r}, is no "
            "value caffe-nantools changed; the mark is not ours: remove it by hand; nothing was changed"
        )


def _check_written(path: str, node: Node, expected: Optional[str]) -> None:
    pre = node.items[0].pre
    text = dump(node)[len(pre) :]
    if text == expected and not pre.strip():
        return
    label = f"layer {node.get('name')!r}" if node.is_message else f"field {node.name}"
    above = pre.split("\n")
    if pre.strip():
        k = next(i for i, line in enumerate(above) if line.strip())
        line, what = (
            node.line - len(above) + 1 + k,
            f"the line above it, {_quoted(above[k])}, would go with it",
        )
    elif expected is None:
        line, what = node.line, f"caffe-nantools never adds a {node.name} like this"
    else:
        lines, wanted = text.split("\n"), expected.split("\n")
        op, i, _, j, _ = next(
            c
            for c in difflib.SequenceMatcher(None, lines, wanted, autojunk=False).get_opcodes()
            if c[0] != "equal"
        )
        line = node.line + min(i, len(lines) - 1)
        if op == "delete":
            what = f"line {line} {_quoted(lines[i])} is not inject's"
        elif op == "insert":
            what = f"inject's line {_quoted(wanted[j])} is missing before line {line}"
        else:
            what = f"line {line} reads {_quoted(lines[i])} where inject writes {_quoted(wanted[j])}"
    raise EditError(
        f"{path}:{line}: the {label} at line {node.line} carries the '# {ADDED_MARK}' mark but is not what "
        f"inject wrote ({what}); nothing was removed: take that block or its mark out by hand"
    )


def _quoted(line: str) -> str:
    return repr(shown(line.strip(), 72))


def following_sibling(parent: Union[Document, Node], node: Node) -> Optional[Node]:
    children = parent.children
    i = children.index(node)
    return children[i + 1] if i + 1 < len(children) else None
