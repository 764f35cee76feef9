"""A Python layer's ``param_str`` read as settings (``eps: 0``, ``eps=0; scale: 2``,
``{'eps': 0}``, ``{"eps": 0}``), and the numeric-stability settings among them that leave its
maths undefined: an eps or a floor at 0, a switch to the stable form (a shift, ``stable``)
that is off. hunt tries each at a safe value on its copies; only the value changes, the rest
of the text stays as the user wrote it."""

from __future__ import annotations

import math
import re
from typing import List, NamedTuple, Optional, Sequence

from caffe_nantools.prototxt import STRING, Net, NetState, dump
from caffe_nantools.templates import escape

#: Key words of a constant that keeps a denominator, a log or a root off 0; undefined at 0 or
#: below (an eps) or at 0 (a floor).
EPS_WORDS = frozenset({"eps", "epsilon", "smooth", "smoothing", "tiny", "delta", "stabilizer"})
FLOOR_WORDS = frozenset({"floor", "min", "minimum", "least", "clamp", "lower"})
#: Key words of a switch to the stable form of a computation (exp after subtracting the max).
SWITCH_WORDS = frozenset({"shift", "stable", "stabilize", "stabilise", "stability", "safe"})
SWITCH_PHRASES = ("subtractmax", "submax", "logsumexp")
#: The values that leave a switch off, and the one that turns each on, in its case.
OFF = {"false": "true", "no": "yes", "off": "on", "0": "1", "none": "", "null": "", "": ""}
#: Values tried for an eps or a floor at 0, smallest first (the least change that keeps it off 0).
SAFE = (1e-6, 1e-3, 1.0)
#: The most values tried for one switch.
SWITCH_TRIES = 3
TRAIN = NetState("TRAIN")

# key: value, key=value, 'key': value, "key": value; a value up to , ; } ] or a space.
_SETTING = re.compile(
    r"""(?<![\w.])(?P<q>["']?)(?P<key>[A-Za-z_][\w-]*)(?P=q)\s*[:=]\s*"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;}\]]+)"""
)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


class Setting(NamedTuple):
    """One ``key: value`` of a param_str; ``start``, ``end``: the value's span (its quotes
    too)."""

    key: str
    value: str
    start: int
    end: int

    @property
    def bare(self) -> str:
        quoted = len(self.value) >= 2 and self.value[0] == self.value[-1] and self.value[0] in "'\""
        return self.value[1:-1] if quoted else self.value

    def written(self, bare: str) -> str:
        """``bare`` quoted as this value is."""
        return self.value[0] + bare + self.value[0] if self.bare != self.value else bare


class Retry(NamedTuple):
    """A value to try for a setting, the param_str with it, and the change in words."""

    change: str
    param_str: str
    net_text: str


def settings(param_str: str) -> List[Setting]:
    """The ``key: value`` settings of ``param_str``, in order."""
    return [
        Setting(m.group("key"), m.group("value"), m.start("value"), m.end("value"))
        for m in _SETTING.finditer(param_str)
    ]


def stability_retries(
    net_text: str, path: str, layer_name: str, compared: Sequence[str] = ()
) -> List[Retry]:
    """The nets with one numeric-stability setting of the Python layer ``layer_name``'s
    param_str at a safe value, in the order to try them. ``compared``: the strings the layer's
    code compares with (``== "max"``), the values a switch of it knows."""
    net = Net.parse(net_text, path)
    layer = next((l for l in net.active_layers(TRAIN) if l.name == layer_name), None)
    params = layer.node.find("python_param") if layer is not None else None
    text = params.field("param_str", STRING) if params is not None else None
    if not text:
        return []
    retries = []
    for setting in settings(text):
        for value in _safe_values(setting, compared):
            new = text[: setting.start] + setting.written(value) + text[setting.end :]
            change = (
                f"Python layer {layer_name!r}: param_str {setting.key} {value} instead of "
                f"{setting.bare or '(empty)'} ({new!r})"
            )
            retries.append(Retry(change, new, _with_param_str(net_text, path, layer_name, new)))
    return retries


def _safe_values(setting: Setting, compared: Sequence[str]) -> List[str]:
    key = setting.key
    words = {w.lower() for w in _WORDS.findall(key)}
    joined = re.sub(r"[\W_]", "", key.lower())
    value = setting.bare
    if words & SWITCH_WORDS or any(p in joined for p in SWITCH_PHRASES):
        if value.lower() not in OFF and _number(value) != 0:
            return []
        known = [c for c in compared if c.lower() not in OFF and c != value]
        on = OFF.get(value.lower()) or ("1" if _number(value) == 0 else "")
        cased = on.upper() if value.isupper() else on.title() if value.istitle() else on
        return list(dict.fromkeys(known + [cased] * bool(on)))[:SWITCH_TRIES]
    number = _number(value)
    if number is None:
        return []
    if (words & EPS_WORDS and number <= 0) or (words & FLOOR_WORDS and number == 0):
        return [f"{s:g}" for s in SAFE]
    return []


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _with_param_str(net_text: str, path: str, layer_name: str, param_str: str) -> str:
    """The net with the layer's param_str replaced, quoted as the user quoted it."""
    net = Net.parse(net_text, path)
    for layer in net.layers:
        if layer.name == layer_name:
            field = layer.node.find("python_param").find("param_str")
            quote = field.values[0][0].text[:1]
            inner = escape(param_str)
            if quote == "'":
                inner = inner.replace('\\"', '"').replace("'", "\\'")
            field.values[0][0].text = quote + inner + quote
            del field.values[0][1:]
    return dump(net.doc)
