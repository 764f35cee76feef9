"""A lint rule and what it yields: the shape of the checks each layer type's entry holds (and
the net's and solver's rules in :mod:`caffe_nantools.lint`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional, Tuple, Union

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
