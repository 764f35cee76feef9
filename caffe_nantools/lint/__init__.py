"""``lint``: static checks of a net and a solver for known causes of NaN."""

from __future__ import annotations

import difflib
import re
from typing import Iterable, List, Optional, Sequence, Tuple

from caffe_nantools import arguments, jsontext
from caffe_nantools.errors import EXIT_FINDINGS, EXIT_OK
from caffe_nantools.files import read_text
from caffe_nantools.lint.findings import SEVERITIES, Findings, LintFinding
from caffe_nantools.lint.net_rules import check_net
from caffe_nantools.lint.solver_rules import check_solver
from caffe_nantools.prototxt import (
    CaffeRejectsError,
    Document,
    Net,
    caffe_pb2,
    parse,
    validate,
)


#: SolverParameter's fields: a file with some of them and no layers is a solver.
SOLVER_FIELDS = frozenset(
    "net net_param train_net test_net train_net_param test_net_param train_state test_state test_iter "
    "test_interval test_compute_loss test_initialization base_lr display average_loss max_iter iter_size "
    "lr_policy gamma power momentum weight_decay regularization_type stepsize stepvalue clip_gradients "
    "snapshot snapshot_prefix snapshot_diff snapshot_format solver_mode device_id random_seed type delta "
    "momentum2 rms_decay debug_info snapshot_after_train solver_type layer_wise_reduce weights "
    # NVIDIA Caffe's
    "larc larc_policy larc_eta local_lr_auto solver_data_type".split()
)


class LintReport(List[LintFinding]):
    """The findings, errors first, then by file and position (a list), with the summary line
    (``str()``) and the exit status the command gives (``return_code``: 1 with an error)."""

    def of(self, severity: str) -> int:
        """How many findings have ``severity``."""
        return sum(1 for f in self if f.severity == severity)

    @property
    def return_code(self) -> int:
        return EXIT_FINDINGS if self.of("error") else EXIT_OK

    def __str__(self) -> str:
        return f"{self.of('error')} errors, {self.of('warning')} warnings, {self.of('info')} notes"

    def format(self) -> str:
        """Each finding (``file:line:col: severity: message [rule]`` and its fix), then the summary."""
        return "".join(f"{f}\n" for f in self) + f"{self}\n"

    def to_json(self) -> str:
        return jsontext.dumps([f.to_dict() for f in self]) + "\n"


def is_solver(path: str) -> bool:
    """Whether the file at ``path`` is a solver: solver settings and no layers. Anything else
    is linted as a net (an empty one is then said to have no layers).

    Raises:
        NanToolsError: an unreadable file, a parse error.
    """
    return _holds_a_solver(parse(read_text(path), path))


def _holds_a_solver(doc: Document) -> bool:
    names = {node.name for node in doc.children}
    return bool(names & SOLVER_FIELDS) and not names & {"layer", "layers", "input"}


def lint(net: Optional[str] = None, solver: Optional[str] = None) -> LintReport:
    """``caffe-nantools lint NET SOLVER``: the findings of a net and a solver (either may be
    None), errors first, then by file and position.

    Raises:
        NanToolsError: unreadable files, parse errors (one line, with the position), a V0 net.
    """
    net = arguments.path("net", net, optional=True)
    solver = arguments.path("solver", solver, optional=True)
    net_text = read_text(net) if net is not None else None
    solver_text = read_text(solver) if solver is not None else None
    net_model = Net.parse(net_text, net) if net is not None else None
    solver_doc = parse(solver_text, solver) if solver is not None else None
    return _sorted(
        lint_models(net_model, solver_doc),
        _caffe_parser(net_text, net, "NetParameter") if net is not None else [],
        _caffe_parser(solver_text, solver, "SolverParameter") if solver is not None else [],
    )


def lint_models(net: Optional[Net] = None, solver: Optional[Document] = None) -> LintReport:
    """:func:`lint` of a net and a solver parsed already (either may be None), by the rules
    alone: Caffe's parser is not asked (importing pycaffe takes seconds)."""
    return _sorted(
        _net_findings(net) if net is not None else [],
        _solver_findings(solver) if solver is not None else [],
    )


def lint_files(paths: Sequence[str]) -> LintReport:
    """``caffe-nantools lint FILE...``: every file linted as what it is (a net or a solver),
    the findings of all, ordered as :func:`lint` orders them."""
    paths = arguments.paths("paths", paths)
    found = []
    for path in paths:
        text = read_text(path)
        doc = parse(text, path)
        solver = _holds_a_solver(doc)
        found.append(_solver_findings(doc) if solver else _net_findings(Net(doc)))
        found.append(_caffe_parser(text, path, "SolverParameter" if solver else "NetParameter"))
    return _sorted(*found)


def _caffe_parser(text: str, path: str, message: str) -> List[LintFinding]:
    """A typo of a field or of a value that the installed Caffe's parser rejects (Caffe stops
    before training), where pycaffe is installed. Only a name close to one Caffe knows is
    said: a fork's own field is unknown to another Caffe, and the fork's parser takes it."""
    try:
        validate(text, path, message)
    except CaffeRejectsError as e:
        meant = _meant(e.reason)
        if meant is not None:
            wrong, right = meant
            return [
                LintFinding(
                    "caffe-typo",
                    "warning",
                    path,
                    e.line,
                    e.col,
                    f"Caffe's parser rejects {wrong!r}: {e.reason} (did you mean {right!r}?)",
                    f"write {right!r}",
                )
            ]
    return []


_UNKNOWN_FIELD = re.compile(r'Message type "caffe\.([\w.]+)" has no field named "(\w+)"')
_UNKNOWN_VALUE = re.compile(r'Enum type "caffe\.([\w.]+)" has no value named (\w+)')


def _meant(reason: str) -> Optional[Tuple[str, str]]:
    """``(wrong, right)`` when the parser's complaint names a field or an enum value close to
    one of the message or enum it names."""
    module = caffe_pb2()
    for pattern, names in ((_UNKNOWN_FIELD, _field_names), (_UNKNOWN_VALUE, _value_names)):
        m = pattern.search(reason)
        if m and module is not None:
            known = names(module, m.group(1))
            close = difflib.get_close_matches(m.group(2), known, n=1, cutoff=0.8)
            if close:
                return m.group(2), close[0]
    return None


def _field_names(module, message: str) -> List[str]:
    found = _attribute(module, message)
    return list(found.DESCRIPTOR.fields_by_name) if found is not None else []


def _value_names(module, enum: str) -> List[str]:
    found = _attribute(module, enum)
    return list(found.keys()) if found is not None else []


def _attribute(module, dotted: str):
    for name in dotted.split("."):
        module = getattr(module, name, None)
    return module


def _net_findings(net: Net) -> List[LintFinding]:
    out = Findings(net.path)
    check_net(net, out)
    return out.items


def _solver_findings(doc: Document) -> List[LintFinding]:
    out = Findings(doc.path)
    check_solver(doc, out)
    return out.items


def _sorted(*found: Iterable[LintFinding]) -> LintReport:
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return LintReport(
        sorted(
            (f for group in found for f in group),
            key=lambda f: (order[f.severity], f.file, f.line, f.col),
        )
    )


__all__ = ["LintFinding", "LintReport", "is_solver", "lint", "lint_files", "lint_models"]
