"""Solver rules: learning-rate policies that compute NaN, rates far too high, a display that
hides the debug trace."""
from __future__ import annotations

from typing import Optional

from caffe_nantools.lint.findings import Findings
from caffe_nantools.prototxt.syntax import Document, Node

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
#: Above these base_lr values a solver type usually diverges (rules of thumb, not Caffe's).
HIGH_LR = {"SGD": 0.1, "Nesterov": 0.1, "AdaGrad": 0.1, "RMSProp": 0.01, "AdaDelta": 10.0, "Adam": 0.01}


def setting(doc: Document, name: str) -> Optional[Node]:
    """The solver's last top-level ``name: value`` field (Caffe keeps the last one)."""
    nodes = [n for n in doc.find_all(name) if not n.is_message]
    return nodes[-1] if nodes else None


def number_of(node: Optional[Node]) -> Optional[float]:
    """A field's value as a number; None when missing or not a number."""
    if node is None:
        return None
    try:
        return float(node.value)
    except (TypeError, ValueError):
        return None


def check_solver(doc: Document, out: Findings) -> None:
    policy_node = setting(doc, "lr_policy")
    policy = str(policy_node.value) if policy_node is not None else "fixed"
    where = policy_node
    gamma, power = number_of(setting(doc, "gamma")), number_of(setting(doc, "power"))
    max_iter, stepsize = number_of(setting(doc, "max_iter")), number_of(setting(doc, "stepsize"))
    if policy not in POLICIES:
        out.add("lr-policy", "error", where, f"lr_policy {policy!r} is not one of Caffe's ({', '.join(POLICIES)})",
                "use one of them; Caffe stops on an unknown policy")
    if policy == "poly":
        if not max_iter:
            out.add("lr-policy", "error", where, "lr_policy poly without max_iter: lr = base_lr * (1 - iter/0)^power is nan from iteration 0",
                    "set max_iter")
        if power is None:
            out.add("lr-policy", "warning", where, "lr_policy poly without power: power is 0, so the rate never decays",
                    "set power (e.g. 0.5 or 1.0)")
    if policy == "step" and not stepsize:
        out.add("lr-policy", "error", where, "lr_policy step without stepsize: iter/0 makes gamma^inf, an lr of 0, inf or nan",
                "set stepsize")
    if policy == "multistep":
        values = [number_of(n) for n in doc.find_all("stepvalue")]
        if not values:
            out.add("lr-policy", "error", where, "lr_policy multistep without stepvalue", "add stepvalue lines in increasing order")
        elif any(b is None or a is None or b <= a for a, b in zip(values, values[1:])):
            out.add("lr-policy", "error", doc.find_all("stepvalue")[0], f"multistep stepvalues are not increasing ({', '.join(str(v) for v in values)})",
                    "list them in increasing order; Caffe moves past a step only once")
    if policy in ("step", "multistep", "inv", "exp", "sigmoid") and gamma is None:
        out.add("lr-policy", "error" if policy in ("inv", "sigmoid") else "warning", where,
                f"lr_policy {policy} without gamma: gamma is 0", "set gamma")
    if policy == "exp" and gamma is not None and gamma > 1:
        out.add("lr-policy", "error", setting(doc, "gamma"), f"lr_policy exp with gamma {gamma:g} > 1: the rate grows exponentially until it is inf",
                "use a gamma below 1 (e.g. 0.9999)")
    type_node = setting(doc, "type") or setting(doc, "solver_type")
    kind = str(type_node.value) if type_node is not None else "SGD"
    kind = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}.get(kind.upper(), kind)
    base_lr = number_of(setting(doc, "base_lr"))
    high = HIGH_LR.get(kind)
    if base_lr is not None and high is not None and base_lr > high:
        out.add("base-lr", "warning", setting(doc, "base_lr"), f"base_lr {base_lr:g} is far above what {kind} usually takes (<= {high:g}): gradients may explode",
                "lower base_lr by 10x, or clip gradients (clip_gradients)")
        if setting(doc, "clip_gradients") is None:
            out.add("no-clip", "info", setting(doc, "base_lr"), "a high base_lr and no clip_gradients", "set clip_gradients (e.g. 10) to bound each update")
    debug = setting(doc, "debug_info")
    display = number_of(setting(doc, "display"))
    if debug is not None and str(debug.value) == "true" and not display:
        out.add("display-hides-debug", "warning", debug, "debug_info is on but display is 0: Caffe prints the trace only on display iterations",
                "set display (e.g. 1 while hunting a NaN)")
