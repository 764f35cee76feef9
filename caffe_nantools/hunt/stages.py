"""hunt's stages as a pre-commit run shows its hooks: each one's name, how it ended, what it
found in one line and its seconds, in the order they ran (printed as they run with
``progress``); a stage that could not run says why, and so does one that was skipped."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from caffe_nantools.errors import NanToolsError
from caffe_nantools.jsontext import fields_dict

#: How a stage ended: nothing wrong found; something found (the verdict reads it); not run, as
#: asked or as the cause calls for; could not run (its error is the summary); a fix that did
#: not hold.
OK, FOUND, SKIPPED, ERROR, FAILED = "ok", "found", "skipped", "error", "failed"
#: The name column's width in the text form, dots filling it as pre-commit does.
NAME_WIDTH = 16

T = TypeVar("T")
#: A stage's result -> (status, one line, the detail its JSON carries).
Judge = Callable[[Any], Tuple[str, str, Any]]


@dataclass
class Stage:
    name: str
    status: str
    summary: str
    seconds: Optional[float] = None
    #: The stage's own report in JSON terms (lint's findings, the training's figures, the fix).
    detail: Any = None

    def to_dict(self) -> dict:
        return fields_dict(
            self, convert={"seconds": lambda s: round(s, 3) if s is not None else None}
        )

    def format(self) -> str:
        """``lint............ok       0 errors, 0 warnings, 1 notes (0.0 s)``."""
        took = f" ({self.seconds:.1f} s)" if self.seconds is not None else ""
        return f"{self.name:.<{NAME_WIDTH}}{self.status:<9}{self.summary}{took}"


class Stages(List[Stage]):
    """The stages of one hunt, in the order they ran."""

    def __init__(self, progress: bool = False) -> None:
        super().__init__()
        self.progress = progress

    def run(self, name: str, work: Callable[[], T], judge: Judge) -> T:
        """``work()``'s result, its stage recorded as ``judge`` reads it; a NanToolsError is
        recorded as the stage's error and raised on."""
        began = time.time()
        if self.progress:
            print(f"hunt: {name} ...", end="", file=sys.stderr, flush=True)
        try:
            result = work()
        except NanToolsError as e:
            self._add(Stage(name, ERROR, str(e), time.time() - began))
            raise
        status, summary, detail = judge(result)
        self._add(Stage(name, status, summary, time.time() - began, detail))
        return result

    def skip(self, name: str, why: str) -> None:
        self._add(Stage(name, SKIPPED, why))

    def get(self, name: str) -> Optional[Stage]:
        return next((s for s in self if s.name == name), None)

    def _add(self, stage: Stage) -> None:
        self.append(stage)
        if self.progress:
            if stage.seconds is None:  # skipped: no "..." line was started
                print(f"hunt: {stage.name}: {stage.summary}", file=sys.stderr, flush=True)
            else:
                print(f" {stage.status} ({stage.seconds:.1f} s)", file=sys.stderr, flush=True)
