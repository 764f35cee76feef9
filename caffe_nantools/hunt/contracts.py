"""A source that breaks a loss or metric layer's contract as a whole (labels 1..K, a 'void'
label without ignore_label, 0..255 targets, one-hot rows): the verdict names it as one fault
of the data, and its fix transforms (a net setting, or a relabelled or rescaled copy of the
source) rather than dropping what may be most of the records."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from caffe_nantools.cause import Cause
from caffe_nantools.hunt.batches import scanned_records, source_reader
from caffe_nantools.hunt.verdict import bad_records, plural
from caffe_nantools.prototxt import Net, parse

if TYPE_CHECKING:
    from caffe_nantools.hunt.inputs import Inputs
    from caffe_nantools.hunt.training import Training
    from caffe_nantools.hunt.verdict import Verdict
    from caffe_nantools.scan import ScanReport
    from caffe_nantools.scan.contracts import Breach


def blame_breach(
    verdict: Verdict,
    scan: Optional[ScanReport],
    training: Training,
    inputs: Inputs,
    abort_text: str = "",
) -> None:
    """Make the verdict the source's breach where the breach explains the run: it stayed
    finite (Caffe reads past the scores without a word), it failed in the breached layer, or
    Caffe stopped on the breach's own CHECK (``abort_text``: the fatal line)."""
    breaches: List[Breach] = scan.breaches if scan is not None else []
    breach = next((b for b in breaches if _explains(b, verdict, training, abort_text)), None)
    if breach is None:
        return
    _, phase, layer = source_reader(inputs.net_model, inputs.test_models, breach.source)
    verdict.cause = Cause.BAD_INPUT
    verdict.layer = layer or verdict.layer
    verdict.phase = verdict.phase or phase
    verdict.breach = breach
    bad = [f for f in bad_records(scan) if f.source == breach.source]
    if bad:
        held = (
            verdict.record if verdict.record and verdict.record["source"] == breach.source else None
        )
        first = held or {"source": bad[0].source, "key": bad[0].key}
        verdict.record = first
        verdict.records = scanned_records(bad, first)
    what = f"{breach.source}: {breach.what}"
    verdict.evidence.insert(0, f"scan: {what}")
    if training.error is None and not training.aborted:
        verdict.advice = [
            f"the training stayed finite for {plural(training.iterations, 'iteration')}, but the "
            f"data breaks what {breach.bound.name} requires"
        ]
    verdict.advice.insert(
        0,
        f"{what} ({plural(breach.records, 'record')}): one fault of the source, not of those "
        f"records; fix: {breach.fix}",
    )


def _explains(breach: Breach, verdict: Verdict, training: Training, abort_text: str) -> bool:
    blamed = verdict.record["source"] if verdict.record is not None else None
    if verdict.cause == Cause.BAD_INPUT and blamed == breach.source:
        return True  # the failing batch held records of the breaching source
    if training.aborted and training.error is None:
        return bool(breach.bound.aborts) and breach.bound.aborts in abort_text
    if training.error is None:
        return verdict.cause == Cause.NONE
    return verdict.layer == breach.bound.layer  # non-finite in the breached layer


def set_field(net: Net, layer: str, path: str, value: str) -> None:
    """Set ``block.field`` of ``layer`` to ``value`` in hunt's copy of the net (the block made
    where the layer has none)."""
    block, name = path.split(".")
    node = next(l.node for l in net.layers if l.name == layer)
    holder = node.find(block)
    if holder is None:
        node.insert(-1, parse(f"\n  {block} {{ {name}: {value} }}").children[0])
        return
    field = holder.find(name)
    if field is None:
        holder.insert(-1, parse(f" {name}: {value}").children[0])
    else:
        field.values[0][0].text = value
        del field.values[0][1:]
