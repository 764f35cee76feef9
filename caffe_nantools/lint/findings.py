"""A lint finding: which rule, how bad, where (file:line:col), why, and the fix."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional

from caffe_nantools.prototxt.syntax import Node

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class LintFinding:
    rule: str
    severity: str
    file: str
    line: int
    col: int
    message: str
    fix: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.rule}]\n    fix: {self.fix}"


class Findings:
    """Collects findings for one file, placing each at a node (or at the file's start)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: List[LintFinding] = []

    def add(self, rule: str, severity: str, at: Optional[Node], message: str, fix: str) -> None:
        line, col = (at.line, at.col) if at is not None else (1, 1)
        self.items.append(LintFinding(rule, severity, self.path, line, col, message, fix))
