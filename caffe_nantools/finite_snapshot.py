"""Whether a Caffe snapshot holds only finite values: its weights (``.caffemodel``) and its
solver state (``.solverstate``: the momentum and the other history blobs an update mixes in),
read from their protobuf wire bytes (or HDF5, with h5py), without pycaffe. A snapshot whose
values are all finite is one a run can resume from.

Caffe names a snapshot's file in its log before it writes it: a solver state is checked once
it is written to its end (:mod:`caffe_nantools.solverstate`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools import arguments
from caffe_nantools.caffemodel import read_blob, read_params
from caffe_nantools.datum import NotADatum, wire_fields
from caffe_nantools.finite import finite_stats, is_finite
from caffe_nantools.solverstate import HISTORY, header_of

__all__ = ["Finiteness", "check_snapshot", "keep_every"]

#: ``keep_good``'s default: a snapshot kept every 30 minutes of training.
KEEP_GOOD = 1800.0


@dataclass(frozen=True)
class Finiteness:
    """What the check of one snapshot's files found.

    ``finite``: True when every value of every file is finite, False at the first that is not,
    None when a file could not be checked (``detail`` says why: missing, unreadable, HDF5
    without h5py). ``iteration``: the solver state's ``iter`` where there is one. ``complete``:
    False while the solver state is still being written (its last field is not there yet).
    """

    finite: Optional[bool]
    detail: str
    iteration: Optional[int] = None
    complete: bool = True


def check_snapshot(files: Sequence[str]) -> Finiteness:
    """Checks every value of ``files`` (a snapshot's ``.caffemodel`` and ``.solverstate``, either
    in binary proto or in HDF5, ``.h5``); the first non-finite one found is named."""
    iteration, complete = None, True
    for path in files:
        try:
            if path.endswith(".h5"):
                found = _hdf5_values(path)
            else:
                with open(path, "rb") as f:
                    buf = f.read()
                if ".solverstate" in path:
                    header = header_of(buf)
                    iteration, complete = header.iteration, header.complete
                    found = _history(buf)
                else:
                    found = _weights(buf)
            for where, values in found:
                if not is_finite(values):
                    return Finiteness(
                        False,
                        f"{path}: {where}: {finite_stats(values).counts}",
                        iteration,
                        complete,
                    )
        except FileNotFoundError:
            return Finiteness(None, f"{path}: not found", iteration, complete)
        except OSError as e:
            return Finiteness(None, f"{path}: cannot be read ({e.strerror or e})", iteration)
        except NotADatum as e:
            return Finiteness(None, f"{path}: not a snapshot Caffe wrote ({e})", iteration, False)
        except ImportError:
            return Finiteness(None, f"{path}: HDF5, not checked without h5py", iteration)
    return Finiteness(True, "every value finite", iteration, complete)


def keep_every(name: str, value: object) -> float:
    """A ``keep_good`` argument: seconds between two snapshots kept, 0 (or None) for none.

    Raises:
        ArgumentError: not a number, or not a finite one of 0 or more.
    """
    if value is None or (
        isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0
    ):
        return 0.0
    return arguments.positive(name, value)


def _weights(buf: bytes) -> Iterator[Tuple[str, np.ndarray]]:
    for layer, params in read_params(buf).items():
        for i, param in enumerate(params):
            yield f"layer '{layer}' param {i}", param.values


def _history(buf: bytes) -> Iterator[Tuple[str, np.ndarray]]:
    k = 0
    for number, wire, a, b in wire_fields(buf):
        if number == HISTORY and wire == 2:
            yield f"history blob {k}", read_blob(buf, a, b).values
            k += 1


def _hdf5_values(path: str) -> Iterator[Tuple[str, np.ndarray]]:
    """Every dataset of an HDF5 snapshot (``data/LAYER/i`` of the weights, ``history/i`` of the
    solver state), read one at a time."""
    import h5py

    with h5py.File(path, "r") as f:
        names = []
        f.visititems(
            lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None
        )
        for name in names:
            yield name, np.asarray(f[name][()])
