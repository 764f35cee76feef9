"""``lint``: static checks of a net and a solver for known causes of NaN."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import read_text
from caffe_nantools.lint.findings import SEVERITIES, Findings, LintFinding
from caffe_nantools.lint.net_rules import check_net
from caffe_nantools.lint.solver_rules import check_solver
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.net import Net


#: SolverParameter's fields: a file with some of them and no layers is a solver.
SOLVER_FIELDS = frozenset(
    "net net_param train_net test_net train_net_param test_net_param train_state test_state test_iter "
    "test_interval test_compute_loss test_initialization base_lr display average_loss max_iter iter_size "
    "lr_policy gamma power momentum weight_decay regularization_type stepsize stepvalue clip_gradients "
    "snapshot snapshot_prefix snapshot_diff snapshot_format solver_mode device_id random_seed type delta "
    "momentum2 rms_decay debug_info snapshot_after_train solver_type layer_wise_reduce weights".split()
)


def net_and_solver(paths: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    """Which of ``paths`` (one or two files) is the net and which the solver: a file with solver
    settings and no layers is a solver; anything else is a net (an empty one is then said to have
    no layers).

    Raises:
        NanToolsError: more than two files, unreadable files, parse errors.
    """
    if len(paths) > 2:
        raise NanToolsError("lint takes a net and/or a solver: at most two files")
    net = solver = None
    for path in paths:
        names = {node.name for node in parse(read_text(path), path).children}
        if names & SOLVER_FIELDS and not names & {"layer", "layers", "input"}:
            solver = path
        else:
            net = path
    return net, solver


def lint(net: Optional[str] = None, solver: Optional[str] = None) -> List[LintFinding]:
    """``caffe-nantools lint NET [SOLVER]``: the findings, errors first, then by position.

    Raises:
        NanToolsError: unreadable files, parse errors (one line, with the position).
    """
    found: List[LintFinding] = []
    if net is not None:
        out = Findings(net)
        check_net(Net.parse(read_text(net), net), out)
        found += out.items
    if solver is not None:
        out = Findings(solver)
        check_solver(parse(read_text(solver), solver), out)
        found += out.items
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: (order[f.severity], f.file, f.line, f.col))


__all__ = ["LintFinding", "lint", "net_and_solver"]
