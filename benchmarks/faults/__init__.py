"""The public fault benchmark of ``hunt``: one small module per case.

A case module (``benchmarks/faults/<name>.py``; names starting with ``_`` are helpers) holds:

- ``SOURCE``: the real report(s) it rebuilds, or the "common causes of NaN" entry it shows;
- ``SUMMARY``: one line, what that source established;
- ``FAILS``: what plain Caffe does with the faulty case: ``"nonfinite"``, ``"abort: TEXT"``
  (TEXT in Caffe's fatal line) or ``"finite"`` (a silent fault, or a healthy run);
- ``build(folder, seed, clean=False) -> str``: writes the net, solver and data into ``folder``
  (the fault's place and values drawn from ``seed``; ``clean``: the twin without the fault) and
  returns the solver's path relative to ``folder``, where hunt runs;
- ``key(seed) -> Key``: the accepted answers.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, List, Optional, Sequence, Tuple

from faults._fixed import Fixed

#: The causes of a case whose run is healthy.
HEALTHY = ("none",)


@dataclass(frozen=True)
class Fix:
    """An accepted fix: a test of the fixed files, and what it accepts in words."""

    text: str
    test: Callable[[Fixed], bool]

    def accepts(self, fixed: Fixed) -> bool:
        try:
            return bool(self.test(fixed))
        except (KeyError, LookupError, ValueError, OSError):
            return False  # the fixed files lack what the fix needs

    def __or__(self, other: Fix) -> Fix:
        return Fix(f"{self.text} or {other.text}", lambda f: self.accepts(f) or other.accepts(f))

    def __and__(self, other: Fix) -> Fix:
        return Fix(f"{self.text} and {other.text}", lambda f: self.accepts(f) and other.accepts(f))


@dataclass(frozen=True)
class Key:
    """The accepted answers of a case. ``layers``: the layers accepted as the place (empty: the
    place is not scored); ``records``: the bad records' keys, exactly (None: not scored);
    ``fixes``: any one of them is right (empty: the fix is not scored)."""

    causes: Tuple[str, ...]
    layers: Tuple[str, ...] = ()
    records: Optional[frozenset] = None
    fixes: Tuple[Fix, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.causes == HEALTHY


@dataclass
class Case:
    name: str
    module: ModuleType
    sources: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        return self.module.SUMMARY

    @property
    def fails(self) -> str:
        return self.module.FAILS

    def build(self, folder: str, seed: int, clean: bool = False) -> str:
        return self.module.build(folder, seed, clean=clean)

    def key(self, seed: int) -> Key:
        return self.module.key(seed)


def cases(names: Sequence[str] = ()) -> List[Case]:
    """The cases in name order (only ``names`` when given).

    Raises:
        ValueError: a name that is no case.
    """
    found = sorted(
        m.name
        for m in pkgutil.iter_modules([os.path.dirname(__file__)])
        if not m.name.startswith("_")
    )
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ValueError(f"no such case: {', '.join(unknown)} (cases: {', '.join(found)})")
    chosen = [n for n in found if not names or n in names]
    out = []
    for name in chosen:
        module = importlib.import_module(f"faults.{name}")
        sources = module.SOURCE if isinstance(module.SOURCE, tuple) else (module.SOURCE,)
        out.append(Case(name, module, sources))
    return out


# Fix predicates, each a test of the fixed files.


def base_lr_at_most(rate: float) -> Fix:
    return Fix(f"base_lr <= {rate:g}", lambda f: f.solver_number("base_lr") <= rate)


def has_clip_gradients() -> Fix:
    return Fix("clip_gradients set", lambda f: f.solver_number("clip_gradients") > 0)


def solver_has(name: str, test: Callable[[float], bool] = lambda v: v > 0, text: str = "") -> Fix:
    return Fix(text or f"{name} set", lambda f: test(f.solver_number(name)))


def solver_string(name: str, allowed: Sequence[str]) -> Fix:
    return Fix(f"{name} one of {', '.join(allowed)}", lambda f: f.solver_string(name) in allowed)


def layer_param(layer: str, path: str, test: Callable, text: str) -> Fix:
    """A test of a layer's field given as a dotted path (``pooling_param.stride``); the test gets
    the values (a list, empty when the field is missing)."""
    return Fix(f"{layer}: {text}", lambda f: test(f.layer_values(layer, path)))


def labels_within(layer: str, low: int, high: int) -> Fix:
    """Every class label that ``layer`` reads lies in low..high, and records are left."""

    def test(f: Fixed) -> bool:
        labels = f.labels(layer)
        return len(labels) > 0 and min(labels) >= low and max(labels) <= high

    return Fix(f"{layer}'s labels in {low}..{high}", test)


def source_without(layer: str, keys: Sequence[str]) -> Fix:
    """``layer``'s source no longer holds ``keys``, and still holds records."""

    def test(f: Fixed) -> bool:
        held = f.keys(layer)
        return bool(held) and not set(keys) & set(held)

    return Fix(f"{layer}'s source without {', '.join(sorted(keys))}", test)
