"""A lint finding: which rule, how bad, where (file:line:col), which layers, why, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from caffe_nantools.jsontext import fields_dict
from caffe_nantools.prototxt import Node

SEVERITIES = ("error", "warning", "info")
#: How many layers a grouped finding's message names; its ``layer`` field lists them all.
SHOWN_LAYERS = 6


@dataclass(frozen=True)
class LintFinding:
    """One finding. ``layer`` is the layer's name, a tuple of names when one finding stands for
    many layers (a JSON list), or None for a finding about the file (the solver's settings)."""

    rule: str
    severity: str
    file: str
    line: int
    col: int
    message: str
    fix: str
    layer: Union[None, str, Tuple[str, ...]] = None

    @property
    def layers(self) -> Tuple[str, ...]:
        """The names of the layers it is about (empty for a file-level finding)."""
        if self.layer is None:
            return ()
        return (self.layer,) if isinstance(self.layer, str) else self.layer

    def to_dict(self) -> dict:
        return fields_dict(self)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.rule}]\n    fix: {self.fix}"


@dataclass(frozen=True)
class _LayerFinding:
    at: Node
    layer: str
    subject: str


class Findings:
    """Collects findings for one file, placing each at a node (or at the file's start).

    A rule that fires on many layers for one reason gives one finding that lists them: the
    layer findings with the same rule, severity, problem and fix are grouped at the first one.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: List[LintFinding] = []
        self._layers: Dict[Tuple[str, str, str, str], List[_LayerFinding]] = {}

    def add(self, rule: str, severity: str, at: Optional[Node], message: str, fix: str) -> None:
        """A finding about the file as a whole (a setting, not a layer)."""
        line, col = (at.line, at.col) if at is not None else (1, 1)
        self._file.append(LintFinding(rule, severity, self.path, line, col, message, fix))

    def add_layer(
        self, rule: str, severity: str, at: Node, layer: str, subject: str, problem: str, fix: str
    ) -> None:
        """A finding about ``layer``, said as ``"{subject}: {problem}"`` (the subject names the
        layer and what is particular to it; the problem is what layers grouped with it share)."""
        self._layers.setdefault((rule, severity, problem, fix), []).append(
            _LayerFinding(at, layer, subject)
        )

    @property
    def items(self) -> List[LintFinding]:
        found = list(self._file)
        for (rule, severity, problem, fix), group in self._layers.items():
            first = group[0].at
            if len(group) == 1:
                subject, layer = group[0].subject, group[0].layer
            else:
                shown = ", ".join(g.subject for g in group[:SHOWN_LAYERS])
                more = f" and {len(group) - SHOWN_LAYERS} more" if len(group) > SHOWN_LAYERS else ""
                subject, layer = (
                    f"{len(group)} layers ({shown}{more})",
                    tuple(g.layer for g in group),
                )
            found.append(
                LintFinding(
                    rule,
                    severity,
                    self.path,
                    first.line,
                    first.col,
                    f"{subject}: {problem}",
                    fix,
                    layer,
                )
            )
        return found
