"""Caffe snapshots written byte by byte from the wire format (a NetParameter's layers with their
param blobs, a SolverState with its history blobs), so the host tests need no caffe_pb2."""

import numpy as np

from datums import varint


def _field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def blob(values) -> bytes:
    """A BlobProto: its shape (BlobShape's packed dims), then its values packed."""
    values = np.asarray(values, "<f4")
    dims = b"".join(varint(d) for d in values.shape)
    return _field(7, _field(1, dims)) + _field(5, values.tobytes())


def caffemodel(layers) -> bytes:
    """A NetParameter of ``layers``: name -> its param arrays."""
    return b"".join(
        _field(100, _field(1, name.encode()) + b"".join(_field(7, blob(p)) for p in params))
        for name, params in layers.items()
    )


def solverstate(iteration: int, learned_net: str, history, *, complete: bool = True) -> bytes:
    """A SolverState as Caffe's SGD solvers write it: iter, learned_net, the history blobs, and
    current_step (always set, so written last), unless ``complete`` is False (cut before it)."""
    out = varint(1 << 3) + varint(iteration) + _field(2, learned_net.encode())
    out += b"".join(_field(3, blob(h)) for h in history)
    return out + (varint(4 << 3) + varint(0) if complete else b"")


def write_snapshot(prefix: str, iteration: int, layers, history=None) -> tuple:
    """``PREFIX_iter_N.caffemodel`` and ``.solverstate`` as Caffe names them; their paths."""
    model = f"{prefix}_iter_{iteration}.caffemodel"
    state = f"{prefix}_iter_{iteration}.solverstate"
    with open(model, "wb") as f:
        f.write(caffemodel(layers))
    if history is None:
        history = [np.zeros_like(np.asarray(p, np.float32)) for ps in layers.values() for p in ps]
    with open(state, "wb") as f:
        f.write(solverstate(iteration, model, history))
    return model, state
