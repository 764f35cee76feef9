"""A solver's settings as Caffe reads them: the last top-level field of a name counts, and a
value is read as its type (a value of another type is a positioned FieldError)."""

from __future__ import annotations

from typing import Any, Optional

from caffe_nantools.errors import NanToolsError
from caffe_nantools.prototxt import FLOAT, Document, Kind, Node


class NotASolverError(NanToolsError):
    """A net given where a solver goes."""


def refuse_a_net(doc: Document) -> None:
    """Refuse a net given as the solver: layers and not one of the solver's own settings (read as
    a solver, it would be one with every setting missing).

    Raises:
        NotASolverError: ``path:line: a net (layer 'x'), not a solver ...``.
    """
    layer = next((n for n in doc.children if n.name in ("layer", "layers")), None)
    if layer is None or any(setting(doc, name) for name in ("base_lr", "lr_policy", "max_iter")):
        return
    name = layer.find("name")
    named = f" {' '.join(name.raw_values)}" if name is not None else ""
    raise NotASolverError(
        f"{doc.path}:{layer.line}: a net (layer{named}), not a solver: give the solver "
        "prototxt (the one with base_lr and lr_policy)"
    )


def setting(doc: Document, name: str) -> Optional[Node]:
    """The solver's last top-level ``name: value`` field (Caffe keeps the last one)."""
    nodes = [n for n in doc.find_all(name) if not n.is_message]
    return nodes[-1] if nodes else None


def value_of(doc: Document, name: str, kind: Kind, default: Any = None) -> Any:
    """The value of the solver's setting ``name`` as ``kind``, or ``default`` when missing.

    Raises:
        FieldError: a value not of that type (``path:line:col: field name: expected ...``).
    """
    node = setting(doc, name)
    value = node.typed(kind) if node is not None else None
    return default if value is None else value


def number_of(node: Optional[Node]) -> Optional[float]:
    """A field's value as a number; None when missing.

    Raises:
        FieldError: a value that is not a number.
    """
    return node.typed(FLOAT) if node is not None else None


def train_net_named(doc: Document) -> Optional[str]:
    """The train net file the solver names (``train_net``, else ``net``), as written; None when
    it names none (its net may be inline: :func:`has_inline_net`)."""
    named = setting(doc, "train_net") or setting(doc, "net")
    return str(named.value) if named is not None else None


def has_inline_net(doc: Document) -> bool:
    """Whether the solver holds its train net itself (``net_param``, ``train_net_param``)."""
    return doc.find("net_param") is not None or doc.find("train_net_param") is not None
