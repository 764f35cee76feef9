"""From the bad samples of a failing batch to the records they were read from.

With shuffling off, Caffe's Data, HDF5Data and ImageData layers read their source in order and
start again at the end: sample ``s`` of the layer's ``k``-th batch is record
``(k * batch_size + s) mod records``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from caffe_nantools.files import read_text
from caffe_nantools.prototxt.net import Net, NetState
from caffe_nantools.scan.records import Records
from caffe_nantools.scan.sources import sources_from_net


def bad_records(
    net_path: str, layer_name: str, batch_index: int, samples: List[int]
) -> Tuple[List[Dict[str, str]], Optional[str]]:
    """(records as ``{"source", "key", "index"}``, a note when they cannot be named)."""
    net = Net.parse(read_text(net_path), net_path)
    layer = next((l for l in net.active_layers(NetState("TRAIN")) if l.name == layer_name), None)
    params = layer.source_params if layer is not None else None
    if params is None:
        return [], f"layer {layer_name!r} reads no source that hunt can name records of"
    if str(params.get("shuffle", "false")) == "true":
        return (
            [],
            f"layer {layer_name!r} shuffles its source: the batch's records cannot be named; scan names the bad ones",
        )
    sources, _ = sources_from_net(net_path, "TRAIN", net)
    source = next((s for s in sources if s.layer == layer_name), None)
    if source is None:
        return [], f"layer {layer_name!r}: its source was not found"
    batch = int(params.get("batch_size", 1))
    records = Records(source)
    if not records.count:
        return [], f"{source.path}: no records"
    indices = [(batch_index * batch + s) % records.count for s in samples]
    keys = records.keys(indices)
    return [
        {"source": source.path, "key": keys.get(i, str(i)), "index": str(i)} for i in indices
    ], None
