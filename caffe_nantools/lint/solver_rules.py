"""Solver rules: learning-rate policies that compute NaN, rates far too high, a display that
hides the debug trace."""

from __future__ import annotations

import math
from typing import Optional, Tuple

from numpy import errstate, finfo, float32, float64, format_float_positional, isfinite

from caffe_nantools.lint.findings import Findings
from caffe_nantools.layertypes import Found, Rule, SettingProblem
from caffe_nantools.lint.rules import run
from caffe_nantools.prototxt import BOOL, FLOAT, INT32, INT64, STRING, Document, Enum
from caffe_nantools.solver_settings import setting, value_of

SOLVER_TYPES = Enum("SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM")
POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
#: Above these base_lr values a solver type usually diverges (rules of thumb, not Caffe's).
HIGH_LR = {
    "SGD": 0.1,
    "Nesterov": 0.1,
    "AdaGrad": 0.1,
    "RMSProp": 0.01,
    "AdaDelta": 10.0,
    "Adam": 0.01,
}
#: What a gamma of 0 (its default) does to each policy that uses it.
GAMMA_POLICIES = {
    "step": "the rate drops to 0 at the first step",
    "multistep": "the rate drops to 0 at the first step",
    "exp": "the rate is 0 from iteration 1",
    "inv": "the rate never changes",
    "sigmoid": "the rate stays at base_lr / 2",
}
#: NVIDIA Caffe's layer-wise rate control (LARS/LARC): each layer's rate is base_lr times a
#: trust ratio ||w|| / ||grad|| that is far below 1, so base_lr values of 2 to 20 are usual.
LAYER_WISE_RATES = ("larc", "local_lr_auto")
FLT_MAX = float(finfo(float32).max)


def rate_overflows_at(doc: Document) -> Optional[int]:
    """The first iteration at which an ``exp`` policy's rate, base_lr * gamma^iter, is inf as
    Caffe computes it (float settings, a double product stored in a float); None for a rate
    that stays finite."""
    if value_of(doc, "lr_policy", STRING) != "exp":
        return None
    base, gamma = value_of(doc, "base_lr", FLOAT), value_of(doc, "gamma", FLOAT)
    if not base or gamma is None or not 1 < gamma < math.inf:
        return None
    base, gamma = float64(float32(abs(base))), float64(float32(gamma))
    if not isfinite(base) or not isfinite(gamma):
        return None
    # From just below the estimate, exactly: the double product stored in a float is inf.
    at = max(0, int(math.log(FLT_MAX / base) / math.log(gamma)) - 2)
    with errstate(over="ignore"):
        while isfinite(float32(base * gamma**at)):
            at += 1
    return at


def rate_grows(doc: Document) -> Optional[Tuple[str, str, str]]:
    """(setting, what the policy does with it, a value that decays instead) when the solver's
    lr_policy grows the rate over the iterations: ``exp``, ``step`` or ``multistep`` with a
    gamma above 1 multiply it up, ``inv`` with a negative power raises it to a growing power.
    A lower base_lr only delays what such a rate does; the setting is the fault."""
    policy = value_of(doc, "lr_policy", STRING)
    gamma, power = value_of(doc, "gamma", FLOAT), value_of(doc, "power", FLOAT)
    if policy in ("exp", "step", "multistep") and gamma is not None and 1 < gamma < math.inf:
        when = "every iteration" if policy == "exp" else "every step"
        # exp's rate is multiplied at every iteration: a gamma just below 1 decays it gently.
        decays = "0.9999" if policy == "exp" else shortest(1 / gamma)
        return (
            "gamma",
            f"lr_policy {policy} with gamma {gamma:g} > 1 multiplies the rate up {when}",
            decays,
        )
    if policy == "inv" and power is not None and power < 0 and (gamma or 0) > 0:
        return (
            "power",
            f"lr_policy inv with power {power:g} < 0: base_lr * (1 + gamma * iter)^{-power:g} grows "
            "with every iteration",
            shortest(-power),
        )
    return None


def shortest(value: float) -> str:
    """The shortest text that reads back as the same float32."""
    return format_float_positional(float32(value), trim="-")


#: SolverParameter's scalar fields and their types (caffe.proto): a value of another type is
#: bad input (Caffe refuses the file), a NaN or inf in a number is a rate or update of NaN.
FIELD_KINDS = {
    **dict.fromkeys(
        (
            "base_lr",
            "momentum",
            "momentum2",
            "weight_decay",
            "gamma",
            "power",
            "clip_gradients",
            "delta",
            "rms_decay",
        ),
        FLOAT,
    ),
    **dict.fromkeys(
        (
            "display",
            "average_loss",
            "max_iter",
            "iter_size",
            "stepsize",
            "snapshot",
            "device_id",
            "test_interval",
        ),
        INT32,
    ),
    "random_seed": INT64,
    **dict.fromkeys(
        (
            "debug_info",
            "test_compute_loss",
            "test_initialization",
            "snapshot_after_train",
            "snapshot_diff",
        ),
        BOOL,
    ),
    **dict.fromkeys(
        ("net", "train_net", "lr_policy", "snapshot_prefix", "type", "regularization_type"), STRING
    ),
    "solver_mode": Enum("CPU", "GPU"),
    "snapshot_format": Enum("HDF5", "BINARYPROTO"),
    "solver_type": SOLVER_TYPES,
}
#: The solver types Caffe registers, by the name ``type`` takes.
TYPE_NAMES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")


def check_solver(doc: Document, out: Findings) -> None:
    # Every known setting read as its type first: a FieldError for another, before any rule.
    for name, kind in FIELD_KINDS.items():
        value_of(doc, name, kind)
    run(SOLVER_RULES, doc, out)


def _non_finite_setting(doc: Document) -> Found:
    for name, kind in FIELD_KINDS.items():
        value = value_of(doc, name, kind)
        if kind is FLOAT and value is not None and not math.isfinite(value):
            yield SettingProblem(
                "error",
                setting(doc, name),
                f"{name} is {value}: every update computes "
                "with it, so the weights are NaN or inf from the first iteration",
                f"give {name} a finite value",
            )


def _solver_type(doc: Document) -> Found:
    kind = value_of(doc, "type", STRING)
    if kind is not None and kind not in TYPE_NAMES:
        yield SettingProblem(
            "error",
            setting(doc, "type"),
            f"type {kind!r} is not a solver Caffe knows "
            f"({', '.join(TYPE_NAMES)}); Caffe stops at 'Unknown solver type'",
            "use one of them (the case matters)",
        )


def _adam_delta(doc: Document) -> Found:
    if (value_of(doc, "type", STRING) or "").lower() == "adam" and value_of(
        doc, "delta", FLOAT
    ) == 0:
        yield SettingProblem(
            "warning",
            setting(doc, "delta"),
            "Adam with delta 0 divides by sqrt(v), which is 0 "
            "for a weight whose gradient was always 0",
            "keep delta > 0 (Caffe's default 1e-8)",
        )


def _policy(doc: Document) -> str:
    return value_of(doc, "lr_policy", STRING, "fixed")


def _no_policy(doc: Document) -> Found:
    if setting(doc, "lr_policy") is None:
        yield SettingProblem(
            "error",
            None,
            "no lr_policy: Caffe has no default policy, and stops at the first update "
            "(Unknown learning rate policy)",
            'set lr_policy: "fixed" (or "step", "poly", ... with their settings)',
        )


def _unknown_policy(doc: Document) -> Found:
    where, policy = setting(doc, "lr_policy"), _policy(doc)
    if where is not None and policy not in POLICIES:
        yield SettingProblem(
            "error",
            where,
            f"lr_policy {policy!r} is not one of Caffe's ({', '.join(POLICIES)})",
            "use one of them; Caffe stops on an unknown policy",
        )


def _poly_max_iter(doc: Document) -> Found:
    if _policy(doc) == "poly" and not value_of(doc, "max_iter", INT32):
        yield SettingProblem(
            "error",
            setting(doc, "lr_policy"),
            "lr_policy poly without max_iter: lr = base_lr * (1 - iter/0)^power is nan from iteration 0",
            "set max_iter",
        )


def _poly_power(doc: Document) -> Found:
    if _policy(doc) == "poly" and value_of(doc, "power", FLOAT) is None:
        yield SettingProblem(
            "warning",
            setting(doc, "lr_policy"),
            "lr_policy poly without power: power is 0, so the rate never decays",
            "set power (e.g. 0.5 or 1.0)",
        )


def _step_stepsize(doc: Document) -> Found:
    if _policy(doc) == "step" and not value_of(doc, "stepsize", INT32):
        yield SettingProblem(
            "error",
            setting(doc, "lr_policy"),
            "lr_policy step without stepsize: Caffe stops at its check stepsize > 0",
            "set stepsize",
        )


def _multistep_stepvalues(doc: Document) -> Found:
    if _policy(doc) == "multistep" and not doc.fields("stepvalue", INT32):
        yield SettingProblem(
            "warning",
            setting(doc, "lr_policy"),
            "lr_policy multistep without stepvalue: the rate never changes",
            "add stepvalue lines in increasing order",
        )


def _multistep_order(doc: Document) -> Found:
    if _policy(doc) != "multistep":
        return
    values = doc.fields("stepvalue", INT32)
    if any(b <= a for a, b in zip(values, values[1:])):
        yield SettingProblem(
            "warning",
            doc.find_all("stepvalue")[0],
            f"multistep stepvalues are not increasing ({', '.join(str(v) for v in values)}): Caffe takes the "
            "steps in the order written, so a smaller one after a larger is taken late, at once",
            "list them in increasing order",
        )


def _policy_gamma(doc: Document) -> Found:
    policy = _policy(doc)
    if policy in GAMMA_POLICIES and value_of(doc, "gamma", FLOAT) is None:
        yield SettingProblem(
            "warning",
            setting(doc, "lr_policy"),
            f"lr_policy {policy} without gamma: gamma is 0, so {GAMMA_POLICIES[policy]}",
            "set gamma",
        )


def _growing_rate(doc: Document) -> Found:
    grows = rate_grows(doc)
    if grows is not None:
        name, what, decays = grows
        at = rate_overflows_at(doc)
        yield SettingProblem(
            "error",
            setting(doc, name),
            f"{what} until the updates diverge"
            + (f" (the rate is inf at iteration {at})" if at is not None else ""),
            f"use a {name} that decays the rate (e.g. {name}: {decays})",
        )


#: Caffe's solver types by their old ``solver_type`` enum value, upper-cased.
TYPE_BY_UPPER = {name.upper(): name for name in TYPE_NAMES}


def _high_rate(doc: Document) -> Optional[Tuple[str, float, float]]:
    """(the solver type, its base_lr, the most it usually takes) when base_lr is above that and
    no layer-wise rate control scales it down; None otherwise."""
    kind = value_of(doc, "type", STRING) or value_of(doc, "solver_type", SOLVER_TYPES, "SGD")
    kind = TYPE_BY_UPPER.get(kind.upper(), kind)
    base_lr = value_of(doc, "base_lr", FLOAT)
    high = HIGH_LR.get(kind)
    layer_wise = any(value_of(doc, name, BOOL, False) for name in LAYER_WISE_RATES)
    # Caffe reads base_lr as a float32 (pycaffe writes 0.1 as 0.10000000149): compared and shown as one.
    if (
        base_lr is not None
        and high is not None
        and not layer_wise
        and float32(base_lr) > float32(high)
    ):
        return kind, base_lr, high
    return None


def _base_lr(doc: Document) -> Found:
    high_rate = _high_rate(doc)
    if high_rate is not None:
        kind, base_lr, high = high_rate
        yield SettingProblem(
            "warning",
            setting(doc, "base_lr"),
            f"base_lr {shortest(base_lr)} is above what {kind} usually takes (<= {shortest(high)}): gradients may explode",
            "lower base_lr by 10x, or clip gradients (clip_gradients)",
        )


def _no_clip(doc: Document) -> Found:
    if _high_rate(doc) is not None and setting(doc, "clip_gradients") is None:
        yield SettingProblem(
            "info",
            setting(doc, "base_lr"),
            "a high base_lr and no clip_gradients",
            "set clip_gradients (e.g. 10) to bound each update",
        )


def _display_hides_debug(doc: Document) -> Found:
    if value_of(doc, "debug_info", BOOL, False) and not value_of(doc, "display", INT32):
        yield SettingProblem(
            "warning",
            setting(doc, "debug_info"),
            "debug_info is on but display is 0: Caffe prints the trace only on display iterations",
            "set display (e.g. 1 while hunting a NaN)",
        )


#: The rules a solver is checked by; their order is the order of findings at one setting.
SOLVER_RULES = (
    Rule("non-finite-setting", "number settings are finite", _non_finite_setting),
    Rule("solver-type", "type names a solver Caffe registers", _solver_type),
    Rule("adam-delta", "Adam's delta is not 0", _adam_delta),
    Rule("lr-policy", "the solver has an lr_policy", _no_policy),
    Rule("lr-policy", "lr_policy is one of Caffe's", _unknown_policy),
    Rule("lr-policy", "poly has a max_iter", _poly_max_iter),
    Rule("lr-policy", "poly has a power", _poly_power),
    Rule("lr-policy", "step has a stepsize", _step_stepsize),
    Rule("lr-policy", "multistep has stepvalues", _multistep_stepvalues),
    Rule("lr-policy", "multistep's stepvalues increase", _multistep_order),
    Rule("lr-policy", "a policy that uses gamma has one", _policy_gamma),
    Rule("lr-policy", "the policy does not grow the rate", _growing_rate),
    Rule("base-lr", "base_lr is not above what the solver type usually takes", _base_lr),
    Rule("no-clip", "a high base_lr comes with clip_gradients", _no_clip),
    Rule("display-hides-debug", "debug_info comes with a display", _display_hides_debug),
)
