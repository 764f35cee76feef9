"""``inject`` CheckFiniteLayers after chosen blobs of a net, and ``remove`` them again.

The user's file stays as it was apart from the inserted layers: each one is a block of lines of
its own, marked with a comment, in the file's indentation and quote style; ``remove`` deletes
exactly those blocks, so inject + remove gives the original bytes back.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from caffe_nantools import arguments, jsontext
from caffe_nantools.checking import check_value, parse_param_str
from caffe_nantools.errors import EXIT_OK, NanToolsError, NonFiniteError, literal
from caffe_nantools.files import FileEdit, read_text, refuse_overlaps, stage_backup, writing
from caffe_nantools.prototxt import (
    NET_FILES,
    CaffeRejectsError,
    Document,
    Layer,
    Net,
    Node,
    Rule,
    Style,
    collector_paused,
    dump,
    indentation,
    inline_nets,
    is_added,
    parse,
    rules_of_any,
    undo,
    upgrade_v1,
    validate,
)
from caffe_nantools.solver_edits import SolverEdit, added_by_debug_info, enable_debug_info
from caffe_nantools.templates import check_layer, escape

CHECK_PREFIX = "nancheck/"


def check_place(label: str) -> Tuple[str, Optional[str]]:
    """(blob, layer the check follows) from a check layer's name, ``nancheck/BLOB@LAYER``
    (``nancheck/BLOB``: no layer). Caffe's log lines name a layer and nothing more, so they are
    read this way; a NonFiniteError carries both as fields (``blob``, ``writer``)."""
    name = label[len(CHECK_PREFIX) :] if label.startswith(CHECK_PREFIX) else label
    blob, _, after = name.rpartition("@")
    return (blob, after) if blob else (name, None)


def error_place(error: NonFiniteError) -> Tuple[str, Optional[str]]:
    """(blob, layer after which the check sits) of a check's error."""
    if error.writer is not None:
        return error.blob, error.writer
    # A check at a net input, or one injected by an older version (no writer in its
    # param_str, none in its record): only its name says where it sits.
    return check_place(error.layer)


class InjectError(NanToolsError):
    """A net that inject cannot edit as asked; the message says why and what to do."""


@dataclass(frozen=True)
class CheckOptions:
    """What the inserted layers do on a bad blob (see CheckFiniteLayer's param_str)."""

    on: Optional[str] = None
    max_abs: Optional[float] = None
    every: Optional[int] = None

    def __post_init__(self) -> None:
        # Refused here as the layer would refuse them at set-up (and before str() of a huge int fails).
        for key in ("on", "max_abs", "every"):
            if getattr(self, key) is not None:
                check_value(key, getattr(self, key))

    def param_str(self, name: str, blob: str, writer: Optional[str] = None) -> str:
        pairs = {
            "name": name,
            "blobs": blob,
            "writer": writer,
            "on": self.on,
            "max_abs": self.max_abs,
            "every": self.every,
        }
        pairs = {k: v for k, v in pairs.items() if v is not None}
        if all(re.fullmatch(r"[^\s;,=\"'{}\[\]]+", str(v)) for v in pairs.values()):
            return " ".join(
                f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in pairs.items()
            )
        # Names with separators or quotes in them need the JSON form.
        return json.dumps({k: [v] if k == "blobs" else v for k, v in pairs.items()})


@dataclass(frozen=True)
class PlannedCheck:
    """One check layer to insert: on ``blob``, after layer ``after`` (None: before the first
    layer, for a net input), existing in the states that ``rules`` allow."""

    blob: str
    name: str
    after: Optional[Layer]
    rules: Tuple[str, ...] = ()


@dataclass
class InjectResult(FileEdit):
    """The edited net and what was done to it."""

    added: List[PlannedCheck] = field(default_factory=list)
    already_checked: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    upgraded: List[str] = field(default_factory=list)
    #: The solver fields holding the nets that were edited (net_param, ...); empty for a net file.
    inline_nets: List[str] = field(default_factory=list)


def select_blobs(net: Net, specs: Sequence[str]) -> List[str]:
    """The blob names that ``specs`` select, in net order.

    A spec is a blob name, a glob (``conv*``), a regex (``re:conv[0-9]+``, matched against the
    whole name), ``type:Convolution`` (the tops of layers of that type), ``all``, ``loss`` (the
    bottoms of loss layers) or ``data`` (the net inputs and the tops of data layers).

    Raises:
        InjectError: a spec that matches no blob; the message lists the blobs there are.
    """
    return _select([net], specs)[0]


def _select(nets: Sequence[Net], specs: Sequence[str]) -> List[List[str]]:
    """The blobs ``specs`` select in each of ``nets`` (a solver's inline nets): a spec has to
    match in one of them, not in each (a TEST net has no loss)."""
    chosen: List[Dict[str, None]] = [{} for _ in nets]
    for spec in specs:
        matches = [_matching(net, spec) for net in nets]
        if not any(matches):
            raise _unmatched(nets, spec)
        for blobs, matched in zip(chosen, matches):
            blobs.update(dict.fromkeys(matched))
    selected = []
    for net, blobs in zip(nets, chosen):
        names = net.blob_names()
        known = set(names)
        selected.append([n for n in names if n in blobs] + [n for n in blobs if n not in known])
    return selected


def _matching(net: Net, spec: str) -> List[str]:
    names = net.blob_names()
    if spec == "all":
        return names
    if spec == "loss":
        return [b for layer in net.layers if layer.is_loss for b in layer.bottoms]
    if spec == "data":
        return net.inputs + [t for layer in net.layers if layer.is_data for t in layer.tops]
    if spec.startswith("type:"):
        wanted = spec[len("type:") :]
        return [
            t
            for layer in net.layers
            if wanted in (layer.type, layer.node.get("type"))
            for t in layer.tops
        ]
    if spec.startswith("re:"):
        try:
            pattern = re.compile(spec[len("re:") :])
        except re.error as e:
            raise _about_blobs(spec, f"not a regular expression ({e})") from None
        return [n for n in names if pattern.fullmatch(n)]
    if any(c in spec for c in "*?["):
        return fnmatch.filter(names, spec)
    return [spec] if spec in names else []


def _unmatched(nets: Sequence[Net], spec: str) -> InjectError:
    """Why ``spec`` matches nothing: for a keyword, that the nets have no such layer (a list of
    their blobs would not help); else what there is to choose from."""
    if spec == "loss":
        return _about_blobs(
            spec,
            "the net has no loss layer (a deploy net?): check its output blobs by name, or inject into the train net",
        )
    if spec == "data":
        return _about_blobs(spec, "the net has no data layer and no inputs")
    layers = [layer for net in nets for layer in net.layers if not is_check(layer)]
    if spec.startswith("type:"):
        types = sorted({layer.type for layer in layers})
        wanted = spec[len("type:") :]
        return _about_blobs(
            spec, f"no layer of type {wanted!r} (types in the net: {', '.join(types)})"
        )
    names = list(dict.fromkeys(n for net in nets for n in net.blob_names()))
    shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
    return _about_blobs(spec, f"no such blob in the net (blobs: {shown})")


def _about_blobs(spec: str, message: str) -> InjectError:
    return InjectError("{blobs}: " + literal(message), arguments={"blobs": spec})


def is_check(layer: Layer) -> bool:
    """A CheckFiniteLayer that inject added, exactly as it wrote it."""
    return (
        layer.type == "Python"
        and is_added(layer.node)
        and dump(layer.node).lstrip() == written_by_inject(layer.node)
    )


def written_by_inject(node: Node) -> Optional[str]:
    """What inject writes for a marked node with ``node``'s values (from its first token on, as
    ``dump`` gives it): a check layer in the node's own indentation, quotes and line breaks, or
    a solver line; None for a node inject never adds."""
    if not node.is_message:
        return added_by_debug_info(node)
    if node.name != "layer":
        return None
    children = node.children
    base = indentation(node)
    inner = indentation(children[0]) if children else ""
    indent = inner[len(base) :] if inner.startswith(base) and len(inner) > len(base) else "  "
    kind = node.find("type")
    quote = (
        kind.raw_values[0][0]
        if kind is not None and kind.raw_values and kind.raw_values[0][0] in "'\""
        else '"'
    )
    params = node.find("python_param")
    snippet = check_layer(
        name=str(node.get("name", "")),
        blob=str(node.get("bottom", "")),
        param_str=str(params.get("param_str", "")) if params is not None else "",
        rules=tuple(
            _rule_text(r.name, Rule.from_node(r))
            for r in children
            if r.name in ("include", "exclude")
        ),
    )
    newline = "\r\n" if node.items[0].pre.endswith("\r\n" + base) else "\n"
    return Style(newline, indent, quote).block(snippet, base)[len(newline + base) :]


def _rule_text(kind: str, rule: Rule) -> str:
    fields = []
    if rule.phase is not None:
        fields.append(f"phase: {rule.phase}")
    if rule.min_level is not None:
        fields.append(f"min_level: {rule.min_level}")
    if rule.max_level is not None:
        fields.append(f"max_level: {rule.max_level}")
    fields += [f'stage: "{escape(s)}"' for s in rule.stages]
    fields += [f'not_stage: "{escape(s)}"' for s in rule.not_stages]
    return f"{kind} {{ {' '.join(fields)} }}"


def rules_for(producers: Sequence[Layer], blob: str) -> Tuple[str, ...]:
    """Include/exclude rules under which a check of ``blob`` exists exactly when one of its
    producers does, so the net still builds in every phase and stage."""
    rules = rules_of_any(producers)
    if rules is None:
        names = ", ".join(p.name for p in producers)
        raise InjectError(
            literal(f"blob {blob!r} comes from several layers ({names})")
            + " whose include/exclude rules cannot be combined into one; check it with {each}, which follows each producer's own "
            "rules",
            arguments={"each": True},
        )
    return tuple(dict.fromkeys(_rule_text(kind, rule) for kind, rule in rules))


@dataclass
class Plan:
    """The checks to insert, the ones already there, and blobs left out with the reason."""

    checks: List[PlannedCheck] = field(default_factory=list)
    already_there: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def plan_checks(net: Net, blobs: Sequence[str], *, each: bool = False) -> Plan:
    """Where the checks of ``blobs`` go.

    By default one check per blob, after its last in-place modifier that comes before its first
    reader (so it sees the value the next layer reads). With ``each``, a check after the
    producer and after every in-place modifier, each under that layer's own rules.

    A loss top (a loss layer's first top, or any top with a loss_weight) is left out: under an
    in-place check Caffe no longer sees it as the net's loss, so no layer would need backward
    and nothing would learn (with an explicit weight it even splits the blob, "produced by
    multiple sources"). The loss value is in Caffe's log anyway, and its inputs are checked.
    """
    histories = net.histories()
    existing = {layer.name for layer in net.layers}
    plan = Plan()
    for blob in blobs:
        history = histories[blob]
        writers = [w for w in history.writers if not is_check(w)]
        weighted = [w.name for w in writers if w.carries_loss(blob)]
        if weighted:
            plan.skipped.append(
                f"{blob} (the loss of {', '.join(weighted)}: a check in place would stop Caffe's "
                "backward; its value is in the log)"
            )
            continue
        readers = [r for r in history.readers if not is_check(r)]
        if each:
            spots = [(w, f"{CHECK_PREFIX}{blob}@{w.name}", rules_for([w], blob)) for w in writers]
            if history.net_input:
                spots.insert(0, (None, f"{CHECK_PREFIX}{blob}@input", ()))
        else:
            first_read = min(
                (r.index for r in readers if writers and r.index > writers[0].index), default=None
            )
            before_read = [w for w in writers if first_read is None or w.index < first_read]
            after = before_read[-1] if before_read else None
            spots = [
                (
                    after,
                    f"{CHECK_PREFIX}{blob}",
                    () if history.net_input else rules_for(history.producers, blob),
                )
            ]
        for after, name, rules in spots:
            if name in existing:
                plan.already_there.append(name)
            else:
                plan.checks.append(PlannedCheck(blob, name, after, rules))
    return plan


V1_MESSAGE = (
    "this is an old V1 net ('layers {{ }}' with enum types such as {example}), which cannot "
    "hold Python layers; upgrade it with Caffe's upgrade_net_proto_text, or pass {{upgrade}}"
)


def inject_text(
    text: str,
    path: str = "<string>",
    *,
    blobs: Sequence[str] = ("all",),
    each: bool = False,
    options: CheckOptions = CheckOptions(),
    upgrade: bool = False,
) -> InjectResult:
    """Insert check layers after the blobs that ``blobs`` selects (see :func:`select_blobs`).

    ``text`` is a net, or a solver whose nets are inline (``net_param``, ``train_net_param``,
    ``test_net_param``): each of those gets its checks, and a spec has to match in one of them.
    Injecting into a net that already has the checks adds nothing. An old V1 net is refused,
    or with ``upgrade`` first rewritten in today's format (remove then gives the upgraded net).

    Raises:
        ParseError: the text is not a prototxt.
        InjectError: a V1 net, an unknown blob, rules that cannot be combined, or a solver
            whose nets are files.
        UpgradeError: a V1 net that ``upgrade`` cannot rewrite.
    """
    with collector_paused():
        return _inject_text(text, path, blobs, each, options, upgrade)


def _inject_text(
    text: str, path: str, blobs: Sequence[str], each: bool, options: CheckOptions, upgrade: bool
) -> InjectResult:
    result = InjectResult(path, text, text)
    doc = parse(text, path)
    nets = _nets(doc, path)
    if upgrade and any(net.v1 for net in nets):
        text, result.upgraded = upgrade_v1(text, path)
        doc = parse(text, path)
        nets = _nets(doc, path)
    for net in nets:
        if net.v1:
            first = next(layer for layer in net.layers if layer.v1)
            raise InjectError(
                f"{literal(path)}:{first.node.line}:{first.node.col}: "
                + V1_MESSAGE.format(example=literal(first.node.get("type", "CONVOLUTION"))),
                arguments={"upgrade": True},
            )
    style = Style.of(doc, text)
    for net, chosen in zip(nets, _select(nets, blobs)):
        planned = plan_checks(net, chosen, each=each)
        _insert_checks(net, planned.checks, style, options, path)
        result.added += planned.checks
        result.already_checked += planned.already_there
        result.skipped += planned.skipped
    result.inline_nets = [net.doc.name for net in nets if isinstance(net.doc, Node)]
    result.text = dump(doc)
    return result


def _nets(doc: Document, path: str) -> List[Net]:
    """The net of a net file, or the inline nets of a solver (``net_param``,
    ``train_net_param``, ``test_net_param``); a solver that names its net files says which."""
    inline = inline_nets(doc)
    if inline:
        return [Net(node, path) for node in inline]
    files = [n for n in doc.children if n.name in NET_FILES and not n.is_message]
    if files and not any(n.name in ("layer", "layers") for n in doc.children):
        named = ", ".join(f"{n.name}: {' '.join(n.raw_values)}" for n in files)
        raise InjectError(
            f"{literal(path)}: this is a solver; its nets are files ({literal(named)}): inject "
            "into the net file and give this solver as {solver:name}",
            arguments={"solver": path},
        )
    return [Net(doc)]


def _insert_checks(
    net: Net, checks: Sequence[PlannedCheck], style: Style, options: CheckOptions, path: str
) -> None:
    """Put the check layers into ``net``'s tree: each after its layer (a net input's before the
    first layer), in the indentation of the layer it follows."""
    first_layer = net.layers[0].node
    blocks = []
    for check in checks:
        anchor = check.after.node if check.after is not None else first_layer
        snippet = check_layer(
            name=check.name,
            blob=check.blob,
            param_str=options.param_str(
                check.name, check.blob, check.after.name if check.after is not None else None
            ),
            rules=check.rules,
        )
        blocks.append(style.block(snippet, _layer_indentation(net, anchor, style)))
    # One parse for all the new layers, then one pass to put them in place.
    after: Dict[int, List[Node]] = {}
    before: Dict[int, List[Node]] = {}
    # Every value in the blocks is escaped, so they parse; the path names the user's file all the same.
    for check, node in zip(checks, parse("".join(blocks), path).children):
        if check.after is not None:
            after.setdefault(id(check.after.node), []).append(node)
        else:  # a net input: checked before the first layer
            before.setdefault(id(first_layer), []).append(node)
    net.doc.splice(after, before)


def _layer_indentation(net: Net, anchor: Node, style: Style) -> str:
    """The indentation of a layer put next to ``anchor``: the anchor's, or one level inside an
    inline net written on one line with its layers."""
    if isinstance(net.doc, Document) or "\n" in anchor.items[0].pre:
        return indentation(anchor)
    return indentation(net.doc) + style.indent


def remove_text(text: str, path: str = "<string>") -> Tuple[str, List[str]]:
    """Undo what inject did to a net or a solver: take out the added check layers (in a
    solver's inline nets too) and lines, and restore changed values; returns
    ``(text, what was undone)``.

    Raises:
        ParseError: the text is not a prototxt.
        EditError: a block or line marked as inject's that is not what inject wrote (the user
            edited it, or wrote it with the mark): ``path:line`` and what differs.
    """
    doc = parse(text, path)
    undone = undo(doc, written_by_inject, inside=inline_nets(doc))
    return dump(doc), undone


@dataclass
class InjectReport:
    """What :func:`inject` did (or, with ``dry_run``, would do): the edits, the files written and
    the backups made. ``net_output`` and ``solver_output`` name where the edits go."""

    net: InjectResult
    net_output: str
    solver: Optional[SolverEdit] = None
    solver_output: Optional[str] = None
    dry_run: bool = False
    written: List[str] = field(default_factory=list)
    backups: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    return_code = EXIT_OK

    def format(self) -> str:
        """A line per file: the check layers added, the solver's changes."""
        net = self.net
        verb = "would add" if self.dry_run else "added"
        line = f"{self.net_output}: {verb} {len(net.added)} check layers"
        if net.already_checked:
            line += f" ({len(net.already_checked)} already there)"
        lines = [line]
        if self.solver is not None:
            changes = "; ".join(self.solver.changes) or "nothing to change"
            lines.append(f"{self.solver_output or self.net_output}: {changes}")
        return "".join(f"{line}\n" for line in lines)

    def diff(self) -> str:
        """The edits as a unified diff (the solver's apart where it is a file of its own)."""
        text = self.net.diff(self.net_output)
        if self.solver is not None and self.solver.path != self.net.path:
            text += self.solver.diff(self.solver_output)
        return text

    def messages(self) -> List[str]:
        """What the user should know besides: upgrades, warnings, blobs not checked, backups."""
        net = self.net
        found = [
            f"note: upgraded {len(net.upgraded)} V1 layers to today's format; remove gives back "
            "the upgraded net"
        ] * bool(net.upgraded)
        found += [f"warning: {w}" for w in (self.solver.warnings if self.solver else [])]
        found += [f"note: not checked: {'; '.join(net.skipped)}"] * bool(net.skipped)
        found += [f"note: {note}" for note in self.notes]
        return found + [f"kept the original as {path}" for path in self.backups]

    def to_json(self) -> str:
        return (
            jsontext.dumps(
                {
                    "net": self.net_output,
                    "added": [check.name for check in self.net.added],
                    "already_checked": self.net.already_checked,
                    "skipped": self.net.skipped,
                    "upgraded": self.net.upgraded,
                    "solver": self.solver_output if self.solver is not None else None,
                    "solver_changes": self.solver.changes if self.solver is not None else [],
                    "dry_run": self.dry_run,
                    "written": self.written,
                    "backups": self.backups,
                    "notes": self.messages(),
                }
            )
            + "\n"
        )


def _check_with_caffe(
    original: str, edited: str, path: str, message: str, notes: List[str]
) -> None:
    """Have Caffe's own parser read the edited text, where pycaffe is installed."""
    try:
        if not validate(original, path, message):
            return
    except CaffeRejectsError as e:
        notes.append(f"not checked against Caffe's schema, which rejects the original too ({e})")
        return
    try:
        validate(edited, path, message)
    except CaffeRejectsError as e:
        raise InjectError(
            f"{e}, after the edit (a bug in caffe-nantools); nothing was written"
        ) from None


def _targets(
    source: str, output: Optional[str], *, in_place: bool, dry_run: bool, option: str
) -> Optional[str]:
    """Where the edit of ``source`` goes (None for a dry run), after the checks of the
    arguments; ``option`` names the argument that gives ``output``."""
    arguments = {option: output, "in_place": True, "dry_run": True}  # as they are, or as advised
    if in_place and output:
        raise InjectError("{%s} and {in_place} exclude each other" % option, arguments=arguments)
    if dry_run:
        return None
    if in_place:
        return source
    if not output:
        raise InjectError(
            f"{literal(source)}: say where the result goes: "
            "{%s:name}, {in_place} or {dry_run}" % option,
            arguments=arguments,
        )
    return output


def inject(
    net: str,
    output: Optional[str] = None,
    *,
    blobs: Sequence[str] = ("all",),
    each: bool = False,
    on: Optional[str] = None,
    max_abs: Optional[float] = None,
    every: Optional[int] = None,
    solver: Optional[str] = None,
    solver_output: Optional[str] = None,
    net_path: Optional[str] = None,
    display: Optional[int] = None,
    in_place: bool = False,
    dry_run: bool = False,
    upgrade: bool = False,
) -> InjectReport:
    """``caffe-nantools inject``: add check layers to the net file ``net``, write the result to
    ``output`` (or back to ``net`` with ``in_place``, keeping ``net.orig``), and optionally turn
    on debug_info in ``solver``. Nothing is written when anything fails or with ``dry_run``.

    ``net`` may be a solver whose nets are inline (``net_param``, ``train_net_param``,
    ``test_net_param``): the checks go into each of them and debug_info (and ``display``) into
    the same file, so ``solver``, ``solver_output`` and ``net_path`` have no use there.

    Raises:
        NanToolsError: bad flags, unreadable files, parse errors, unknown blobs, V1 nets, an
            edit Caffe would reject (each a one-line message).
    """
    net, output = arguments.path("net", net), arguments.path("output", output, optional=True)
    solver = arguments.path("solver", solver, optional=True)
    solver_output = arguments.path("solver_output", solver_output, optional=True)
    net_path = arguments.path("net_path", net_path, optional=True)
    blobs = arguments.names("blobs", blobs)
    max_abs = arguments.positive("max_abs", max_abs, optional=True)
    every = arguments.whole("every", every, optional=True)
    display = arguments.whole("display", display, 0, optional=True)
    each, upgrade = arguments.flag("each", each), arguments.flag("upgrade", upgrade)
    in_place, dry_run = arguments.flag("in_place", in_place), arguments.flag("dry_run", dry_run)
    options = _check_options(on, max_abs, every)
    net_target = _targets(net, output, in_place=in_place, dry_run=dry_run, option="output")
    report = InjectReport(
        inject_text(read_text(net), net, blobs=blobs, each=each, options=options, upgrade=upgrade),
        net_output=output or net,
        solver_output=solver_output or solver,
        dry_run=dry_run,
    )
    solver_flags = dict(solver=solver, solver_output=solver_output, net_path=net_path)
    solver_target = None
    if report.net.inline_nets:
        _inline_debug_info(report, net, display, solver_flags)
    else:
        solver_target = _solver_target(solver_flags, display, in_place=in_place, dry_run=dry_run)
    if net_target is not None and not in_place:
        _refuse_overlaps(net, net_target, solver, solver_target)
    plan = _plan(report, (net, net_target), (solver, solver_target), net_path, display)
    _write(plan, report, backups=in_place)
    return report


def _check_options(
    on: Optional[str], max_abs: Optional[float], every: Optional[int]
) -> CheckOptions:
    """The check layers' options, refused now where the layer would refuse them at set-up."""
    options = CheckOptions(on=on, max_abs=max_abs, every=every)
    if options.on is not None or options.max_abs is not None or options.every is not None:
        parse_param_str(options.param_str("x", "x"))
    return options


def _solver_target(
    solver_flags: Dict[str, Optional[str]], display: Optional[int], *, in_place: bool, dry_run: bool
) -> Optional[str]:
    """Where the edit of the solver file goes (None: there is none, or a dry run), after the
    checks of the flags that are about it (``solver_flags`` with ``display``)."""
    solver, solver_output = solver_flags["solver"], solver_flags["solver_output"]
    if solver is None:
        if solver_output or solver_flags["net_path"] is not None or display is not None:
            raise InjectError(
                "{solver_output:name}, {net_path:name} and {display:name} need {solver:name}",
                arguments=dict(solver_flags, display=display),
            )
        return None
    return _targets(
        solver, solver_output, in_place=in_place, dry_run=dry_run, option="solver_output"
    )


def _refuse_overlaps(
    net: str, net_target: str, solver: Optional[str], solver_target: Optional[str]
) -> None:
    """No output may be an input (nor both outputs one file)."""
    solver_pair = [("solver", solver)] if solver is not None else []
    refuse_overlaps(
        [("net", net)] + solver_pair,
        [("output", net_target)] + [("solver_output", solver_target)] * bool(solver_pair),
    )


def _plan(
    report: InjectReport,
    net: Tuple[str, Optional[str]],
    solver: Tuple[Optional[str], Optional[str]],
    net_path: Optional[str],
    display: Optional[int],
) -> List[Tuple[str, Optional[str], str, str]]:
    """What :func:`_write` writes, from the ``(source, target)`` of the net and of the solver:
    the net's edit in ``report`` and, with a solver, its edit (made here), each read back by
    Caffe's parser first."""
    (net_file, net_target), (solver_file, solver_target) = net, solver
    message = "SolverParameter" if report.net.inline_nets else "NetParameter"
    _check_with_caffe(report.net.original, report.net.text, net_file, message, report.notes)
    plan = [(net_file, net_target, report.net.original, report.net.text)]
    if solver_file is not None:
        edit = enable_debug_info(
            read_text(solver_file), solver_file, net_path=net_path, display=display
        )
        _check_with_caffe(edit.original, edit.text, solver_file, "SolverParameter", report.notes)
        report.solver = edit
        plan.append((solver_file, solver_target, edit.original, edit.text))
    return plan


def _inline_debug_info(
    report: InjectReport, path: str, display: Optional[int], solver_flags: Dict[str, object]
) -> None:
    """debug_info (and ``display``) in the solver ``path`` whose inline nets got the checks:
    ``report.solver`` is that edit, and ``report.net.text`` the whole file with both."""
    if any(value is not None for value in solver_flags.values()):
        raise InjectError(
            f"{literal(path)}: this solver holds its nets ({', '.join(report.net.inline_nets)}), so "
            "the checks and debug_info both go into it; leave out {solver:name}, "
            "{solver_output:name} and {net_path:name}",
            arguments=solver_flags,
        )
    report.solver = enable_debug_info(report.net.text, path, display=display)
    report.net.text = report.solver.text


def _write(plan, report, *, backups: bool) -> None:
    """Write each ``(source, target, old, new)`` whose target is set and whose text changed
    where it is edited in place; with ``backups``, keep ``source.orig`` first. All or nothing:
    an output that cannot be written stops the command before any file changes."""
    with writing() as out:
        for source, target, old, new in plan:
            if target is None or (target == source and new == old):
                continue
            if backups and target == source:
                kept = stage_backup(out, source)
                if kept is not None:
                    report.backups.append(kept)
            out.text(target, new)
            report.written.append(target)


@dataclass
class RemovedFile(FileEdit):
    undone: List[str] = field(default_factory=list)


@dataclass
class RemoveReport:
    """What :func:`remove` undid (or, with ``dry_run``, would undo) in each file, and the files
    written; ``output`` is the one file the result goes to, if given."""

    files: List[RemovedFile] = field(default_factory=list)
    output: Optional[str] = None
    dry_run: bool = False
    written: List[str] = field(default_factory=list)
    backups: List[str] = field(default_factory=list)

    return_code = EXIT_OK

    def format(self) -> str:
        """A line per file: what was taken out of it."""
        return "".join(
            f"{self.output or f.path}: {'; '.join(f.undone) or 'nothing of caffe-nantools found'}\n"
            for f in self.files
        )

    def diff(self) -> str:
        return "".join(f.diff(self.output) for f in self.files)

    def messages(self) -> List[str]:
        return [f"kept the original as {path}" for path in self.backups]

    def to_json(self) -> str:
        files = [{"path": f.path, "undone": f.undone} for f in self.files]
        return (
            jsontext.dumps(
                {
                    "files": files,
                    "output": self.output,
                    "dry_run": self.dry_run,
                    "written": self.written,
                    "backups": self.backups,
                }
            )
            + "\n"
        )


def remove(
    paths: Sequence[str],
    output: Optional[str] = None,
    *,
    in_place: bool = False,
    dry_run: bool = False,
) -> RemoveReport:
    """``caffe-nantools remove``: undo inject in net and solver files: the result goes to
    ``output`` (one file) or back into each file with ``in_place`` (keeping ``FILE.orig``, as
    inject does). Nothing is written when any file fails.

    Raises:
        NanToolsError: bad flags, unreadable files, parse errors.
    """
    paths = arguments.paths("paths", paths)
    output = arguments.path("output", output, optional=True)
    in_place, dry_run = arguments.flag("in_place", in_place), arguments.flag("dry_run", dry_run)
    if output and len(paths) != 1:
        raise InjectError(
            "{output} takes one input file; use {in_place} for several",
            arguments={"output": output, "in_place": True},
        )
    report = RemoveReport(output=output, dry_run=dry_run)
    plan = []
    for path in paths:
        target = _targets(path, output, in_place=in_place, dry_run=dry_run, option="output")
        old = read_text(path)
        new, undone = remove_text(old, path)
        report.files.append(RemovedFile(path, old, new, undone))
        plan.append((path, target, old, new))
    if output and not dry_run:
        refuse_overlaps([("paths", path) for path in paths], [("output", output)])
    _write(plan, report, backups=in_place)
    return report
