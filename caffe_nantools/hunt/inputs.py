"""What hunt starts from: the user's solver and the train net it names, read as Caffe reads
them (relative paths from the current folder), and the checked copies hunt trains instead."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Optional, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import read_text, writing
from caffe_nantools.hunt.space import no_room
from caffe_nantools.hunt.stores import private_sources, remove_copies
from caffe_nantools.inject import CheckOptions, inject_text
from caffe_nantools.prototxt import FLOAT, STRING, Document, Net, NetState, Node, dump, parse
from caffe_nantools.solver_edits import set_fields
from caffe_nantools.solver_settings import setting, value_of
from caffe_nantools.solverstate import read_header
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
_TEST_FILES, _TEST_INLINE = "test_net", "test_net_param"


class HuntError(NanToolsError):
    """A solver or net that hunt cannot start from (the message names the file)."""


#: Data layers whose batches follow from their position in the source (with shuffling off):
#: a training resumed from a snapshot reads the batches the run read there once each is
#: advanced by the batches read before it.
POSITIONED = ("Data", "HDF5Data", "ImageData", "WindowData", "AnnotatedData")


@dataclass
class Resume:
    """A training started from a snapshot: the solver state restored (weights, history, the
    iteration and so the rate), the data layers advanced to where the run was."""

    state: str  # absolute path of the .solverstate
    iteration: int
    layers: List[str]  # the TRAIN data layers advanced
    batches: int  # by this many batches each (iteration x iter_size)
    #: Data layers whose batches cannot be those of the run (name, why).
    unmatched: List[Tuple[str, str]] = field(default_factory=list)

    def words(self) -> str:
        """The resume in a note: from where, and how the batches were matched."""
        said = f"trained from {self.state} (iteration {self.iteration})"
        if self.layers:
            said += (
                f"; {', '.join(self.layers)} advanced by {self.batches} batches to those the run "
                "read from there"
            )
        said += "".join(f"; {name}: {why}" for name, why in self.unmatched)
        return said


@dataclass
class Inputs:
    """The user's solver and train net, each read and parsed once: every stage of a hunt takes
    its facts from here (``doc``, ``net_model``, ``test_models``), not from the files again."""

    solver: str
    solver_text: str
    net: str  # the net file as Caffe would open it; for an inline net, where hunt wrote it out
    net_text: str
    net_field: str  # which field the copies set: net or train_net (for train_net_param too)
    doc: Document  # the solver, parsed
    inline: bool = False  # the net is the solver's net_param, written out to ``net`` by hunt
    #: The solver's own test nets, (path, text) in Caffe's order (test_net_param, then test_net);
    #: an inline one's path is where hunt writes it out. Empty: the train net's TEST phase is
    #: the test net, where the solver tests at all.
    test_nets: List[Tuple[str, str]] = field(default_factory=list)
    inline_tests: int = 0  # how many of test_nets, the first, are inline (test_net_param)
    #: Where the training starts, when it is resumed from a snapshot.
    resume: Optional[Resume] = None

    def resume_from(self, state: str) -> None:
        """Start from the solver state ``state`` (as ``caffe train -snapshot`` does).

        Raises:
            NanToolsError: a file that is not a complete solver state, or whose weights file
                is not where Caffe will look for it.
        """
        header = read_header(state)
        net = header.learned_net
        if net is not None and not os.path.isfile(net):
            raise HuntError(
                f"{state}: its weights {net!r} are not found from the current folder "
                f"{os.getcwd()} (Caffe opens them from the folder it runs in): run hunt where the "
                "training ran"
            )
        iteration = header.iteration or 0
        batches = iteration * int(self.number("iter_size") or 1)
        resume = Resume(os.path.abspath(state), iteration, [], batches)
        for layer in self.net_model.active_layers(NetState("TRAIN")):
            if not layer.is_data:
                continue
            params = layer.source_params
            if layer.type not in POSITIONED or params is None:
                resume.unmatched.append(
                    (layer.name, f"a {layer.type} layer: its batches are not those of the run")
                )
            elif str(params.get("shuffle", "false")) == "true":
                resume.unmatched.append(
                    (layer.name, "shuffles its source: its batches are not those of the run")
                )
            elif str(params.get("rand_skip", "0")) != "0":
                resume.unmatched.append(
                    (layer.name, "skips a random number of records first (rand_skip)")
                )
            elif batches:
                resume.layers.append(layer.name)
        self.resume = resume

    def write_inline(self, workdir: str) -> None:
        """The inline nets written out in ``workdir`` (read before it was claimed, they were
        named relative to it), and their paths made those files'."""
        n = self.inline_tests
        for parsed in ("net_model", "test_models"):  # they name the files they come from
            self.__dict__.pop(parsed, None)
        if self.inline:
            self.net = os.path.join(workdir, self.net)
        self.test_nets[:n] = [(os.path.join(workdir, p), text) for p, text in self.test_nets[:n]]
        with writing() as out:
            for path, text in [(self.net, self.net_text)] * self.inline + self.test_nets[:n]:
                out.text(path, text)

    @property
    def inline_paths(self) -> List[str]:
        """Where hunt writes out the solver's inline nets (the train net's, the test nets')."""
        return list(self._inline_nodes())

    def _inline_nodes(self) -> Dict[str, Node]:
        paths = [p for p, _ in self.test_nets[: self.inline_tests]]
        nodes = self.doc.find_all(_TEST_INLINE)
        if self.inline:
            paths.append(self.net)
            nodes.append(next(n for n in map(self.doc.find, _INLINE_NETS) if n is not None))
        return dict(zip(paths, nodes))

    def solver_with_nets(self, texts: Dict[str, str]) -> str:
        """The solver's text with each inline net that ``texts`` names (by the path hunt
        writes it out to) holding that text instead: a fix's edit of an inline net is an edit
        of the solver file, and every other byte stays the user's."""
        text = self.solver_text
        spans = []
        for path, node in self._inline_nodes().items():
            if path in texts:
                brace = next(t for t in node.items if getattr(t, "text", None) == "{")
                start = brace.offset + len(brace.text) + len(brace.post)
                body = "".join(dump(child) for child in node.children)
                # The written-out net is the body less its first newlines, plus a last one.
                kept = body[: len(body) - len(body.lstrip("\n"))]
                new = texts[path][:-1] if texts[path].endswith("\n") else texts[path]
                spans.append((start, start + len(body), kept + new))
        for start, end, body in sorted(spans, reverse=True):
            text = text[:start] + body + text[end:]
        return text

    def number(self, name: str) -> Optional[float]:
        """The solver's setting ``name`` as a finite number, or None."""
        value = value_of(self.doc, name, FLOAT)
        return value if value is not None and math.isfinite(value) else None

    def has(self, name: str) -> bool:
        return setting(self.doc, name) is not None

    @cached_property
    def test_models(self) -> List[Net]:
        """The nets whose TEST phase the solver tests (an inline one by hunt's written-out path):
        its own test nets, else the train net where the solver tests at all."""
        if self.test_nets:
            return [Net.parse(text, path) for path, text in self.test_nets]
        return [self.net_model] if self.doc.find_all("test_iter") else []

    @property
    def user_files(self) -> List[str]:
        """The user's own files that Caffe parses: the solver and the net files it names."""
        return [self.solver] + (
            [self.net]
            if self.net_field in ("net", "train_net")
            and setting(self.doc, self.net_field) is not None
            else []
        )

    @cached_property
    def net_model(self) -> Net:
        """The train net, parsed (to read; a fix edits a tree of its own, :meth:`net_to_edit`)."""
        return Net.parse(self.net_text, self.net)

    def net_to_edit(self, path: str) -> Net:
        """A new tree of the train net, or of the test net at ``path``, for a fix to change."""
        text = self.net_text if path == self.net else dict(self.test_nets)[path]
        return Net.parse(text, path)

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
        """max_iter (what is left of it after a resumed state's iteration), at most MAX_ITERS."""
        start = self.resume.iteration if self.resume is not None else 0
        left = (self.number("max_iter") or 0) - start
        return int(min(left, MAX_ITERS)) if left > 0 else NO_MAX_ITER


def read_inputs(solver: str, workdir: str) -> Inputs:
    """Read ``solver`` and its train net (``net``, ``train_net``, or an inline ``net_param``,
    named relative to ``workdir``, where :meth:`Inputs.write_inline` writes it).

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
            return Inputs(
                solver,
                text,
                net,
                read_text(net, "net"),
                name,
                doc,
                test_nets=_test_nets(doc, workdir),
                inline_tests=len(doc.find_all(_TEST_INLINE)),
            )
    for name, field_name in zip(_INLINE_NETS, _NET_FIELDS):
        node = doc.find(name)
        if node is not None:
            net = os.path.join(workdir, "inline_net.prototxt")
            return Inputs(
                solver,
                text,
                net,
                _inline(node),
                field_name,
                doc,
                inline=True,
                test_nets=_test_nets(doc, workdir),
                inline_tests=len(doc.find_all(_TEST_INLINE)),
            )
    raise HuntError(
        f"{solver}: names no train net (net, train_net or net_param); is it a solver prototxt?"
    )


def _inline(node: Node) -> str:
    """An inline net's text (the block's body) as a net file holds it."""
    return "".join(dump(child) for child in node.children).lstrip("\n") + "\n"


def _test_nets(doc: Document, workdir: str) -> List[Tuple[str, str]]:
    """The solver's test nets in the order Caffe builds them (and matches test_iter to)."""
    nets = [
        (os.path.join(workdir, f"inline_test_net_{i}.prototxt"), _inline(node))
        for i, node in enumerate(doc.find_all(_TEST_INLINE))
    ]
    for node in doc.find_all(_TEST_FILES):
        path = str(node.value)
        if not os.path.exists(path):
            raise HuntError(_not_found(doc.path, node.line, _TEST_FILES, path))
        nets.append((path, read_text(path, "net")))
    return nets


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


def _checked(text: str, path: str):
    return inject_text(
        text, path, each=True, options=CheckOptions(max_abs=CHECK_MAX_ABS), upgrade=True
    )


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
    #: The snapshot the training starts from, where it resumes.
    resume: Optional[Resume] = None


def make_copies(
    inputs: Inputs,
    folder: str,
    *,
    net_text: Optional[str] = None,
    test_texts: Optional[Dict[str, str]] = None,
    solver_fields: Optional[Dict[str, str]] = None,
    changes: Optional[List[str]] = None,
) -> Copies:
    """Checked copies of the net (a check after every blob and every in-place modifier, overflow
    to FLT_MAX counted) and of the solver (debug_info every iteration, the copy's net, snapshots
    into ``folder``), with ``solver_fields`` set and ``net_text`` instead of the user's net for
    a fix; likewise the solver's own test nets, ``test_texts`` (path -> text) for a fix."""
    os.makedirs(folder, exist_ok=True)
    checked = _checked(net_text if net_text is not None else inputs.net_text, inputs.net)
    tests = [
        (
            os.path.join(folder, f"test_net_{i}.prototxt"),
            _checked((test_texts or {}).get(path, text), path),
        )
        for i, (path, text) in enumerate(inputs.test_nets)
    ]
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
        drop=[f for f in _NET_FIELDS + _INLINE_NETS if f != which]
        + [_TEST_FILES, _TEST_INLINE] * bool(tests),
    )
    # Caffe numbers the test nets (and matches test_iter to them) in this order.
    solver_text += "\n" * (bool(tests) and not solver_text.endswith("\n")) + "".join(
        f'{_TEST_FILES}: "{escape(os.path.abspath(p))}"\n' for p, _ in tests
    )
    copies = Copies(folder, solver_copy, net_copy, list(changes or []), resume=inputs.resume)
    try:
        with writing() as out:
            # Every net Caffe builds from the copies (each test net is hunt's copy too) reads
            # private copies of its LevelDBs.
            for path, text in [(net_copy, checked.text)] + [(p, t.text) for p, t in tests]:
                out.text(path, _privately(parse(text, path), copies) or text)
            out.text(solver_copy, solver_text)
    except BaseException:
        remove_copies(copies.stores)
        raise
    return copies


def _privately(doc: Document, copies: Copies) -> Optional[str]:
    """``doc`` (a net) reading private copies of its LevelDBs; None when it reads none."""
    try:
        return dump(doc) if private_sources(doc, copies.folder, copies.stores) else None
    except OSError as e:
        raise no_room(e, copies.folder) from None
