"""Caffe's aborts, placed and read: the layer Caffe was setting up or running when it stopped,
and the setting or the records its fatal line names.

Two tables, each the one place a new rule goes:

- ``SOURCE_TYPES``: the layer types whose code is in a source file, for the files whose name is
  not the type's (``batch_norm_layer.cpp`` is ``BatchNorm`` by its name alone);
- ``RULES``: a pattern over the fatal line, the cause it stands for, what it says in words
  (from the net, the log and the scan) and, where a net setting is behind it, the edit of that
  setting that hunt's copies are trained with to verify it.

An abort no rule reads stays ``caffe_abort``: the fatal line and the layer are the answer.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from caffe_nantools.cause import Cause
from caffe_nantools.inject import CHECK_PREFIX, check_place
from caffe_nantools.prototxt import Layer, Net, NetState, Node, parse

if TYPE_CHECKING:
    from caffe_nantools.scan import ScanReport
    from caffe_nantools.scan.report import Finding

#: The layers that read records through Caffe's DataTransformer (transform_param).
TRANSFORMING = ("Data", "ImageData", "WindowData", "AnnotatedData", "MemoryData")
#: Source files whose layer types are not their name in CamelCase; ``None``: every type whose
#: name ends so (``loss_layer.cpp`` is the base of every loss).
SOURCE_TYPES: Dict[str, Tuple[str, ...]] = {
    "data_transformer.cpp": TRANSFORMING,
    "base_data_layer.cpp": TRANSFORMING + ("HDF5Data",),
    "io.cpp": TRANSFORMING,
    "softmax_loss_layer.cpp": ("SoftmaxWithLoss",),
    "conv_layer.cpp": ("Convolution",),
    "deconv_layer.cpp": ("Deconvolution",),
    "base_conv_layer.cpp": ("Convolution", "Deconvolution"),
    "im2col.cpp": ("Convolution", "Deconvolution"),
    "loss_layer.cpp": ("*Loss",),
}
#: glog's ``file.cpp:LINE]`` in a fatal line.
_SOURCE = re.compile(r"([\w.]+\.(?:cpp|hpp|cu|h)):\d+\]")
_VERSUS = re.compile(r"\((-?[\d.e+-]+) vs\. (-?[\d.e+-]+)\)")
_SHAPE = re.compile(r"(\d+)x(\d+)x(\d+)")
TRAIN = NetState("TRAIN")


def layer_types(fatal: str) -> Optional[Tuple[str, ...]]:
    """The layer types whose code the fatal line's source file is, or None for a file of no
    layer (``net.cpp``, ``blob.cpp``)."""
    found = _SOURCE.search(fatal)
    if found is None:
        return None
    name = found.group(1)
    if name in SOURCE_TYPES:
        return SOURCE_TYPES[name]
    stem, dot, _ = name.rpartition(".")
    if not stem.endswith("_layer"):
        return None
    return (stem[: -len("_layer")].replace("_", ""),)  # compared without case: ReLU, LRN


def of_types(layer: Layer, types: Sequence[str]) -> bool:
    kind = layer.type.lower()
    return any(
        kind.endswith(t[1:].lower()) if t.startswith("*") else kind == t.lower() for t in types
    )


def abort_layer(
    nets: Sequence[Tuple[Net, NetState]], fatal: Optional[str], last: Optional[Tuple[str, str]]
) -> Optional[Layer]:
    """The layer Caffe was setting up or running when it stopped: from the log's last layer
    line (``last``: ``setup`` and the layer being created, or a pass and the layer whose
    debug_info line came last) and the fatal line's source file. Where the two disagree (a data
    layer's prefetch thread reads ahead while the main thread runs other layers) the layer of
    the file's type nearest that place wins."""
    types = layer_types(fatal or "")
    for net, state in nets:
        layers = net.active_layers(state)
        at = _position(layers, last)
        if at is None and last is not None:
            continue  # the layer line names a layer of another net
        running = _running(layers, at, last)
        if types is None or (running is not None and of_types(running, types)):
            if running is not None:
                return running
            continue
        typed = [i for i, l in enumerate(layers) if of_types(l, types)]
        if typed:
            where = at if at is not None else 0.0
            return layers[min(typed, key=lambda i: (abs(i - where), i))]
    return None


def _position(layers: List[Layer], last: Optional[Tuple[str, str]]) -> Optional[float]:
    """Where in ``layers`` the last layer line puts Caffe: a layer's index, or halfway after
    one for a check layer (a check sits after the layer whose name it carries)."""
    if last is None:
        return None
    _, name = last
    half = 0.0
    if name.startswith(CHECK_PREFIX):
        name, half = check_place(name)[1], 0.5
    names = [l.name for l in layers]
    return names.index(name) + half if name in names else None


def _running(
    layers: List[Layer], at: Optional[float], last: Optional[Tuple[str, str]]
) -> Optional[Layer]:
    """The layer at work: the one set up, or the next one in the direction of the pass."""
    if at is None or last is None:
        return None
    pass_ = last[0]
    if pass_ == "setup":
        i = at if at == int(at) else None
    elif pass_ == "forward":
        i = math.floor(at) + 1
    else:
        i = math.ceil(at) - 1
    return layers[int(i)] if i is not None and 0 <= i < len(layers) else None


@dataclass
class Abort:
    """What a rule reads: the fatal line, the layer, the net and the scan."""

    fatal: str
    layer: Layer
    net: Net
    scan: Optional[ScanReport] = None
    log: Optional[str] = None
    state: NetState = TRAIN

    def numbers(self) -> Optional[Tuple[float, float]]:
        """The check's ``(a vs. b)``."""
        m = _VERSUS.search(self.fatal)
        return (float(m.group(1)), float(m.group(2))) if m else None

    def producer(self, blob: str) -> Optional[Layer]:
        chain = self.net.chain(blob, self.state)
        return chain[0] if chain else None

    def ancestors(self) -> List[Layer]:
        """The layers whose output reaches this layer's bottoms, nearest first."""
        found: List[Layer] = []
        blobs = list(self.layer.bottoms)
        while blobs:
            for maker in self.net.chain(blobs.pop(), self.state):
                if maker not in found:
                    found.append(maker)
                    blobs += [b for b in maker.bottoms if not maker.in_place(b)]
        return found

    def shape_of(self, blob: str) -> Optional[str]:
        """``blob``'s shape as Caffe's log printed it when it set up the blob's maker."""
        maker = self.producer(blob)
        if maker is None or self.log is None:
            return None
        shapes = _top_shapes(self.log, maker.name)
        i = maker.tops.index(blob)
        return shapes[i] if i < len(shapes) else None

    def source_findings(self) -> Tuple[Optional[str], List[Finding], int]:
        """(the layer's source as the scan names it, the scan's bad records of it, and how
        many records it holds)."""
        params = self.layer.source_params
        if self.scan is None or params is None:
            return None, [], 0
        wanted = os.path.normpath(str(params.get("source", "")))
        source = next((s for s in self.scan.sources if os.path.normpath(s) == wanted), None)
        if source is None:
            return None, [], 0
        seen, bad = set(), []
        for f in self.scan.findings:
            if f.source == source and f.index >= 0 and f.index not in seen:
                seen.add(f.index)
                bad.append(f)
        summary = self.scan.summaries.get(source)
        return source, bad, summary.records if summary is not None else 0


@dataclass
class Reading:
    """What a rule makes of an abort: the cause, the advice, and the records to blame
    (``blame``: the first is the verdict's record; ``listed``: all of them, none blamed for a
    fix, as when every record is so)."""

    cause: Cause
    advice: List[str]
    blame: List[Finding] = field(default_factory=list)
    listed: List[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    """``read`` says what the abort means (None: this rule does not apply after all); ``fix``
    edits the net (a copy, parsed) and says what it changed, or None."""

    pattern: re.Pattern
    read: Callable[[Abort], Optional[Reading]]
    fix: Optional[Callable[[Abort], Optional[str]]] = None


def read_abort(
    fatal: str,
    layer: Optional[Layer],
    net: Net,
    scan: Optional[ScanReport] = None,
    log: Optional[str] = None,
) -> Optional[Tuple[Rule, Reading]]:
    """The first rule that reads this abort, with its reading (``log``: Caffe's, for the
    shapes it printed)."""
    if layer is None:
        return None
    abort = Abort(fatal, layer, net, scan, log)
    for rule in RULES:
        if rule.pattern.search(fatal):
            reading = rule.read(abort)
            if reading is not None:
                return rule, reading
    return None


def fix_net(
    fatal: str, layer_name: Optional[str], net: Net, log: Optional[str] = None
) -> Optional[str]:
    """Edit ``net`` (hunt's copy) as the rule that reads ``fatal`` calls for; the change in
    words, or None when no setting is to change (``log``: Caffe's, for the shapes it
    printed)."""
    layer = next((l for l in net.active_layers(TRAIN) if l.name == layer_name), None)
    found = read_abort(fatal, layer, net, log=log)
    if found is None or found[0].fix is None:
        return None
    return found[0].fix(Abort(fatal, layer, net, log=log))


# The rules, and the edits of the net they verify.


def _batchnorm_rates(abort: Abort) -> Optional[Reading]:
    rates = [p.get("lr_mult", 1) for p in abort.layer.node.find_all("param")]
    return Reading(
        Cause.CONFIG,
        [
            f"BatchNorm {abort.layer.name} gives its statistics (mean, variance, moving-average "
            f"factor) a learning rate (lr_mult {', '.join(f'{r:g}' for r in rates)}): Caffe "
            "computes them itself and refuses one; every param block of a BatchNorm needs "
            "lr_mult: 0 (or leave the param blocks out)"
        ],
    )


def _zero_batchnorm_rates(abort: Abort) -> Optional[str]:
    blocks = abort.layer.node.find_all("param")
    for block in blocks:
        rate = block.find("lr_mult")
        if rate is None:
            _add_field(block, "lr_mult: 0")
        else:
            _set_value(rate, "0")
    return f"{abort.layer.name}: lr_mult: 0 in its {len(blocks)} param blocks"


def _mean_file_shape(abort: Abort) -> Optional[Reading]:
    mean = _mean(abort)
    if mean is None:
        return None
    path, values = mean
    _, bad, _ = abort.source_findings()
    shapes = "x".join(str(d) for d in values.shape)
    seen = f" (the records are {_SHAPE.search(bad[0].detail).group(0)})" if bad else ""
    return Reading(
        Cause.CONFIG,
        [
            f"the mean file {path} of {abort.layer.name} is {shapes}{seen}: Caffe subtracts it "
            "pixel by pixel, so it must have the records' shape; the fix below subtracts its "
            "mean per channel instead (mean_value), or make the mean file from these records "
            "(compute_image_mean)"
        ],
    )


def _mean_values(abort: Abort) -> Optional[str]:
    mean = _mean(abort)
    if mean is None:
        return None
    _, values = mean
    transform = abort.layer.node.find("transform_param")
    means = [f"{float(c.mean()):.6g}" for c in values.reshape(values.shape[0], -1)]
    node = transform.find("mean_file")
    _set_value(node, means[0], name="mean_value")
    for value in reversed(means[1:]):
        _add_field(transform, f"mean_value: {value}", after=node)
    return f"{abort.layer.name}: mean_value {', '.join(means)} (the mean file's, per channel) instead of mean_file"


def _mean(abort: Abort):
    from caffe_nantools.scan.net_sources import read_mean

    transform = abort.layer.node.find("transform_param")
    name = transform.get("mean_file") if transform is not None else None
    if not name:
        return None
    try:  # Caffe opens it from the folder it runs in, as hunt does
        return name, read_mean(str(name))
    except (OSError, ValueError):
        return None


def _records_under_crop(abort: Abort) -> Optional[Reading]:
    source, bad, total = abort.source_findings()
    small = [f for f in bad if "smaller than crop_size" in f.detail or "not " in f.detail]
    if source is None or not small:
        return None
    crop = abort.layer.node.find("transform_param").get("crop_size")
    shapes = sorted({_SHAPE.search(f.detail).group(0) for f in small if _SHAPE.search(f.detail)})
    if len(small) < total:
        return Reading(
            Cause.BAD_INPUT,
            [
                f"{len(small)} of the {total} records of {source} are smaller than "
                f"{abort.layer.name}'s crop_size {crop} ({', '.join(shapes)}; channels x height "
                "x width): Caffe stops on the first it reads; drop them (the fix below), or "
                "resize them to the others' size"
            ],
            blame=small,
        )
    first = _SHAPE.search(small[0].detail)
    channels, height, width = (int(first.group(i)) for i in (1, 2, 3))
    transposed = width in (1, 3, 4) and channels > 4
    why = (
        f"every record of {source} is {channels}x{height}x{width} as Caffe reads it (channels x "
        f"height x width): pictures of {channels}x{height} pixels and {width} channels, written "
        "in the order PIL, OpenCV and skimage give them (height x width x channels); transpose "
        "each to channels first (`img.transpose(2, 0, 1)`) before caffe.io.array_to_datum and "
        "write the store again"
        if transposed
        else f"every record of {source} ({', '.join(shapes)}) is smaller than "
        f"{abort.layer.name}'s crop_size {crop}: a crop_size of at most "
        f"{min(height, width)} fits them"
    )
    return Reading(Cause.BAD_INPUT if transposed else Cause.CONFIG, [why], listed=small)


def _crop_that_fits(abort: Abort) -> Optional[str]:
    reading = _records_under_crop(abort)
    if reading is None or reading.cause != Cause.CONFIG:
        return None
    sizes = [
        min(int(m.group(2)), int(m.group(3)))
        for m in (_SHAPE.search(f.detail) for f in reading.listed)
        if m
    ]
    crop = abort.layer.node.find("transform_param").find("crop_size")
    _set_value(crop, str(min(sizes)))
    return f"{abort.layer.name}: crop_size {min(sizes)} (fits every record)"


def _not_a_datum(abort: Abort) -> Optional[Reading]:
    source, bad, _ = abort.source_findings()
    empty = [f for f in bad if f.problem in ("empty", "not_datum", "decode")]
    if not empty:
        return None
    return Reading(
        Cause.BAD_INPUT,
        [
            f"{source} holds {len(empty)} record(s) with no image in them ({empty[0].key}: "
            f"{empty[0].detail}): Caffe's data layer stops on the first it reads ahead; drop "
            "them (the fix below) or write them again"
        ],
        blame=empty,
    )


def _same_dimension(abort: Abort) -> Optional[Reading]:
    numbers, producer = abort.numbers(), _first_producer(abort)
    if numbers is None or producer is None:
        return None
    made, wanted = (int(n) for n in numbers)
    return Reading(
        Cause.CONFIG,
        [
            f"{abort.layer.name} ({abort.layer.type}) compares {abort.layer.bottoms[0]}, "
            f"{made} values per sample, with {abort.layer.bottoms[1]}, {wanted} per sample: "
            f"{producer.name}'s num_output must be {wanted}"
        ],
    )


def _output_like_target(abort: Abort) -> Optional[str]:
    numbers, producer = abort.numbers(), _first_producer(abort)
    if numbers is None or producer is None:
        return None
    made, wanted = (int(n) for n in numbers)
    outputs = producer.node.find(_OUTPUT_PARAMS[producer.type]).find("num_output")
    if outputs is None or int(outputs.value) != made:
        return None  # more than num_output makes the count (a conv's map): no one setting
    _set_value(outputs, str(wanted))
    return f"{producer.name}: num_output {made} -> {wanted} (as many as {abort.layer.bottoms[1]} holds per sample)"


_OUTPUT_PARAMS = {"InnerProduct": "inner_product_param", "Convolution": "convolution_param"}


def _first_producer(abort: Abort) -> Optional[Layer]:
    if len(abort.layer.bottoms) < 2:
        return None
    producer = abort.producer(abort.layer.bottoms[0])
    return producer if producer is not None and producer.type in _OUTPUT_PARAMS else None


def _labels_per_prediction(abort: Abort) -> Optional[Reading]:
    numbers = abort.numbers()
    if numbers is None or len(abort.layer.bottoms) < 2:
        return None
    predictions, labels = (int(n) for n in numbers)
    label = abort.layer.bottoms[1]
    maker = abort.producer(label)
    if not predictions or labels % predictions:
        return None
    per = labels // predictions
    where = f"{maker.name} ({maker.type})" if maker is not None else label
    return Reading(
        Cause.BAD_INPUT if maker is not None and maker.is_data else Cause.CONFIG,
        [
            f"{abort.layer.name} ({abort.layer.type}) takes one class index per prediction, "
            f"but {where} gives {per} label values for each of its {predictions} predictions: "
            "one-hot (or per-class) labels; store each label as its class index (the argmax of "
            "its one-hot row) and write the data again. No net setting fixes this: the fix is "
            "yours to make in the data"
        ],
    )


def _slice_of_scalar(abort: Abort) -> Optional[Reading]:
    blob = abort.layer.bottoms[0] if abort.layer.bottoms else None
    maker = abort.producer(blob) if blob else None
    if maker is None or not maker.is_data:
        return None
    return Reading(
        Cause.BAD_INPUT,
        [
            f"{abort.layer.name} slices {blob} along an axis it does not have: {maker.name} "
            f"({maker.type}) gives one number per record in {blob}"
            + (
                " (a Datum's label is a single integer); write the targets into an HDF5 source "
                "(HDF5Data, one row of values per record) to slice them"
                if maker.type in TRANSFORMING
                else "; the records must hold a row of values to slice"
            )
        ],
    )


def _unequal_bottoms(abort: Abort) -> Optional[Reading]:
    shapes = [abort.shape_of(b) for b in abort.layer.bottoms]
    joined = " and ".join(f"{b} ({s})" if s else b for b, s in zip(abort.layer.bottoms, shapes))
    stride = _stride(abort)
    return Reading(
        Cause.CONFIG,
        [
            f"{abort.layer.name} ({abort.layer.type}) joins {joined}, which must have the same "
            "shape but at the concat axis: a branch that pools (Caffe rounds a pooled size up) "
            "and upsamples back comes out larger than its input when the input's height or "
            "width does not divide by the strides on the way"
            + (f" ({stride})" if stride > 1 else "")
            + "; give the net such an input, or crop the larger branch (a Crop layer)"
        ],
    )


def _stride(abort: Abort) -> int:
    """The product of the strides of the layers before this one."""
    product = 1
    for layer in abort.ancestors():
        params = layer.node.find(_STRIDED.get(layer.type, ""))
        if params is not None:
            product *= int(params.get("stride", 1))
    return product


_STRIDED = {"Pooling": "pooling_param", "Convolution": "convolution_param"}


def _input_of_stride(abort: Abort) -> Optional[str]:
    """The net's own input (DummyData, Input) rounded up to a multiple of the strides."""
    stride = _stride(abort)
    changed = []
    for layer in abort.ancestors():
        params = layer.node.find(
            {"DummyData": "dummy_data_param", "Input": "input_param"}.get(layer.type, "")
        )
        for shape in params.find_all("shape") if params is not None else ():
            dims = shape.find_all("dim")
            for dim in dims[2:] if stride > 1 and len(dims) == 4 else ():
                size = int(dim.value)
                if size % stride:
                    _set_value(dim, str(size + stride - size % stride))
                    changed.append(f"{size} -> {dim.value}")
            if changed:
                return f"{layer.name}: input height and width {', '.join(changed)} (multiples of the stride {stride} before {abort.layer.name})"
    return None


def _reshape_count(abort: Abort) -> Optional[Reading]:
    blob = abort.layer.bottoms[0] if abort.layer.bottoms else None
    maker = abort.producer(blob) if blob else None
    counts = _RESHAPE_COUNTS.search(abort.fatal)
    if maker is None or counts is None:
        return None
    outputs = maker.node.find(_OUTPUT_PARAMS.get(maker.type, ""))
    num = outputs.get("num_output") if outputs is not None else None
    made = f" (num_output {num})" if num is not None else ""
    wanted = _outputs_for_labels(abort)
    must = (
        f"{maker.name}'s num_output must be {wanted[1]} for {wanted[0]}'s labels"
        if wanted is not None
        else f"{maker.name}'s num_output{made} must be a multiple of the channels the Reshape "
        "asks for (for an RPN's scores, 2 x the anchors: background and object per anchor)"
    )
    return Reading(
        Cause.CONFIG,
        [
            f"{abort.layer.name} (Reshape) splits {blob}, {counts.group(1)} values, by the "
            f"dims it fixes ({counts.group(2)} values each), which do not divide it: {must}"
        ],
    )


_RESHAPE_COUNTS = re.compile(r"bottom count \((\d+)\).*dimensions \((\d+)\)")
#: Losses whose label holds one class index per prediction over the class axis (their
#: softmax_param.axis, 1 by default): the scores hold the label's count times that axis.
_CLASS_LOSSES = ("SoftmaxWithLoss", "InfogainLoss", "MultinomialLogisticLoss")
#: Losses that compare value with value: the scores hold as many as the label.
_VALUE_LOSSES = ("EuclideanLoss", "SigmoidCrossEntropyLoss")


def _outputs_for_labels(abort: Abort) -> Optional[Tuple[str, int]]:
    """(the loss, the num_output of the Reshape's producer) that makes the reshaped scores fit
    the label of the loss reading them, where the label's shape is known (the net declares it
    or Caffe's log printed it) and the Reshape fixes the class axis; None otherwise."""
    counts = _RESHAPE_COUNTS.search(abort.fatal)
    maker = abort.producer(abort.layer.bottoms[0])
    params = abort.layer.node.find("reshape_param")
    outputs = maker.node.find(_OUTPUT_PARAMS.get(maker.type, "")) if maker is not None else None
    num = outputs.get("num_output") if outputs is not None else None
    if counts is None or params is None or not isinstance(num, int) or num <= 0:
        return None
    if params.get("axis", 0) != 0 or params.get("num_axes", -1) != -1:
        return None  # a part of the shape: the label's shape says nothing of the rest
    shape = params.find("shape")
    dims = [int(d) for d in shape.get_all("dim")] if shape is not None else []
    top = abort.layer.tops[0] if abort.layer.tops else None
    loss = next(
        (
            l
            for l in abort.net.active_layers(abort.state)
            if len(l.bottoms) >= 2
            and l.bottoms[0] == top
            and l.type in _CLASS_LOSSES + _VALUE_LOSSES
        ),
        None,
    )
    labels = _count(abort, loss.bottoms[1]) if loss is not None else None
    if labels is None:
        return None
    if loss.type in _CLASS_LOSSES:
        axis = _softmax_axis(loss)
        classes = dims[axis] if 0 <= axis < len(dims) else 0
        if classes <= 0:
            return None  # the class axis is copied or inferred: no one count is right
        labels *= classes
    bottom, fixed = int(counts.group(1)), int(counts.group(2))
    per_output = bottom // num if bottom % num == 0 else 0
    if not per_output or labels % per_output or labels % fixed or labels // per_output == num:
        return None
    return loss.name, labels // per_output


def _softmax_axis(loss: Layer) -> int:
    params = loss.node.find("softmax_param")
    return int(params.get("axis", 1)) if params is not None else 1


def _count(abort: Abort, blob: str) -> Optional[int]:
    """How many values ``blob`` holds: its shape as Caffe's log printed it, else as its
    DummyData or Input layer declares it."""
    printed = abort.shape_of(blob)
    if printed:
        return math.prod(int(d) for d in printed.split())
    maker = abort.producer(blob)
    declared = {"DummyData": "dummy_data_param", "Input": "input_param"}.get(
        maker.type if maker is not None else "", ""
    )
    params = maker.node.find(declared) if declared else None
    shapes = params.find_all("shape") if params is not None else []
    if not shapes:
        return None
    i = maker.tops.index(blob)
    shape = shapes[i] if i < len(shapes) else shapes[0]  # one shape serves every top
    return math.prod(int(d) for d in shape.get_all("dim"))


def _num_output_for_labels(abort: Abort) -> Optional[str]:
    wanted = _outputs_for_labels(abort)
    if wanted is None:
        return None
    loss, outputs = wanted
    maker = abort.producer(abort.layer.bottoms[0])
    node = maker.node.find(_OUTPUT_PARAMS[maker.type]).find("num_output")
    before = node.value
    _set_value(node, str(outputs))
    return (
        f"{maker.name}: num_output {before} -> {outputs} (what {abort.layer.name} must split "
        f"for {loss}'s labels)"
    )


#: Rules in order; the first that reads an abort wins.
RULES: List[Rule] = [
    Rule(
        re.compile(r"Cannot configure batch normalization statistics"),
        _batchnorm_rates,
        _zero_batchnorm_rates,
    ),
    Rule(re.compile(r"data_mean_"), _mean_file_shape, _mean_values),
    Rule(
        re.compile(r"crop_size|height <= datum_height|width <= datum_width"),
        _records_under_crop,
        _crop_that_fits,
    ),
    Rule(re.compile(r"datum_channels|data_transformer\.cpp"), _not_a_datum),
    Rule(
        re.compile(r"Inputs must have the same dimension|inputs must have the same count"),
        _same_dimension,
        _output_like_target,
    ),
    Rule(re.compile(r"Number of labels must match number of predictions"), _labels_per_prediction),
    Rule(re.compile(r"slice_dim out of range|slice_axis_ < num_axes"), _slice_of_scalar),
    Rule(
        re.compile(r"must be divisible by the product of the specified"),
        _reshape_count,
        _num_output_for_labels,
    ),
    Rule(re.compile(r"All inputs must have the same shape"), _unequal_bottoms, _input_of_stride),
]


def _top_shapes(log: str, layer: str) -> List[str]:
    """The ``Top shape`` lines Caffe printed when it set up ``layer`` (the last time)."""
    shapes: List[str] = []
    taking = False
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.rstrip().endswith(f"] Setting up {layer}"):
                    shapes, taking = [], True
                elif taking and "] Top shape: " in line:
                    shapes.append(line.split("] Top shape: ", 1)[1].split(" (")[0].strip())
                elif taking and "Memory required" not in line:
                    taking = False
    except OSError:
        return []
    return shapes


# Edits of hunt's parsed copy that keep the rest of the text as it was.


def _set_value(node: Node, raw: str, *, name: Optional[str] = None) -> None:
    node.values[0][0].text = raw
    del node.values[0][1:]
    if name is not None:
        node.items[0].text = name


def _add_field(parent: Node, text: str, *, after: Optional[Node] = None) -> None:
    """``text`` as a field of ``parent``: after the child ``after``, else first."""
    node = parse(f" {text}").children[0]
    ref = after if after is not None else None
    if ref is None:
        opening = next(i for i, item in enumerate(parent.items) if getattr(item, "text", "") == "{")
        node.items[-1].post = parent.items[opening].post or " "
        parent.insert(0, node)
        return
    node.items[-1].post = ref.items[-1].post or " "
    parent.insert_after(ref, node)
