"""Upgrade an old V1 net (``layers { type: CONVOLUTION ... }``) to today's format in place,
keeping comments and layout: only the lines that differ between the formats change.

What changes, as Caffe's own upgrade does it (UpgradeV1LayerParameter): ``layers`` becomes
``layer``, the type enum becomes its type name, and the per-blob ``param``/``blob_share_mode``/
``blobs_lr``/``weight_decay`` lists become ``param { name share_mode lr_mult decay_mult }``
blocks. Every other V1 field keeps its name.
"""

from __future__ import annotations

from typing import List, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.prototxt.net import V1_TYPES, inline_nets
from caffe_nantools.prototxt.style import Style, indentation
from caffe_nantools.prototxt.syntax import Node, dump, parse

_PARAM_FIELDS = (
    ("param", "name"),
    ("blob_share_mode", "share_mode"),
    ("blobs_lr", "lr_mult"),
    ("weight_decay", "decay_mult"),
)
# Data fields from before transform_param; Caffe moves them in a separate upgrade step.
_OLD_DATA_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


class UpgradeError(NanToolsError):
    """A V1 net with something this upgrade does not rewrite; Caffe's tool can."""


def upgrade_v1(text: str, path: str = "<string>") -> Tuple[str, List[str]]:
    """Rewrite the V1 ``layers`` of a net, or of a solver's inline nets, as ``layer``; returns
    ``(text, changes)``.

    Raises:
        ParseError: the text is not a prototxt.
        UpgradeError: V0 nesting, an unknown type, or pre-transform_param data fields.
    """
    doc = parse(text, path)
    style = Style.of(doc, text)
    changes = []
    for node in [n for net in inline_nets(doc) or [doc] for n in net.find_all("layers")]:
        where = f"{path}:{node.line}:{node.col}"
        if node.find("layer"):
            raise UpgradeError(
                f"{where}: a V0 layer nested in 'layers'; upgrade it with Caffe's upgrade_net_proto_text"
            )
        for holder in ("data_param", "image_data_param", "window_data_param"):
            params = node.find(holder)
            old = [f for f in _OLD_DATA_FIELDS if params is not None and params.find(f) is not None]
            if old:
                raise UpgradeError(
                    f"{where}: {holder} holds {', '.join(old)} from before transform_param; "
                    "upgrade it with Caffe's upgrade_net_proto_text"
                )
        node.items[0].text = "layer"
        kind = node.find("type")
        if kind is not None:
            enum = kind.raw_values[0] if kind.values else ""
            if enum not in V1_TYPES:
                raise UpgradeError(f"{where}: unknown V1 layer type {enum!r}")
            kind.values[0][0].text = f"{style.quote}{V1_TYPES[enum]}{style.quote}"
        _upgrade_params(node, style)
        changes.append(f"{node.get('name', '?')}: layers -> layer")
    return dump(doc), changes


def _upgrade_params(layer: Node, style: Style) -> None:
    lists = {v1: [n for n in layer.find_all(v1) if not n.is_message] for v1, _ in _PARAM_FIELDS}
    fields = [n for nodes in lists.values() for n in nodes]
    if not fields:
        return
    values = {v1: [raw for n in nodes for raw in n.raw_values] for v1, nodes in lists.items()}
    count = max(len(v) for v in values.values())
    first = min(fields, key=layer.items.index)
    base = indentation(first)
    blocks = []
    for i in range(count):
        inner = " ".join(
            f"{v2}: {values[v1][i]}" for v1, v2 in _PARAM_FIELDS if i < len(values[v1])
        )
        blocks.append(f"{style.newline}{base}param {{ {inner} }}")
    new = parse("".join(blocks)).children
    layer.splice(after={}, before={id(first): new})
    for node in fields:
        layer.remove(node)
