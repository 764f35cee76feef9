"""The prototxt snippets in ``prototxt_templates/``, filled in with ``$name`` placeholders.

The folder sits at the top of the source tree and inside the package of an installed wheel.
"""
from __future__ import annotations

import string
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def template_dir() -> Path:
    """The templates folder: packaged in a wheel, or the source checkout's top-level one."""
    packaged = _HERE / "prototxt_templates"
    return packaged if packaged.is_dir() else _HERE.parent / "prototxt_templates"


def render(template: str, /, **values: object) -> str:
    """Fill ``template`` (a file name in the templates folder) with ``values``.

    Raises:
        KeyError: a placeholder of the template has no value.
    """
    text = (template_dir() / template).read_text(encoding="utf-8")
    return string.Template(text).substitute({k: str(v) for k, v in values.items()})


def check_layer(*, name: str, blob: str, param_str: str) -> str:
    """The text of one in-place CheckFiniteLayer on ``blob``."""
    return render("check_layer.prototxt", name=name, blob=blob, param_str=param_str)
