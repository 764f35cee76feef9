"""Running lint's rules: each rule's problems added to the findings, in the rules' order.

A rule (:class:`~caffe_nantools.layertypes.Rule`) of a layer type is in that type's entry of
:mod:`caffe_nantools.layertypes`' table, a rule of the net (``NET_RULES``) or of the solver
(``SOLVER_RULES``) in :mod:`~caffe_nantools.lint.net_rules` and
:mod:`~caffe_nantools.lint.solver_rules`: adding a rule is adding its function and its entry.
The order of the rules is the order of findings at one position.
"""

from __future__ import annotations

from typing import Any, Sequence

from caffe_nantools.layertypes import LayerProblem, Rule
from caffe_nantools.lint.findings import Findings


def run(rules: Sequence[Rule], subject: Any, out: Findings) -> None:
    """Every rule's problems with ``subject``, in the rules' order, added to ``out``."""
    for rule in rules:
        for found in rule.check(subject):
            if isinstance(found, LayerProblem):
                out.add_layer(
                    rule.name,
                    found.severity,
                    found.layer.node,
                    found.layer.name,
                    found.subject,
                    found.problem,
                    found.fix,
                )
            else:
                out.add(rule.name, found.severity, found.at, found.message, found.fix)
