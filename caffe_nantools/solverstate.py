"""A Caffe ``.solverstate``'s header, read from its protobuf wire bytes without pycaffe: the
iteration it was written at, the weights file it goes with, and whether it is written to its end.

SolverState's fields (caffe.proto): iter=1, learned_net=2 (the .caffemodel, as the solver named
it when it wrote the state), history=3 (BlobProto), current_step=4. protobuf writes fields in
number order and Caffe always sets current_step, so a state is complete once that field is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from caffe_nantools.datum import NotADatum, signed32, wire_fields
from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import reading

ITER, LEARNED_NET, HISTORY, CURRENT_STEP = 1, 2, 3, 4


class SolverStateError(NanToolsError):
    """A file that is not a solver state Caffe can restore from."""


@dataclass(frozen=True)
class StateHeader:
    iteration: Optional[int]
    learned_net: Optional[str]
    complete: bool


def header_of(buf: bytes) -> StateHeader:
    """The header of the solver state in ``buf``.

    Raises:
        NotADatum: bytes that are not protobuf wire format.
    """
    iteration, net, last = None, None, None
    for number, wire, a, b in wire_fields(buf):
        if number == ITER and wire == 0:
            iteration = signed32(a)
        elif number == LEARNED_NET and wire == 2:
            net = buf[a:b].decode("utf-8", "replace")
        last = number
    return StateHeader(iteration, net, last == CURRENT_STEP)


def read_header(path: str) -> StateHeader:
    """The header of the binary solver state at ``path`` (an HDF5 one, ``.h5``, is read by
    Caffe itself: its iteration is then None).

    Raises:
        FileError: a file that cannot be read.
        SolverStateError: one that is not a complete solver state.
    """
    if path.endswith(".h5"):
        return StateHeader(None, None, True)
    with reading(path, "solver state", mode="rb") as f:
        buf = f.read()
    try:
        found = header_of(buf)
    except NotADatum as e:
        raise SolverStateError(f"{path}: not a solver state Caffe wrote ({e})") from None
    if found.iteration is None or not found.complete:
        raise SolverStateError(
            f"{path}: not a complete solver state (no {'iter' if found.iteration is None else 'current_step'}"
            " field): give the .solverstate Caffe wrote beside the .caffemodel"
        )
    return found
