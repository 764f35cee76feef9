"""From the bad samples of a failing batch to the records they were read from.

With shuffling off, Caffe's Data, HDF5Data and ImageData layers read their source in order and
start again at the end: sample ``s`` of the layer's ``k``-th batch is record
``(k * batch_size + s) mod records``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from caffe_nantools.diagnose import RecordRef
from caffe_nantools.prototxt import Net, NetState
from caffe_nantools.scan.records import Records
from caffe_nantools.scan.net_sources import sources_from_net


def batch_records(
    net: Net,
    layer_name: str,
    batch_index: int,
    samples: Optional[List[int]] = None,
    *,
    phase: str = "TRAIN",
) -> Tuple[List[RecordRef], Optional[str]]:
    """(the records of ``samples`` of the layer's batch, all of it for None; a note when they
    cannot be named). ``layer_name`` is of ``phase``."""
    layer = next((l for l in net.active_layers(NetState(phase)) if l.name == layer_name), None)
    params = layer.source_params if layer is not None else None
    if params is None:
        return [], f"layer {layer_name!r} reads no source that hunt can name records of"
    if str(params.get("shuffle", "false")) == "true":
        return (
            [],
            f"layer {layer_name!r} shuffles its source: the batch's records cannot be named; scan names the bad ones",
        )
    sources, _ = sources_from_net(net.path, phase, net)
    source = next((s for s in sources if s.layer == layer_name), None)
    if source is None:
        return [], f"layer {layer_name!r}: its source was not found"
    batch = int(params.get("batch_size", 1))
    records = Records(source)
    if not records.count:
        return [], f"{source.path}: no records"
    samples = range(batch) if samples is None else samples
    indices = [(batch_index * batch + s) % records.count for s in samples]
    keys = records.keys(indices)
    return [RecordRef(source.path, keys.get(i, str(i)), i) for i in indices], None


def reading_layer(net: Net, source: str, phase: str = "TRAIN") -> Optional[str]:
    """The data layer of ``phase`` that reads ``source`` (a path as scan names it)."""
    sources, _ = sources_from_net(net.path, phase, net)
    return next((s.layer for s in sources if s.name == source), None)


def source_reader(
    net: Net, test_nets: Sequence[Net], source: str
) -> Tuple[Net, str, Optional[str]]:
    """(net, phase, data layer) that reads ``source``: the train net's TRAIN phase, else the
    first test net's TEST phase that does; the layer is None when none does."""
    for reader, phase in [(net, "TRAIN")] + [(t, "TEST") for t in test_nets]:
        layer = reading_layer(reader, source, phase)
        if layer is not None:
            return reader, phase, layer
    return net, "TRAIN", None
