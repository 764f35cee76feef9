"""A fix for hunt's verdict, applied to hunt's own copies and shown to work by training the same
iterations again. The user's files are never changed."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from caffe_nantools.cause import Cause, plural
from caffe_nantools.errors import NonFiniteError
from caffe_nantools.files import writing
from caffe_nantools.hunt.abort_rules import fix_net
from caffe_nantools.hunt.inputs import MAX_ITERS, RANDOM_SEED, Inputs, make_copies
from caffe_nantools.hunt.numeric_fixes import compared_strings, layer_edits, python_patches
from caffe_nantools.hunt.python_params import stability_retries
from caffe_nantools.hunt.batches import source_reader
from caffe_nantools.hunt.training import train
from caffe_nantools.jsontext import fields_dict
from caffe_nantools.prototxt import STRING, Layer, Net, NetState, dump, set_param
from caffe_nantools.lint.solver_rules import rate_grows
from caffe_nantools.solver_edits import set_fields
from caffe_nantools.solver_settings import value_of
from caffe_nantools.templates import escape
from caffe_nantools.textdiff import unified

if TYPE_CHECKING:
    from caffe_nantools.diagnose import Diagnosis, Verdict
    from caffe_nantools.scan.contracts import Breach

#: Tries of ever lower rates for exploding gradients, each 10x below the one before.
RATE_TRIES = 3
#: The lines of a Python layer named in the advice.
PATCHES_SHOWN = 3


@dataclass
class Fix:
    """The change, whether the same iterations then stayed finite, and where the fixed copies
    are (``files``: solver, net); ``tries`` lists each rate tried for an explosion."""

    change: str
    verified: bool
    files: Dict[str, str] = field(default_factory=dict)
    tries: List[dict] = field(default_factory=list)
    #: Why a fix was not tried on the failing iterations (they lie past what hunt trains).
    unverified: Optional[str] = None
    iterations: int = 0  # trained to verify it
    #: The random_seed of each training that verified it (the first: the one hunt trained with).
    seeds: List[int] = field(default_factory=list)
    #: The change to the user's own files as a unified diff: their texts with only the fix's
    #: edit (the copies in ``files`` carry hunt's checks and settings besides).
    diff: str = ""
    #: For a hunt from a snapshot, once verified: the command that resumes the user's training
    #: from it with the fix (the user's files with only the fix's edit, written in the workdir).
    resume: Optional[str] = None
    #: What trying it found, for the advice (a Python layer's lines to patch, say).
    advice: List[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        """Whether it was verified, in words."""
        if self.verified:
            seeds = " and ".join(str(s) for s in self.seeds)
            return f"verified: {self.iterations} iterations now stay finite (random_seed {seeds})"
        return self.unverified or "NOT verified: the same iterations still fail"

    def to_dict(self) -> dict:
        return {**fields_dict(self, leave_out=("iterations", "advice")), "state": self.state}


def find_fix(
    inputs: Inputs,
    verdict: Verdict,
    diagnosis: Optional[Diagnosis],
    *,
    iters: int,
    gpu: Optional[int],
    folder: str,
    error: Optional[NonFiniteError] = None,
) -> Optional[Fix]:
    """Try the fix that the verdict's cause calls for; None for causes without one. ``error``:
    the training's first failure (a NaN or an inf tells which edit of a layer to try first)."""
    if verdict.cause == Cause.EXPLODING_GRADIENTS:
        return _lower_rate(inputs, diagnosis, iters=iters, gpu=gpu, folder=folder)
    # The setting an abort's fatal line names comes before a layer's numerics: Caffe stopped
    # on that setting, whatever the layer would compute after it.
    fatal = diagnosis.abort["text"] if diagnosis is not None and diagnosis.abort else None
    if verdict.cause == Cause.CONFIG and fatal is not None:
        fix = _setting_fix(
            inputs, verdict, fatal, diagnosis.log, iters=iters, gpu=gpu, folder=folder
        )
        if fix is not None:
            return fix
    if verdict.cause in (Cause.LAYER_NUMERICS, Cause.CONFIG) and verdict.layer is not None:
        fix = _layer_fix(inputs, verdict, error, iters=iters, gpu=gpu, folder=folder)
        if fix is not None:
            return fix
    if verdict.cause == Cause.LR_POLICY:
        fields = policy_fix(inputs, iters)
        if fields:
            change = ", ".join(f"{name}: {value}" for name, value in fields.items())
            # A failure predicted past the iterations trained is verified through it, where
            # hunt would train that far.
            span = max(iters, (verdict.iteration or 0) + 1)
            if span > MAX_ITERS:
                return Fix(
                    change,
                    False,
                    unverified=f"not verified: the failure at iteration {verdict.iteration} lies "
                    f"past the {MAX_ITERS} iterations hunt trains at most",
                )
            return _verify(
                inputs, os.path.join(folder, "fix"), change, span, gpu, solver_fields=fields
            )
    if verdict.cause == Cause.BAD_INPUT and verdict.breach is not None:
        return _contract_fix(inputs, verdict.breach, iters=iters, gpu=gpu, folder=folder)
    # Only a record the failure is blamed on: a clean copy in the workdir differs from the
    # user's store in more than its records (its place, its permissions), so a run on it that
    # stays finite proves nothing about an abort the records were not shown to cause.
    if verdict.cause == Cause.BAD_INPUT and verdict.record is not None:
        return _clean_source(inputs, verdict, iters=iters, gpu=gpu, folder=folder)
    return None


def policy_fix(inputs: Inputs, iters: int) -> Dict[str, str]:
    """The missing or broken setting of the solver's lr_policy that computes a non-finite rate
    or that Caffe stops on."""
    policy = value_of(inputs.doc, "lr_policy", STRING, "")  # Caffe's default: none
    gamma, power = inputs.number("gamma"), inputs.number("power")
    if policy == "poly" and not inputs.number("max_iter"):
        return {"max_iter": str(iters)}
    if policy == "poly" and power is not None and power != int(power):
        return {"max_iter": str(max(iters, int(inputs.number("max_iter") or 0)))}
    if policy == "step" and not inputs.number("stepsize"):
        return {"stepsize": str(max(1, iters // 3))}
    if policy in ("inv", "sigmoid", "exp") and gamma is None:
        return {"gamma": "0.0001" if policy != "exp" else "0.9999"}
    grows = rate_grows(inputs.doc)
    if grows is not None:
        name, _, decays = grows
        return {name: decays}
    if policy not in ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid"):
        return {"lr_policy": '"fixed"'}
    return {}


def _lower_rate(
    inputs: Inputs, diagnosis: Optional[Diagnosis], *, iters: int, gpu: Optional[int], folder: str
) -> Fix:
    """A lower base_lr with clip_gradients: from the rate the trace calls for (else base_lr / 10),
    10x lower while the re-run still goes non-finite; the largest rate that stayed finite wins."""
    suggested = diagnosis.suggested if diagnosis is not None else {}
    base = inputs.number("base_lr") or 0.01
    rate = suggested.get("base_lr") or base / 10
    clip = suggested.get("clip_gradients") or inputs.number("clip_gradients") or 10.0
    tries: List[dict] = []
    fix = None
    for k in range(RATE_TRIES):
        fields = {"base_lr": f"{rate:g}", "clip_gradients": f"{clip:g}"}
        change = f"base_lr {base:g} -> {rate:g}, clip_gradients: {clip:g}"
        fix = _verify(
            inputs, os.path.join(folder, f"fix-{k + 1}"), change, iters, gpu, solver_fields=fields
        )
        tries.append({"base_lr": rate, "clip_gradients": clip, "finite": fix.verified})
        if fix.verified:
            break
        rate /= 10
    fix.tries = tries
    return fix


def _clean_source(
    inputs: Inputs, verdict: Verdict, *, iters: int, gpu: Optional[int], folder: str
) -> Optional[Fix]:
    """The source without its bad records (``scan --write-clean`` into the workdir), the net's
    copy reading it."""
    return _clean_copy(inputs, verdict.record.source, iters=iters, gpu=gpu, folder=folder)


def _clean_copy(
    inputs: Inputs, source: str, *, iters: int, gpu: Optional[int], folder: str
) -> Optional[Fix]:
    """``source`` as ``scan --write-clean`` copies it into the workdir (without its bad
    records; relabelled or rescaled where it breaks a loss's contract as a whole), the net's
    copy reading it."""
    from caffe_nantools.scan import scan
    from caffe_nantools.scan.judging import mended_rows

    reader, phase, name = source_reader(inputs.net_model, inputs.test_models, source)
    layer = next((l for l in reader.active_layers(NetState(phase)) if l.name == name), None)
    if layer is None or layer.source_params is None:
        return None
    clean = os.path.join(
        os.path.abspath(folder), "clean", os.path.basename(source.rstrip("/")) or "source"
    )
    os.makedirs(os.path.dirname(clean), exist_ok=True)
    # The layer's source as the net reads it: its backend, and what the net expects of its
    # records (a regression target may be negative, a class label may not).
    report = scan(reader, phase=phase, layer=layer.name, write_clean=clean)
    breach = next((b for b in report.breaches if b.transform is not None), None)
    mended = mended_rows(report, breach) if breach is not None else set()
    dropped = len({f.index for f in report.findings if f.index >= 0} - mended)
    damaged = sorted(
        {f.key for f in report.findings if f.index < 0 and f.problem != "contract"}
    )  # a LevelDB's damaged .log
    without = [f"its {plural(dropped, 'bad record')}"] * bool(dropped or not damaged)
    without += [f"what its damaged {name} held" for name in damaged]
    nets, readers = _reading_from(inputs, source, clean)
    whose = " and ".join(f"{name}'s" for name in readers)
    if breach is not None:
        change = f"{whose} source {source} as a copy with {breach.transform.words}"
        change += f", without {' and '.join(without)}" if dropped or damaged else ""
        change += f": {clean}"
    else:
        change = f"{whose} source {source} without {' and '.join(without)}: {clean}"
    fix = _verify(inputs, os.path.join(folder, "fix"), change, iters, gpu, **_edits(inputs, nets))
    return _rescanned(fix, phase, layer.name) if breach is not None else fix


def _reading_from(inputs: Inputs, source: str, clean: str) -> Tuple[Dict[str, Net], List[str]]:
    """Hunt's nets (by path) with every data layer that reads ``source``, in either phase,
    reading ``clean`` instead (a bad record the train phase drops must not reach a test pass),
    and those layers' names."""
    from caffe_nantools.scan.net_sources import sources_from_net

    edited: Dict[str, Net] = {}
    names: List[str] = []
    for model in [inputs.net_model, *inputs.test_models]:
        readers = {
            s.layer
            for phase in ("TRAIN", "TEST")
            for s in sources_from_net(model.path, phase, model)[0]
            if s.name == source
        }
        names += [l.name for l in model.layers if l.name in readers and l.name not in names]
        if not readers:
            continue
        if model.path not in edited:
            edited[model.path] = inputs.net_to_edit(model.path)
        net = edited[model.path]
        for layer in net.layers:
            if layer.name in readers and layer.source_params is not None:
                node = layer.source_params.find("source")
                node.values[0][0].text = f'"{escape(clean)}"'
                del node.values[0][1:]
    return edited, names


def _edits(inputs: Inputs, nets: Dict[str, Net]) -> dict:
    """``make_copies``' arguments for the edited nets (path -> net): the train net's text, the
    test nets' texts (a solver may name one file as both)."""
    edits: dict = {}
    tests = dict(inputs.test_nets)
    for path, net in nets.items():
        if path == inputs.net:
            edits["net_text"] = dump(net.doc)
        if path in tests:
            edits.setdefault("test_texts", {})[path] = dump(net.doc)
    return edits


def _contract_fix(
    inputs: Inputs, breach: Breach, *, iters: int, gpu: Optional[int], folder: str
) -> Optional[Fix]:
    """A source's systematic breach of a loss's contract, fixed as a whole: the net's setting
    (ignore_label, num_output), else a relabelled or rescaled copy of the source; verified by
    training the same iterations again and by a scan of the fixed net's data."""
    if breach.transform is not None:
        return _clean_copy(inputs, breach.source, iters=iters, gpu=gpu, folder=folder)
    if not breach.setting:
        return None
    reader, phase, name = source_reader(inputs.net_model, inputs.test_models, breach.source)
    net = inputs.net_to_edit(reader.path)
    for layer, (field_path, value) in breach.setting.items():
        block, field = field_path.split(".")
        set_param(next(l.node for l in net.layers if l.name == layer), block, field, value)
    fix = _verify(
        inputs,
        os.path.join(folder, "fix"),
        breach.fix,
        iters,
        gpu,
        **_edits(inputs, {reader.path: net}),
    )
    return _rescanned(fix, phase, name)


def _rescanned(fix: Fix, phase: str, layer: Optional[str]) -> Fix:
    """The fix verified only where the fixed net's data keeps every contract too (a silent
    breach trains finite with or without its fix)."""
    from caffe_nantools.scan import scan

    if not fix.verified or layer is None:
        return fix
    left = [
        f
        for f in scan(fix.files["net"], phase=phase, layer=layer).findings
        if f.problem in ("label", "target", "contract")
    ]
    if left:
        fix.verified = False
        fix.unverified = (
            f"NOT verified: the fixed net's data still breaks a contract ({left[0].key}: "
            f"{left[0].detail})"
        )
    return fix


def _setting_fix(
    inputs: Inputs,
    verdict: Verdict,
    fatal: str,
    log: Optional[str],
    *,
    iters: int,
    gpu: Optional[int],
    folder: str,
) -> Optional[Fix]:
    """The net setting that Caffe's fatal line names, changed on hunt's copy of the net
    (``log``: Caffe's, for the shapes it printed before it stopped)."""
    net = inputs.net_to_edit(inputs.net)
    change = fix_net(fatal, verdict.layer, net, log)
    if change is None:
        return None
    return _verify(inputs, os.path.join(folder, "fix"), change, iters, gpu, net_text=dump(net.doc))


def _layer_fix(
    inputs: Inputs,
    verdict: Verdict,
    error: Optional[NonFiniteError],
    *,
    iters: int,
    gpu: Optional[int],
    folder: str,
) -> Optional[Fix]:
    """The edit of the verdict's layer that keeps the iterations finite (tried in order, the
    first that does wins); for a Python layer, the patch to apply to its code, not tried."""
    layer = next(
        (l for l in inputs.net_model.active_layers(NetState("TRAIN")) if l.name == verdict.layer),
        None,
    )
    if layer is not None and layer.type == "Python":
        return _python_fix(inputs, layer, verdict, iters=iters, gpu=gpu, folder=folder)
    # A NaN in the forward pass, not an inf nor a gradient: a value out of the layer's domain.
    nan = error is not None and error.pass_ == "forward" and error.nan > 0
    edits = layer_edits(inputs.net_text, inputs.net, verdict.layer, nan)
    return _first_verified(inputs, edits, iters=iters, gpu=gpu, folder=folder)


def _first_verified(
    inputs: Inputs, edits: Sequence, *, iters: int, gpu: Optional[int], folder: str
) -> Optional[Fix]:
    """The first of ``edits`` (each a change and its net text) that keeps the iterations
    finite, else the last tried; None for no edits."""
    fix = None
    for k, edit in enumerate(edits, 1):
        fix = _verify(
            inputs,
            os.path.join(folder, f"fix-{k}"),
            edit.change,
            iters,
            gpu,
            net_text=edit.net_text,
        )
        if fix.verified:
            break
    return fix


def _python_fix(
    inputs: Inputs, layer: Layer, verdict: Verdict, *, iters: int, gpu: Optional[int], folder: str
) -> Optional[Fix]:
    """A numeric-stability setting of the Python layer's param_str that is off, tried at a safe
    value; where none is, or none keeps the iterations finite, the patch to its code."""
    retries = stability_retries(inputs.net_text, inputs.net, layer.name, compared_strings(layer))
    fix = _first_verified(inputs, retries, iters=iters, gpu=gpu, folder=folder)
    if fix is not None and fix.verified:
        return fix
    tried = (
        [
            f"Python layer {layer.name!r}: its param_str at a safe value did not keep the "
            f"iterations finite (tried: {', '.join(repr(r.param_str) for r in retries)})"
        ]
        if retries
        else []
    )
    patch = _python_patch(layer, verdict)
    if patch is not None:
        patch.advice[:0] = tried
    return patch


def _python_patch(layer: Layer, verdict: Verdict) -> Optional[Fix]:
    """The lines of a Python layer that can go non-finite, as the patch to apply: the code is
    the user's, so hunt neither changes it nor calls the change verified."""
    patches = python_patches(layer, "backward" if verdict.pass_ == "backward" else "forward")
    if not patches:
        return None
    shown = patches[:PATCHES_SHOWN]
    where = f"{shown[0].file}:{', '.join(str(p.line) for p in shown)}"
    return Fix(
        f"patch {where}: {shown[0].remedy}"
        + (f" (and {len(shown) - 1} more lines, in the advice)" if len(shown) > 1 else ""),
        False,
        unverified=f"not verified: a patch to your code in {shown[0].file}, which hunt does "
        "not change; apply it and run hunt again",
        advice=[f"Python layer {layer.name!r}: {p}" for p in shown],
    )


def _verify(
    inputs: Inputs, folder: str, change: str, iters: int, gpu: Optional[int], **edits
) -> Fix:
    """Train the copies with ``edits``, from the seed hunt trained with and, once that stayed
    finite, from another: a fix that only holds for one start is no fix."""
    seed = int(inputs.number("random_seed") or RANDOM_SEED)
    copies = make_copies(inputs, folder, **edits)
    finite = train(copies, iters, gpu=gpu, replay=False).finite
    seeds = [seed]
    if finite:
        other = dict(
            edits, solver_fields={**edits.get("solver_fields", {}), "random_seed": str(seed + 1)}
        )
        again = make_copies(inputs, os.path.join(folder, "another-seed"), **other)
        finite = train(again, iters, gpu=gpu, replay=False).finite
        seeds.append(seed + 1)
    texts = fixed_texts(inputs, **edits)
    resume = None
    if finite and inputs.resume is not None:
        resume = _resume_command(inputs, texts, os.path.join(folder, "resume"))
    return Fix(
        change,
        finite,
        {"solver": copies.solver, "net": copies.net},
        iterations=iters,
        seeds=seeds,
        diff="".join(unified(path, before, after) for path, before, after in texts),
        resume=resume,
    )


def _resume_command(inputs: Inputs, texts: List[Tuple[str, str, str]], folder: str) -> str:
    """The user's files with only the fix's edit, written into ``folder`` (the solver naming
    the nets written beside it), and the command that resumes the training with them."""
    solver_text = texts[0][2]
    written: Dict[str, str] = {}
    os.makedirs(folder, exist_ok=True)
    with writing() as out:
        for path, before, after in texts[1:]:
            if after != before:
                written[path] = os.path.join(folder, os.path.basename(path))
                out.text(written[path], after)
        fields = {}
        if inputs.net in written:
            fields[inputs.net_field] = f'"{escape(written[inputs.net])}"'
        # An inline net's edit is in the solver's text already; the test net files follow
        # the inline ones, as Caffe numbers them.
        files = inputs.test_nets[inputs.inline_tests :]
        tests = [written.get(path, path) for path, _ in files]
        changed_tests = any(path in written for path, _ in files)
        solver_text = set_fields(
            solver_text, inputs.solver, fields, drop=["test_net"] * changed_tests
        )
        if changed_tests:
            solver_text += "".join(f'test_net: "{escape(p)}"\n' for p in tests)
        solver = os.path.join(folder, os.path.basename(inputs.solver))
        out.text(solver, solver_text)
    state = os.path.relpath(inputs.resume.state)
    return f"caffe train -solver {shlex.quote(solver)} -snapshot {shlex.quote(state)}"


def user_diff(inputs: Inputs, **edits) -> str:
    """The fix's edits (as :func:`make_copies` takes them) applied to the user's own texts, as a
    unified diff of each file they change."""
    return "".join(
        unified(path, before, after) for path, before, after in fixed_texts(inputs, **edits)
    )


def fixed_texts(
    inputs: Inputs,
    *,
    net_text: Optional[str] = None,
    test_texts: Optional[Dict[str, str]] = None,
    solver_fields: Optional[Dict[str, str]] = None,
) -> List[Tuple[str, str, str]]:
    """The user's files the fix's edits (as :func:`make_copies` takes them) touch: (path, their
    text, the text with the edit), the solver first. A field the fix sets to the value the
    solver already holds keeps the user's spelling of it (``10.0`` is not rewritten ``10``)."""
    changed = {
        name: value
        for name, value in (solver_fields or {}).items()
        if _number(value) is None or inputs.number(name) != _number(value)
    }
    nets = {} if net_text is None else {inputs.net: net_text}
    for path, text in (test_texts or {}).items():
        nets.setdefault(path, text)  # one file, both nets: diffed once
    inline = inputs.inline_paths
    # An inline net's edit is the solver's: one diff of the file the user has.
    solver = inputs.solver_with_nets({p: t for p, t in nets.items() if p in inline})
    texts = [(inputs.solver, inputs.solver_text, set_fields(solver, inputs.solver, changed))]
    before = {**dict(inputs.test_nets), inputs.net: inputs.net_text}
    texts += [(path, before[path], text) for path, text in nets.items() if path not in inline]
    return texts


def _number(value: str) -> Optional[float]:
    try:
        return float(value)
    except ValueError:
        return None  # a word (lr_policy: "fixed"), never a number's other spelling
