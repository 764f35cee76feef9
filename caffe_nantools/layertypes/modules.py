"""Whether a Python layer's module can be imported, found without importing it: importing runs
the module's code (and its packages' ``__init__``), which lint must never do."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys


def findable(name: str) -> bool:
    """Whether ``import name`` would find a module, looking only at the finders and files.

    ``importlib.util.find_spec`` of a dotted name imports its parents, so only the top-level
    name goes through it (the finders look, nothing runs); each further part is looked up in
    its parent's folders by the path finder.
    """
    parts = name.split(".")
    if not all(part.isidentifier() for part in parts):
        return False
    if name in sys.modules:
        return True
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    for i in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: i + 1]), list(spec.submodule_search_locations)
        )
    return spec is not None
