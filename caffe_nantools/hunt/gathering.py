"""What hunt gathers for its verdict, before judging: how Caffe ended the process and where it
stopped, the rule for its fatal line, the weights' growth in the log, the records the failing
batch read (from the stores), the data layer that reads each source the scan names. The judge
(:func:`caffe_nantools.diagnose.judge`) then only weighs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from caffe_nantools.diagnose import (
    CheckedGrounds,
    RecordRef,
    bad_records,
    fatal_line,
    read_trained,
)
from caffe_nantools.hunt.abort_rules import abort_layer, read_abort
from caffe_nantools.hunt.batches import batch_records, reading_layer, source_reader
from caffe_nantools.hunt.ending import Ending, crash_place, read_ending
from caffe_nantools.inject import error_place
from caffe_nantools.lint.solver_rules import rate_grows, rate_overflows_at
from caffe_nantools.prototxt import Net, NetState

if TYPE_CHECKING:
    from caffe_nantools.diagnose import Diagnosis
    from caffe_nantools.hunt.inputs import Inputs
    from caffe_nantools.hunt.training import Training
    from caffe_nantools.lint import LintFinding
    from caffe_nantools.scan import ScanReport


def gather(
    inputs: Inputs,
    training: Training,
    diagnosis: Optional[Diagnosis],
    scan: Optional[ScanReport],
    findings: Sequence[LintFinding],
    *,
    replay: Optional[str] = None,
    notes: List[str],
) -> CheckedGrounds:
    """The evidence of one hunt (``replay``: the replay bundle, finished); what cannot be read
    for it goes to ``notes``."""
    run = diagnosis.trace if diagnosis is not None else None
    ending = _ending(training, diagnosis, inputs) if training.aborted else None
    fatal = fatal_line(run, ending)
    nets = [inputs.net_model, *(inputs.test_models if inputs.test_nets else [])]
    stopped = _stopped_in(nets, fatal.text if fatal else None, ending) if ending else None
    reading = (
        read_abort(fatal.text, stopped, inputs.net_model, scan, training.log)
        if stopped is not None and fatal is not None
        else None
    )
    reached, note = _reached(inputs, training)
    if note:
        notes.append(note)
    held_by, held, unheld = _held(inputs, training, ending, scan)
    return CheckedGrounds(
        net=inputs.net_model,
        training=training,
        told=diagnosis.verdict if diagnosis is not None else None,
        run=run,
        scan=scan,
        findings=tuple(findings),
        test_nets=tuple(nets[1:]),
        ending=ending,
        crash=crash_place(ending, inputs.net_model) if ending and fatal is None else None,
        stopped_in=stopped.name if stopped is not None else None,
        fatal_reading=reading[1] if reading is not None else None,
        rate_fails_at=rate_overflows_at(inputs.doc),
        rate_grows=rate_grows(inputs.doc),
        trained=read_trained(training.log),
        reached=tuple(reached),
        held=tuple(held),
        held_by=held_by,
        unheld=unheld,
        readers=_readers(inputs, scan),
        replay=replay,
    )


def _ending(training: Training, diagnosis: Optional[Diagnosis], inputs: Inputs) -> Ending:
    """How Caffe ended the training process; the iterations it finished by the child's count,
    else by the log's last displayed one (the copies display every iteration)."""
    iterations = training.iterations
    run = diagnosis.trace if diagnosis is not None else None
    if not iterations and run is not None and run.iterations and run.iterations[-1] is not None:
        iterations = run.iterations[-1] + 1
    abort = diagnosis.abort if diagnosis is not None else None
    return read_ending(
        training.log,
        training.exit_code,
        iterations,
        fatal=abort["text"] if abort is not None else None,
        user_files=inputs.user_files,
    )


def _stopped_in(nets: List[Net], fatal: Optional[str], ending: Ending):
    """The layer Caffe was setting up or running when it stopped (the train net's TRAIN phase,
    then the test nets' TEST phase)."""
    states = [(nets[0], NetState("TRAIN"))] + [(n, NetState("TEST")) for n in nets[1:] or nets[:1]]
    return abort_layer(states, fatal, ending.last_layer)


def _reached(inputs: Inputs, training: Training) -> Tuple[List[RecordRef], Optional[str]]:
    """The records that the failing batch's bad samples were read from, where a data layer's
    check saw them: a test net's layer counts its batches over every test pass (as its check
    does)."""
    error = training.error
    if error is None or error.by == "guard" or error.pass_ != "forward":
        return [], None
    _, layer = error_place(error)
    net, phase = _reading_net(inputs, layer, error.phase)
    data = any(l.name == layer and l.is_data for l in net.active_layers(NetState(phase)))
    if not data:
        return [], None
    # A resumed training's TRAIN layers were advanced before their checks began to count.
    batch = error.iteration + (training.skipped if phase == "TRAIN" else 0)
    return batch_records(net, layer, batch, list(error.bad_samples), phase=phase)


def _reading_net(inputs: Inputs, layer: Optional[str], phase: Optional[str]):
    """(the net, phase) in which ``layer`` reads its batches."""
    if phase == "TEST":
        for net in inputs.test_models:
            if any(l.name == layer for l in net.active_layers(NetState("TEST"))):
                return net, "TEST"
    return inputs.net_model, "TRAIN"


def _held(
    inputs: Inputs, training: Training, ending: Optional[Ending], scan: Optional[ScanReport]
) -> Tuple[Optional[str], List[RecordRef], Optional[str]]:
    """(the data layer, the records the scan found bad that the failing batch read, why that
    batch's records cannot be named): for a failure, or an abort, in a batch that holds records
    the scan found bad (a label past the classes, say)."""
    bad = bad_records(scan)
    if not bad or (training.error is None and ending is None):
        return None, [], None
    iteration = training.iteration if training.error is not None else ending.iterations
    found = {(f.source, f.key) for f in bad}
    net, unnamed = inputs.net_model, None
    # Each source once: one may hold thousands of bad records.
    for layer in dict.fromkeys(reading_layer(net, f.source) for f in bad):
        batch, note = batch_records(net, layer, iteration) if layer else ([], None)
        unnamed = unnamed or note
        held = [r for r in batch if (r.source, r.key) in found]
        if held:
            return layer, held, None
    return None, [], unnamed


def _readers(inputs: Inputs, scan: Optional[ScanReport]) -> Dict[str, Tuple[str, Optional[str]]]:
    """The (phase, data layer) that reads each source the scan names."""
    if scan is None:
        return {}
    sources = dict.fromkeys([f.source for f in scan.findings] + [b.source for b in scan.breaches])
    readers = {}
    for source in sources:
        _, phase, layer = source_reader(inputs.net_model, inputs.test_models, source)
        readers[source] = (phase, layer)
    return readers
