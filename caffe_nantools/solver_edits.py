"""Solver edits for hunting a NaN: ``debug_info: true``, the net path, the display interval.

Caffe prints debug_info (mean |x| of every blob, forward and backward) only on display
iterations, so the display interval decides how closely the trace follows the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from caffe_nantools.errors import NanToolsError, literal
from caffe_nantools.files import FileEdit
from caffe_nantools.prototxt import (
    INT32,
    Node,
    Style,
    add_field,
    added_line,
    change_value,
    dump,
    following_sibling,
    parse,
)
from caffe_nantools.solver_settings import refuse_a_net
from caffe_nantools.templates import escape

#: Above this display interval, inject warns that the debug trace will be coarse.
COARSE_DISPLAY = 100
#: The fields enable_debug_info may add, and the value it gives them (None: the one asked for).
ADDED_FIELDS = {"debug_info": "true", "net": None, "train_net": None, "display": None}


class SolverError(NanToolsError):
    """A solver that cannot be edited as asked."""


@dataclass
class SolverEdit(FileEdit):
    """The edited solver, the changes in words, and warnings for the user."""

    changes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _set(doc, style: Style, name: str, raw: str, changes: List[str]) -> None:
    """Give top-level scalar ``name`` the value text ``raw``: change it where it is (the last
    one counts in protobuf text format) or add it at the end."""
    nodes = [n for n in doc.find_all(name) if not n.is_message]
    if not nodes:
        add_field(doc, f"{name}: {raw}", style)
        changes.append(f"added {name}: {raw}")
    elif nodes[-1].raw_values != [raw]:
        node = nodes[-1]
        old = " ".join(node.raw_values)
        change_value(node, raw, following_sibling(doc, node))
        changes.append(f"changed {name}: {old} -> {raw}")


def set_fields(text: str, path: str, fields: Dict[str, str], *, drop: Sequence[str] = ()) -> str:
    """The solver with top-level ``fields`` set (name -> value as written, e.g. ``'"net.prototxt"'``)
    and the top-level fields named in ``drop`` taken out; the rest kept as written.

    Raises:
        ParseError: the text is not a prototxt.
    """
    doc = parse(text, path)
    for name in drop:
        for node in doc.find_all(name):
            doc.remove(node)
    style = Style.of(doc, text)
    for name, raw in fields.items():
        _set(doc, style, name, raw, [])
    return dump(doc)


def added_by_debug_info(node: Node) -> Optional[str]:
    """The line enable_debug_info adds for a field with ``node``'s name and value (after its
    indentation), or None for a field it never adds."""
    if node.is_message or node.name not in ADDED_FIELDS:
        return None
    return added_line(f"{node.name}: {ADDED_FIELDS[node.name] or ' '.join(node.raw_values)}")


def enable_debug_info(
    text: str,
    path: str = "<string>",
    *,
    net_path: Optional[str] = None,
    display: Optional[int] = None,
) -> SolverEdit:
    """Switch on ``debug_info`` in a solver, keeping everything else as written.

    Args:
        net_path: point ``net:`` (or ``train_net:``) at this file, e.g. the checked net.
        display: set the display interval (debug_info prints only on display iterations).

    Raises:
        ParseError: the text is not a prototxt.
        SolverError: ``net_path`` for a solver that embeds its net, or a bad ``display``.
        EditError: a value that cannot be changed so that remove can restore it.
    """
    doc = parse(text, path)
    refuse_a_net(doc)
    style = Style.of(doc, text)
    changes: List[str] = []
    _set(doc, style, "debug_info", "true", changes)
    if net_path is not None:
        if doc.find("net_param") or doc.find("train_net_param"):
            raise SolverError(
                f"{literal(path)}: the solver embeds its net (net_param); {{net_path}} needs a net file",
                arguments={"net_path": net_path},
            )
        field_name = "train_net" if doc.find("train_net") and not doc.find("net") else "net"
        _set(doc, style, field_name, f'"{escape(net_path)}"', changes)
    if display is not None:
        if not 0 <= display <= INT32.high:  # the number itself may be too long to print
            raise SolverError(
                "{display} must be from 0 to %d (Caffe's display is an int32)" % INT32.high,
                arguments={"display": display},
            )
        _set(doc, style, "display", str(display), changes)
    warnings = []
    shown = doc.field("display", INT32, 0)
    if shown <= 0:
        warnings.append(
            f"{path}: display is {shown or 'not set (0)'}, so Caffe never prints the debug_info "
            "trace; set display to 1 while hunting a NaN"
        )
    elif shown > COARSE_DISPLAY:
        warnings.append(
            f"{path}: display is {shown}: Caffe prints the debug_info trace only every {shown} "
            "iterations, so it may show the NaN only long after it started; set display to 1"
        )
    return SolverEdit(path, text, dump(doc), changes, warnings)
