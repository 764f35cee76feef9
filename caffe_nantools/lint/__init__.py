"""``lint``: static checks of a net and a solver for known causes of NaN."""
from __future__ import annotations

from typing import List, Optional

from caffe_nantools.files import read_text
from caffe_nantools.lint.findings import SEVERITIES, Findings, LintFinding
from caffe_nantools.lint.net_rules import check_net
from caffe_nantools.lint.solver_rules import check_solver
from caffe_nantools.prototxt import parse
from caffe_nantools.prototxt.net import Net


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


__all__ = ["LintFinding", "lint"]
