"""The files of a fix, as the key's predicates read them: the solver's settings, a layer's
fields, and the class labels and record keys a data layer reads (paths from the case folder,
where Caffe runs)."""

from __future__ import annotations

import os
from typing import List

from caffe_nantools.datum import parse_header
from caffe_nantools.prototxt import FLOAT, STRING, Net, parse
from caffe_nantools.solver_settings import setting


class Fixed:
    def __init__(self, solver: str, net: str) -> None:
        with open(solver) as f:
            self.solver = parse(f.read(), solver)
        with open(net) as f:
            self.net = Net.parse(f.read(), net)

    def solver_number(self, name: str) -> float:
        node = setting(self.solver, name)
        if node is None:
            raise KeyError(name)
        return node.typed(FLOAT)

    def solver_string(self, name: str) -> str:
        node = setting(self.solver, name)
        return node.typed(STRING) if node is not None else ""

    def _layer(self, name: str):
        return next(l for l in self.net.layers if l.name == name)

    def layer_values(self, layer: str, path: str) -> list:
        nodes = [self._layer(layer).node]
        *blocks, last = path.split(".")
        for block in blocks:
            nodes = [child for n in nodes for child in n.find_all(block)]
        return [v for n in nodes for v in n.get_all(last)]

    def _source(self, layer: str):
        found = self._layer(layer)
        params = found.source_params
        return found.type, str(params.get("source")), params

    def records(self, layer: str) -> List[tuple]:
        """(key, label) of every record ``layer`` reads."""
        kind, source, params = self._source(layer)
        if kind == "Data":
            import lmdb

            env = lmdb.open(source, readonly=True, lock=False)
            with env.begin() as txn:
                out = [(k.decode(), _label(v)) for k, v in txn.cursor()]
            env.close()
            return out
        if kind == "HDF5Data":
            import h5py

            out = []
            with open(source) as listing:
                for name in filter(None, (line.strip() for line in listing)):
                    with h5py.File(name, "r") as h5:
                        labels = h5["label"][()] if "label" in h5 else h5[list(h5)[0]][()]
                    base = os.path.basename(name)
                    out += [(f"{base}:{i}", float(labels[i].flat[0])) for i in range(len(labels))]
            return out
        with open(source) as listing:
            return [
                (p, int(l)) for p, l in (line.rsplit(None, 1) for line in listing if line.strip())
            ]

    def labels(self, layer: str) -> list:
        return [label for _, label in self.records(layer)]

    def keys(self, layer: str) -> list:
        return [key for key, _ in self.records(layer)]


def _label(value: bytes) -> int:
    try:
        return parse_header(value).label
    except ValueError:
        return -1
