"""The prototxt snippets in ``prototxt_templates/``, filled in with ``$name`` placeholders.

The folder sits at the top of the source tree and inside the package of an installed wheel.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path
from typing import Sequence

_HERE = Path(__file__).resolve().parent


def template_dir() -> Path:
    """The templates folder: packaged in a wheel, or the source checkout's top-level one."""
    packaged = _HERE / "prototxt_templates"
    return packaged if packaged.is_dir() else _HERE.parent / "prototxt_templates"


def render(template: str, /, **values: object) -> str:
    """Fill ``template`` (a file name in the templates folder) with ``values``. A line holding
    nothing but a placeholder whose value is empty is dropped.

    Raises:
        KeyError: a placeholder of the template has no value.
    """
    text = _read(template)
    empty = [key for key, value in values.items() if str(value) == ""]
    lines = [line for line in text.split("\n") if line.strip() not in {f"${k}" for k in empty}]
    return string.Template("\n".join(lines)).substitute({k: str(v) for k, v in values.items()})


@functools.lru_cache(maxsize=None)
def _read(template: str) -> str:
    return (template_dir() / template).read_text(encoding="utf-8")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` escaped for the inside of a double-quoted prototxt string, as protobuf's parser
    reads it back: a string ends on its line, so line breaks and other control characters are
    written as escapes."""
    return "".join(
        _ESCAPES.get(c) or (f"\\{ord(c):03o}" if ord(c) < 32 or ord(c) == 127 else c) for c in text
    )


def check_layer(*, name: str, blob: str, param_str: str, rules: Sequence[str] = ()) -> str:
    """The text of one in-place CheckFiniteLayer on ``blob``, two-space indented, with the
    given include/exclude rule lines."""
    return render(
        "check_layer.prototxt",
        name=escape(name),
        blob=escape(blob),
        param_str=escape(param_str),
        rules="\n".join(f"  {rule}" for rule in rules),
    )
