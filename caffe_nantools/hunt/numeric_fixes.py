"""The changes to a layer that made non-finite values from finite inputs (or to the net setting
that makes them), each a net text for hunt to train, in the order to try them: the first that
stays finite is the fix. The changes of each layer type are its entry's ``edits`` in
:mod:`caffe_nantools.layertypes`. A Python layer's code is the user's: its fix is a setting of its
param_str (``python_params``) where one is off, else a patch to apply, named by module, line,
class and method, never trained.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from typing import List, NamedTuple, Optional

from caffe_nantools.layertypes import Edit, layer_type
from caffe_nantools.prototxt import STRING, Layer, Net, NetState

TRAIN = NetState("TRAIN")


def layer_edits(net_text: str, path: str, layer_name: Optional[str], nan: bool) -> List[Edit]:
    """The edits to try on ``layer_name`` (of the train net), best first; ``nan``: the failure
    was a NaN in the forward pass (a fractional power of a negative base), not an inf or a
    gradient. Empty for a layer whose numbers hunt has no edit for."""
    net = Net.parse(net_text, path)
    layer = next((l for l in net.active_layers(TRAIN) if l.name == layer_name), None)
    if layer is None:
        return []
    edits = layer_type(layer.type).edits
    return edits(net_text, path, layer, nan) if edits is not None else []


class Patch(NamedTuple):
    """A line of a Python layer that computes what can go non-finite, where it is (``where``:
    Class.method), what to change, and the line changed so (``patched``, empty where no one
    rewrite is right)."""

    file: str
    line: int
    code: str
    remedy: str
    where: str = ""
    patched: str = ""

    def __str__(self) -> str:
        patch = f"; patch: `{self.patched}`" if self.patched else ""
        return f"{self.file}:{self.line}: `{self.code}`: {self.remedy} (in {self.where}){patch}"


#: What to change where a Python layer's line divides, or calls a function that is not finite
#: at (or past) some input.
REMEDIES = {
    "divide": "guard the denominator (np.maximum(d, 1e-12), or add an eps), it can be 0",
    "log": "take the log of np.maximum(x, 1e-12), log 0 is -inf",
    "sqrt": "add an eps inside the sqrt, its gradient at 0 is inf",
    "exp": "subtract the maximum before exp (x - x.max(axis, keepdims=True)), exp overflows past 88",
    "power": "keep the base positive (np.maximum(x, 1e-12)) for a fractional or negative power",
}
#: The guarded form of what a line divides by or takes the log or root of (``{np}``: the name
#: the module imports numpy as); exp and power have no one rewrite (the axis, the sign).
GUARDS = {
    "divide": "{np}.maximum({x}, 1e-12)",
    "log": "{np}.maximum({x}, 1e-12)",
    "sqrt": "{x} + 1e-12",
}
_CALLS = {
    "log": "log",
    "log2": "log",
    "log10": "log",
    "sqrt": "sqrt",
    "exp": "exp",
    "power": "power",
    "reciprocal": "divide",
    "divide": "divide",
    "true_divide": "divide",
}


class Source(NamedTuple):
    """A Python layer's module file, its lines, and its class, parsed."""

    path: str
    lines: List[str]
    cls: ast.ClassDef
    numpy: str  # the name the module imports numpy as ("" where it does not)


def python_source(layer: Layer, folder: str = "") -> Optional[Source]:
    """The Python layer's class, found in its module's file (from ``folder``, where Caffe runs,
    then the import path) without running it; None when the file or class is not found."""
    params = layer.node.find("python_param")
    if params is None:
        return None
    module, kind = params.field("module", STRING), params.field("layer", STRING)
    path = _module_file(module or "", folder)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tree = ast.parse(text, path)
    except (OSError, SyntaxError, ValueError):
        return None
    numpy = next(
        (
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
            if a.name == "numpy"
        ),
        "",
    )
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef) and cls.name == kind:
            return Source(path, text.splitlines(), cls, numpy)
    return None


def python_patches(layer: Layer, first: str = "forward", folder: str = "") -> List[Patch]:
    """The lines of the Python layer's class that divide or call log, sqrt, exp or a power,
    those of its ``first`` method (the pass that failed) first; empty when its file is not
    found."""
    source = python_source(layer, folder)
    if source is None:
        return []
    methods = {m.name: m for m in source.cls.body if isinstance(m, ast.FunctionDef)}
    patches: List[Patch] = []
    for name in [first] + [m for m in ("forward", "backward") if m != first]:
        for line, what, operand in _risky_lines(methods.get(name)):
            code = source.lines[line - 1]
            patches.append(
                Patch(
                    source.path,
                    line,
                    code.strip(),
                    REMEDIES[what],
                    f"{source.cls.name}.{name}",
                    _patched(code, what, operand, source.numpy),
                )
            )
    return patches


def compared_strings(layer: Layer, folder: str = "") -> List[str]:
    """The strings the Python layer's class compares with (``== "max"``, ``in ("on", "max")``),
    in order: the values a switch of its param_str knows."""
    source = python_source(layer, folder)
    found: List[str] = []
    for node in ast.walk(source.cls) if source is not None else ():
        if isinstance(node, ast.Compare):
            for side in [node.left] + node.comparators:
                items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                found += [
                    i.value
                    for i in items
                    if isinstance(i, ast.Constant) and isinstance(i.value, str)
                ]
    return list(dict.fromkeys(found))


def _patched(code: str, what: str, operand: Optional[ast.AST], numpy: str) -> str:
    """``code`` (the line) with ``operand`` guarded as ``what`` calls for; empty where the
    operand spans lines or the guard needs numpy the module does not import."""
    guard = GUARDS.get(what)
    if guard is None or operand is None or operand.lineno != operand.end_lineno:
        return ""
    if "{np}" in guard and not numpy:
        return ""
    start, end = operand.col_offset, operand.end_col_offset
    text = code.encode("utf-8")  # ast's columns count bytes
    inner = text[start:end].decode("utf-8")
    if what == "sqrt" and not isinstance(operand, (ast.Name, ast.Attribute, ast.Call)):
        inner = f"({inner})"
    guarded = guard.format(np=numpy, x=inner)
    return (text[:start].decode("utf-8") + guarded + text[end:].decode("utf-8")).strip()


def _module_file(module: str, folder: str) -> Optional[str]:
    """The file ``import module`` would load, looked up without importing it."""
    if not module or not all(p.isidentifier() for p in module.split(".")):
        return None
    local = os.path.join(folder or os.getcwd(), *module.split(".")) + ".py"
    if os.path.isfile(local):
        return local
    if "." in module:
        return None  # a package's find_spec imports its parents
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    return origin if origin and origin.endswith(".py") else None


def _risky_lines(method: Optional[ast.FunctionDef]) -> List[tuple]:
    """(line, what, operand) of each line of ``method`` that divides or calls log, sqrt, exp or
    a power, in order, a line once; ``operand``: what it divides by or calls the function on."""
    found = {}
    for node in ast.walk(method) if method is not None else ():
        what = operand = None
        if (
            isinstance(node, (ast.BinOp, ast.AugAssign))
            and isinstance(node.op, ast.Div)
            and not _never_zero(node.right if isinstance(node, ast.BinOp) else node.value)
        ):
            what = "divide"
            operand = node.right if isinstance(node, ast.BinOp) else node.value
        elif isinstance(node, ast.Call):
            func = node.func
            what = _CALLS.get(
                func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            )
            operand = node.args[0] if len(node.args) == 1 else None
        if what is not None and (node.lineno not in found or what != "divide"):
            found[node.lineno] = (what, operand)  # a call says more than the division on its line
    return [(line, what, operand) for line, (what, operand) in sorted(found.items())]


def _never_zero(denominator: ast.AST) -> bool:
    """A number other than 0, or a count of items (``len(labels)``, ``x.size``): a division by
    it is finite."""
    if isinstance(denominator, ast.Constant):
        return isinstance(denominator.value, (int, float)) and denominator.value != 0
    if isinstance(denominator, ast.Call):
        return getattr(denominator.func, "id", "") == "len"
    return isinstance(denominator, ast.Attribute) and denominator.attr in ("size", "num")
