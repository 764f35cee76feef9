"""What hunt starts from: the user's solver and the train net it names, read as Caffe reads
them (relative paths from the current folder), and the checked copies hunt trains instead."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import Outputs, read_text, writing
from caffe_nantools.hunt.space import no_room
from caffe_nantools.hunt.stores import private_sources, remove_copies
from caffe_nantools.inject import CheckOptions, inject_text
from caffe_nantools.prototxt import dump, parse
from caffe_nantools.prototxt.fields import FLOAT, STRING
from caffe_nantools.prototxt.net import Net
from caffe_nantools.prototxt.syntax import Document, decode
from caffe_nantools.solver import set_fields
from caffe_nantools.solver_settings import setting, value_of
from caffe_nantools.templates import escape

#: hunt trains at most this many iterations unless told otherwise.
MAX_ITERS = 1000
#: Iterations for a solver without max_iter (the poly case goes NaN at once anyway).
NO_MAX_ITER = 100
#: A check counts a finite value this large as bad: an overflow to FLT_MAX (an empty MAX pooling
#: window gives -FLT_MAX) is the fault, not what the next layer makes of it.
CHECK_MAX_ABS = 1e37
#: The seed of hunt's runs, where the solver sets none (Caffe then seeds from the clock).
RANDOM_SEED = 1701
_NET_FIELDS = ("net", "train_net")
_INLINE_NETS = ("net_param", "train_net_param")


class HuntError(NanToolsError):
    """A solver or net that hunt cannot start from (the message names the file)."""


@dataclass
class Inputs:
    """The user's solver and train net."""

    solver: str
    solver_text: str
    net: str  # the net file as Caffe would open it; for an inline net, where hunt wrote it out
    net_text: str
    net_field: str  # which field the copies set: net or train_net (for train_net_param too)
    doc: Document  # the solver, parsed
    inline: bool = False  # the net is the solver's net_param, written out to ``net`` by hunt

    def number(self, name: str) -> Optional[float]:
        """The solver's setting ``name`` as a finite number, or None."""
        value = value_of(self.doc, name, FLOAT)
        return value if value is not None and math.isfinite(value) else None

    def has(self, name: str) -> bool:
        return setting(self.doc, name) is not None

    @property
    def net_model(self) -> Net:
        return Net.parse(self.net_text, self.net)

    def notes(self, gpu: Optional[int]) -> List[str]:
        """What the user should know about settings of the solver that hunt's copies change."""
        notes = []
        mode = setting(self.doc, "solver_mode")
        if gpu is None and mode is not None and str(mode.value) == "GPU":
            notes.append(
                f"{self.solver}:{mode.line}: solver_mode: GPU; hunt trained on the CPU "
                "(to train on a GPU, give its id: --gpu ID, or gpu=ID in Python)"
            )
        prefix = value_of(self.doc, "snapshot_prefix", STRING)
        folder = os.path.dirname(prefix) if prefix else ""
        if folder and not os.path.isdir(folder):
            notes.append(
                f"{self.solver}:{setting(self.doc, 'snapshot_prefix').line}: snapshot_prefix "
                f"{prefix!r}: the folder {folder} does not exist, so Caffe cannot write snapshots "
                "('Cannot write to snapshot prefix'); create it (hunt's copies snapshot into the "
                "workdir)"
            )
        return notes

    def default_iters(self) -> int:
        max_iter = self.number("max_iter")
        return int(min(max_iter, MAX_ITERS)) if max_iter and max_iter > 0 else NO_MAX_ITER


def read_inputs(solver: str, workdir: str) -> Inputs:
    """Read ``solver`` and its train net (``net``, ``train_net``, or an inline ``net_param``,
    which is written to ``workdir`` so the copies can name it).

    Raises:
        NanToolsError: unreadable files, parse errors, a solver without a train net.
    """
    text = read_text(solver, "solver")
    doc = parse(text, solver)
    for name in _NET_FIELDS:
        node = setting(doc, name)
        if node is not None:
            net = str(node.value)
            if not os.path.exists(net):
                raise HuntError(_not_found(solver, node.line, name, net))
            return Inputs(solver, text, net, read_text(net, "net"), name, doc)
    for name, field_name in zip(_INLINE_NETS, _NET_FIELDS):
        node = doc.find(name)
        if node is not None:
            net = os.path.join(workdir, "inline_net.prototxt")
            net_text = "".join(dump(child) for child in node.children).lstrip("\n") + "\n"
            return Inputs(solver, text, net, net_text, field_name, doc, inline=True)
    raise HuntError(
        f"{solver}: names no train net (net, train_net or net_param); is it a solver prototxt?"
    )


def _not_found(solver: str, line: int, name: str, net: str) -> str:
    """The solver's net is not where Caffe would look; where it is, from an enclosing folder."""
    message = (
        f"{solver}:{line}: {name} {net!r}: no such file from the current folder {os.getcwd()} "
        "(Caffe opens a solver's paths from the folder it runs in)"
    )
    if os.path.isabs(net):
        return message
    folder = os.path.dirname(os.path.abspath(solver))
    while True:
        if os.path.isfile(os.path.join(folder, net)):
            return message + f"; it is there from {folder}: run hunt in that folder"
        parent = os.path.dirname(folder)
        if parent == folder:
            return message
        folder = parent


@dataclass
class Copies:
    """One set of checked copies in the workdir, and the changes made for a fix."""

    folder: str
    solver: str
    net: str
    changes: List[str] = field(default_factory=list)
    #: The private copies of the LevelDB stores the copies read (store -> copy), removed once
    #: trained (see :mod:`caffe_nantools.hunt.stores`).
    stores: Dict[str, str] = field(default_factory=dict)


def make_copies(
    inputs: Inputs,
    folder: str,
    *,
    net_text: Optional[str] = None,
    solver_fields: Optional[Dict[str, str]] = None,
    changes: Optional[List[str]] = None,
) -> Copies:
    """Checked copies of the net (a check after every blob and every in-place modifier, overflow
    to FLT_MAX counted) and of the solver (debug_info every iteration, the copy's net, snapshots
    into ``folder``), with ``solver_fields`` set and ``net_text`` instead of the user's net for
    a fix."""
    os.makedirs(folder, exist_ok=True)
    checked = inject_text(
        net_text if net_text is not None else inputs.net_text,
        inputs.net,
        each=True,
        options=CheckOptions(max_abs=CHECK_MAX_ABS),
        upgrade=True,
    )
    net_copy = os.path.join(folder, "net.prototxt")
    solver_copy = os.path.join(folder, "solver.prototxt")
    which = inputs.net_field
    fields = {
        which: f'"{escape(os.path.abspath(net_copy))}"',
        "debug_info": "true",
        "display": "1",
        "snapshot": "0",
        "snapshot_after_train": "false",
        "snapshot_prefix": f'"{escape(os.path.join(os.path.abspath(folder), "snapshot"))}"',
    }
    if not inputs.has("random_seed"):
        # The same initial weights in every run of a hunt, so that a fix is judged on the same start.
        fields["random_seed"] = str(RANDOM_SEED)
    fields.update(solver_fields or {})
    solver_text = set_fields(
        inputs.solver_text,
        inputs.solver,
        fields,
        drop=[f for f in _NET_FIELDS + _INLINE_NETS if f != which],
    )
    copies = Copies(folder, solver_copy, net_copy, list(changes or []))
    try:
        with writing() as out:
            out.text(net_copy, _privately(parse(checked.text, net_copy), copies) or checked.text)
            out.text(solver_copy, _private_solver(out, solver_text, copies) or solver_text)
    except BaseException:
        remove_copies(copies.stores)
        raise
    return copies


def _privately(doc: Document, copies: Copies) -> Optional[str]:
    """``doc`` (a net, or a solver with inline nets) reading private copies of its LevelDBs;
    None when it reads none."""
    try:
        return dump(doc) if private_sources(doc, copies.folder, copies.stores) else None
    except OSError as e:
        raise no_room(e, copies.folder) from None


def _private_solver(out: Outputs, text: str, copies: Copies) -> Optional[str]:
    """The solver's copy with its inline nets and its test_net files reading private copies of
    their LevelDBs (a test net that reads one is copied beside it); None when none does."""
    doc = parse(text, copies.solver)
    changed = _privately(doc, copies) is not None
    values = [value for node in doc.find_all("test_net") for value in node.values]
    for k, value in enumerate(values):
        path = decode(value)
        if isinstance(path, str) and os.path.isfile(path):  # else Caffe stops with its own line
            net = _privately(parse(read_text(path, "net"), path), copies)
            if net is not None:
                copy = os.path.join(copies.folder, f"test_net_{k}.prototxt")
                out.text(copy, net)
                value[0].text = f'"{escape(os.path.abspath(copy))}"'
                del value[1:]
                changed = True
    return dump(doc) if changed else None
