"""``caffe-nantools replay BUNDLE``: run the failing iteration of a hunt again, forward and
backward, from the weights it started with and the batch it read, and give the exact numbers of
every blob and param in net order (NaN/+inf/-inf counts, min, max, mean |x|), the first bad one
marked: without retraining, as often as needed.

A bundle (``hunt`` writes one in ``WORKDIR/replay`` at the first failure) is a folder with
``manifest.json``, ``net.prototxt`` (the train net with its data layers replaced by Input
layers), the ``.caffemodel`` and one ``.npy`` per data top; :mod:`caffe_nantools.bundle` reads
and checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from caffe_nantools import arguments, jsontext
from caffe_nantools.bundle import (
    ReplayError,
    check_layer_types,
    copy_weights,
    find_bundle,
    open_bundle,
)
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK, NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.prototxt import dump
from caffe_nantools.prototxt.net import Net, NetState
from caffe_nantools.prototxt.validate import validate
from caffe_nantools.templates import escape

__all__ = ["ReplayError", "ReplayReport", "Row", "bundle_net", "replay"]


def bundle_net(net_text: str, path: str, shapes: Dict[str, Sequence[int]]) -> str:
    """The TRAIN net of ``net_text`` with every data layer replaced by an Input layer whose tops
    have ``shapes`` (the saved batch's), other layers as written."""
    net = Net.parse(net_text, path)
    parts = [f'name: "{escape(net.name or "replay")}"\n']
    for layer in net.active_layers(NetState("TRAIN")):
        if layer.is_data:
            tops = "".join(f' top: "{escape(t)}"' for t in layer.tops)
            dims = "".join(
                " shape {" + "".join(f" dim: {d}" for d in shapes[t]) + " }" for t in layer.tops
            )
            parts.append(
                f'layer {{ name: "{escape(layer.name)}" type: "Input"{tops} input_param {{{dims} }} }}\n'
            )
        else:
            parts.append(dump(layer.node).strip("\r\n") + "\n")
    return "".join(parts)


@dataclass(frozen=True)
class Row:
    """The numbers of one array: a blob's data or diff, or a param's."""

    what: str  # "data" or "diff"
    name: str  # "layer: blob" or "layer: param i"
    count: int
    nan: int
    posinf: int
    neginf: int
    huge: int  # finite values of 1e37 or more in magnitude: an overflow to FLT_MAX
    min: Optional[float]
    max: Optional[float]
    mean_abs: Optional[float]

    @property
    def bad(self) -> bool:
        return bool(self.nan or self.posinf or self.neginf or self.huge)

    def to_dict(self) -> dict:
        return {
            "what": self.what,
            "name": self.name,
            "count": self.count,
            "nan": self.nan,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "huge": self.huge,
            "min": self.min,
            "max": self.max,
            "mean_abs": self.mean_abs,
        }


#: As hunt's checks: a finite value this large is an overflow to FLT_MAX (an empty MAX pooling
#: window gives -FLT_MAX), as bad as inf.
HUGE = 1e37


def measure(what: str, name: str, x: np.ndarray) -> Row:
    x = np.asarray(x).ravel()
    s = finite_stats(x, HUGE)
    finite = x[np.isfinite(x)]
    mean_abs = float(np.abs(finite, dtype=np.float64).mean()) if finite.size else None
    return Row(
        what,
        name,
        s.count,
        s.nan,
        s.posinf,
        s.neginf,
        s.over_max_abs,
        s.finite_min,
        s.finite_max,
        mean_abs,
    )


@dataclass
class ReplayReport:
    """Forward rows (blob data, then each layer's params) and backward rows (blob diffs, param
    diffs), in net order; ``first_bad`` is the first row with a non-finite value."""

    iteration: Optional[int]
    error: Optional[NonFiniteError] = None  # what hunt saw fail in that iteration
    forward: List[Row] = field(default_factory=list)
    backward: List[Row] = field(default_factory=list)

    @property
    def first_bad(self) -> Optional[Row]:
        return next((r for r in self.forward + self.backward if r.bad), None)

    @property
    def return_code(self) -> int:
        return EXIT_FINDINGS if self.first_bad is not None else EXIT_OK

    def to_dict(self) -> dict:
        first = self.first_bad
        return {
            "iteration": self.iteration,
            "error": self.error.to_dict() if self.error is not None else None,
            "forward": [r.to_dict() for r in self.forward],
            "backward": [r.to_dict() for r in self.backward],
            "first_bad": first.to_dict() if first is not None else None,
        }

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict()) + "\n"

    def format(self) -> str:
        first = self.first_bad
        lines = [
            f"iteration {self.iteration}: "
            + (
                f"first non-finite: the {first.what} of {first.name}"
                if first
                else "every value finite"
            )
        ]
        if self.error is not None:
            lines.append(f"hunt saw: {self.error}")
            if first is None and self.error.pass_ == "update":
                lines.append(
                    "forward and backward stay finite: the update (its rate, its step) made the weights bad"
                )
        header = (
            f"  {'':2}{'what':5} {'name':32} {'nan':>6} {'+inf':>6} {'-inf':>6} {'>=1e37':>6} {'min':>11} "
            f"{'max':>11} {'mean |x|':>11}"
        )
        for title, rows in (("forward", self.forward), ("backward", self.backward)):
            lines += [title + ":", header]
            for r in rows:
                mark = "->" if r is first else ""
                lines.append(
                    f"  {mark:2}{r.what:5} {r.name[:32]:32} {r.nan:6} {r.posinf:6} {r.neginf:6} {r.huge:6} "
                    f"{_number(r.min):>11} {_number(r.max):>11} {_number(r.mean_abs):>11}"
                )
        return "\n".join(lines) + "\n"


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def replay(bundle: str, *, gpu: Optional[int] = None) -> ReplayReport:
    """Run the bundle's iteration once more, forward and backward.

    Args:
        bundle: the bundle's folder, or the workdir of the hunt that wrote it (its ``replay``).
        gpu: run on this GPU (CPU by default).

    Raises:
        ReplayError: not a bundle; a file of it missing, unreadable or not agreeing with the net
            (all checked before Caffe sees them).
        ArgumentError: ``bundle`` not a path, ``gpu`` not a device number.
        CaffeUnavailableError: no pycaffe here, or no GPU ``gpu`` for it.
    """
    from caffe_nantools.pycaffe import load_caffe, use_device

    bundle = arguments.path("bundle", bundle)
    gpu = arguments.whole("gpu", gpu, 0, optional=True)
    found = open_bundle(find_bundle(bundle))
    caffe = load_caffe()
    validate(found.net_text, found.net_path)
    check_layer_types(found, set(caffe.layer_type_list()))
    use_device(caffe, gpu)
    # Without weights: they are copied in after their shapes are checked against the net's.
    net = caffe.Net(found.net_path, caffe.TRAIN)
    params = dict(net.params.items())
    copy_weights(found, params)
    for top, batch in found.inputs.items():
        net.blobs[top].data[...] = batch
    report = ReplayReport(found.iteration, found.error)
    names = list(net._layer_names)
    net.clear_param_diffs()
    # Layer by layer, so that each blob is measured as that layer left it: an in-place layer
    # after it changes the same memory.
    for name in names:
        net.forward(start=name, end=name)
        for top in net.top_names[name]:
            report.forward.append(measure("data", f"{name}: {top}", net.blobs[top].data))
        for i, blob in enumerate(params.get(name, ())):
            report.forward.append(measure("data", f"{name}: param {i}", blob.data))
    for name in reversed(names):
        net.backward(start=name, end=name)
        for bottom in net.bottom_names[name]:
            report.backward.append(measure("diff", f"{name}: {bottom}", net.blobs[bottom].diff))
        for i, blob in enumerate(params.get(name, ())):
            report.backward.append(measure("diff", f"{name}: param {i}", blob.diff))
    return report
