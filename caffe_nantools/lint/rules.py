"""A lint rule: its name, what it checks, and a function that yields what it found.

The rules of a kind are a list (:mod:`~caffe_nantools.lint.net_rules`' ``LAYER_RULES`` and
``NET_RULES``, :mod:`~caffe_nantools.lint.solver_rules`' ``SOLVER_RULES``): adding a rule is
adding its function and its entry. The list's order is the order of findings at one position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

from caffe_nantools.lint.findings import Findings
from caffe_nantools.prototxt import Layer, Node


class SettingProblem(NamedTuple):
    """A finding about the file: at a setting, or at the file's start (``at`` None)."""

    severity: str
    at: Optional[Node]
    message: str
    fix: str


class LayerProblem(NamedTuple):
    """A finding about ``layer``, said as ``"{subject}: {problem}"``: layers with the same
    problem and fix are one finding (:class:`~caffe_nantools.lint.findings.Findings`)."""

    layer: Layer
    severity: str
    subject: str
    problem: str
    fix: str


Problem = Union[SettingProblem, LayerProblem]
#: What a rule's check gives: its problems, none when the rule does not apply.
Found = Iterator[Problem]


@dataclass(frozen=True)
class LayerSeen:
    """A layer as the layer rules see it: the layer that wrote its first bottom (None for an
    input), that bottom's height and width when known, and whether the net is a deploy net
    (its weights come from a caffemodel)."""

    layer: Layer
    source: Optional[Layer]
    size: Optional[Tuple[int, int]]
    deploy: bool


@dataclass(frozen=True)
class Rule:
    """``check`` reads one thing (a :class:`LayerSeen`, a net, a solver) and yields its problems."""

    name: str
    checks: str
    check: Callable[[Any], Found]


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
