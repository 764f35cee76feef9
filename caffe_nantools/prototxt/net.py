"""A Caffe net on top of the lossless tree: its layers in order, their blobs and phase rules,
and for every blob the layer that produces it and the in-place layers that modify it.

Both layer formats are read: ``layer {}`` with string types and the old V1 ``layers {}`` with
enum types (mapped to today's type names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from caffe_nantools.errors import NanToolsError
from caffe_nantools.prototxt.fields import FLOAT, INT32, PHASE, STRING
from caffe_nantools.prototxt.syntax import Document, Node, parse

PHASES = ("TRAIN", "TEST")
#: The parameter block that names the source of each layer type that reads one.
SOURCE_PARAMS = {
    "Data": "data_param",
    "HDF5Data": "hdf5_data_param",
    "ImageData": "image_data_param",
}

#: V1LayerParameter's LayerType enum and the type names Caffe's upgrade gives them.
V1_TYPES = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}


#: The SolverParameter fields that hold a whole net (a NetParameter) inline, as Caffe's
#: examples/mnist/lenet_consolidated_solver.prototxt does.
INLINE_NETS = ("net_param", "train_net_param", "test_net_param")
#: The SolverParameter fields that name net files.
NET_FILES = ("net", "train_net", "test_net")


def inline_nets(doc: Document) -> List[Node]:
    """A solver's inline nets in file order; none for a net file (its layers are at the top)."""
    if any(node.name in ("layer", "layers") for node in doc.children):
        return []
    return [node for node in doc.children if node.is_message and node.name in INLINE_NETS]


class NetError(NanToolsError):
    """A file that is not a net (it has no layers)."""


@dataclass(frozen=True)
class NetState:
    """Caffe's NetState: the phase, level and stages a net is built for."""

    phase: str = "TRAIN"
    level: int = 0
    stages: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One ``include``/``exclude`` NetStateRule of a layer (``node`` is None for a rule the model
    made rather than read)."""

    node: Optional[Node]
    phase: Optional[str]
    min_level: Optional[int]
    max_level: Optional[int]
    stages: Tuple[str, ...]
    not_stages: Tuple[str, ...]

    @classmethod
    def from_node(cls, node: Node) -> Rule:
        return cls(
            node=node,
            phase=node.field("phase", PHASE),
            min_level=node.field("min_level", INT32),
            max_level=node.field("max_level", INT32),
            stages=tuple(node.fields("stage", STRING)),
            not_stages=tuple(node.fields("not_stage", STRING)),
        )

    @classmethod
    def of_phase(cls, phase: str) -> Rule:
        return cls(None, phase, None, None, (), ())

    @property
    def phase_only(self) -> bool:
        return (
            self.min_level is None
            and self.max_level is None
            and not self.stages
            and not self.not_stages
        )

    def matches(self, state: NetState) -> bool:
        """Caffe's Net::StateMeetsRule."""
        if self.phase is not None and self.phase != state.phase:
            return False
        if self.min_level is not None and state.level < self.min_level:
            return False
        if self.max_level is not None and state.level > self.max_level:
            return False
        if any(stage not in state.stages for stage in self.stages):
            return False
        return not any(stage in state.stages for stage in self.not_stages)


def representative_states(rules: Iterable[Rule], limit: int = 12) -> List[NetState]:
    """States that tell apart every outcome of ``rules``: each phase with each combination of
    the stages they name and each level around their bounds (at most ``limit`` stages are
    combined; more are taken one at a time)."""
    rules = list(rules)
    stages = sorted({s for r in rules for s in r.stages + r.not_stages})
    levels = sorted(
        {0}
        | {
            b + d
            for r in rules
            for b in (r.min_level, r.max_level)
            if b is not None
            for d in (-1, 0, 1)
        }
    )
    if len(stages) <= limit:
        combos = [
            tuple(s for i, s in enumerate(stages) if mask >> i & 1)
            for mask in range(1 << len(stages))
        ]
    else:
        combos = [()] + [(s,) for s in stages]
    return [
        NetState(phase, level, combo) for phase in PHASES for level in levels for combo in combos
    ]


@dataclass(eq=False)  # a layer is itself: compared by identity, which keeps lookups O(1)
class Layer:
    """One layer of the net, as written."""

    node: Node
    index: int
    name: str
    type: str
    bottoms: List[str]
    tops: List[str]
    include: List[Rule]
    exclude: List[Rule]
    v1: bool
    loss_weights: List[float]

    @classmethod
    def from_node(cls, node: Node, index: int) -> Layer:
        v1 = node.name == "layers"
        kind = node.get("type", "")
        if v1:
            kind = V1_TYPES.get(kind, kind)
        return cls(
            node=node,
            index=index,
            name=str(node.get("name", "")),
            type=str(kind),
            bottoms=[str(b) for b in node.get_all("bottom")],
            tops=[str(t) for t in node.get_all("top")],
            include=[Rule.from_node(n) for n in node.find_all("include")],
            exclude=[Rule.from_node(n) for n in node.find_all("exclude")],
            v1=v1,
            loss_weights=node.fields("loss_weight", FLOAT),
        )

    @property
    def unconditional(self) -> bool:
        return not self.include and not self.exclude

    def active(self, state: NetState) -> bool:
        """Whether Caffe keeps this layer in a net built for ``state`` (Net::FilterNet)."""
        if self.include:
            return any(rule.matches(state) for rule in self.include)
        return not any(rule.matches(state) for rule in self.exclude)

    @property
    def is_loss(self) -> bool:
        return self.type.endswith("Loss") or any(w != 0 for w in self.loss_weights)

    @property
    def is_data(self) -> bool:
        """A layer that makes blobs from nothing: a data or input layer."""
        return not self.bottoms and bool(self.tops)

    @property
    def source_params(self) -> Optional[Node]:
        """The ``data_param``/``hdf5_data_param``/``image_data_param`` block of a layer that
        reads a source, or None."""
        name = SOURCE_PARAMS.get(self.type)
        return self.node.find(name) if name else None

    def loss_weight(self, top: str) -> float:
        """The explicit ``loss_weight`` given for ``top`` (0 when none is written)."""
        weights = self.loss_weights
        i = self.tops.index(top) if top in self.tops else len(weights)
        return weights[i] if i < len(weights) else 0.0

    def carries_loss(self, top: str) -> bool:
        """Whether Caffe counts ``top`` in the loss: an explicit non-zero ``loss_weight``, or the
        first top of a loss layer without any (Caffe gives it weight 1)."""
        if self.loss_weights:
            return self.loss_weight(top) != 0
        return self.type.endswith("Loss") and bool(self.tops) and self.tops[0] == top

    def in_place(self, blob: str) -> bool:
        return blob in self.tops and blob in self.bottoms


def rules_of_any(layers: Sequence[Layer]) -> Optional[List[Tuple[str, Rule]]]:
    """The ``(kind, rule)`` pairs (kind ``include`` or ``exclude``) under which a new layer
    exists exactly when one of ``layers`` does: empty when that is in every state, None when
    their rules cannot be written as one layer's."""
    if not layers or any(layer.unconditional for layer in layers):
        return []
    states = representative_states(r for layer in layers for r in layer.include + layer.exclude)
    if all(any(layer.active(state) for layer in layers) for state in states):
        return []
    if len(layers) == 1:
        layer = layers[0]
        return [("include", r) for r in layer.include] or [("exclude", r) for r in layer.exclude]
    if all(layer.include for layer in layers):
        return [("include", r) for layer in layers for r in layer.include]
    if all(r.phase_only for layer in layers for r in layer.include + layer.exclude):
        phases = [ph for ph in PHASES if any(layer.active(NetState(ph)) for layer in layers)]
        return (
            [] if len(phases) == len(PHASES) else [("include", Rule.of_phase(ph)) for ph in phases]
        )
    return None


@dataclass
class BlobHistory:
    """Who writes a blob, in file order over all phases and stages: the producers (a top
    that is not also a bottom), the in-place modifiers, and the first reader after them."""

    name: str
    writers: List[Layer] = field(default_factory=list)
    readers: List[Layer] = field(default_factory=list)
    net_input: bool = False

    @property
    def producers(self) -> List[Layer]:
        return [w for w in self.writers if not w.in_place(self.name)]

    @property
    def modifiers(self) -> List[Layer]:
        return [w for w in self.writers if w.in_place(self.name)]


class Net:
    """The layers of a net file, or of a solver's inline net, and where its blobs come from.

    Attributes:
        doc: the lossless tree (edits go there): the file's, or the inline net's block.
        layers: every ``layer``/``layers`` entry in file order.
        inputs: blobs declared at the top with ``input:`` (deploy nets).
        path: the file it was read from (for an inline net, the solver's).
    """

    def __init__(self, doc: Union[Document, Node], path: Optional[str] = None) -> None:
        """``doc`` is a parsed file, or a solver's inline net (``path`` then names the file).

        Raises:
            NetError: the net has no layers, or is a V0 net.
            FieldError: a value that is not of its field's type.
        """
        self.doc = doc
        path = doc.path if isinstance(doc, Document) else path
        self.path = path
        self.layers = [
            Layer.from_node(node, i)
            for i, node in enumerate(n for n in doc.children if n.name in ("layer", "layers"))
        ]
        if not self.layers:
            where = path if isinstance(doc, Document) else f"{path}:{doc.line}: {doc.name}"
            raise NetError(
                f"{where}: the net has no layers (a net lists them as 'layer {{ ... }}' blocks)"
            )
        v0 = next(
            (
                layer.node
                for layer in self.layers
                if layer.v1 and layer.node.find("layer") is not None
            ),
            None,
        )
        if v0 is not None:
            raise NetError(
                f"{path}:{v0.line}:{v0.col}: this is a V0 net (the 2013 format, 'layers {{ layer {{ ... }} }}'), "
                "which caffe-nantools does not read; upgrade it with Caffe's upgrade_net_proto_text"
            )
        self.inputs = [str(name) for name in doc.get_all("input")]

    @classmethod
    def parse(cls, text: str, path: str = "<string>") -> Net:
        return cls(parse(text, path))

    @property
    def name(self) -> str:
        return str(self.doc.get("name", ""))

    @property
    def v1(self) -> bool:
        """Old format: ``layers {}`` entries with enum types."""
        return any(layer.v1 for layer in self.layers)

    def active_layers(self, state: NetState) -> List[Layer]:
        return [layer for layer in self.layers if layer.active(state)]

    def blob_names(self) -> List[str]:
        """Every blob name, in order of first appearance (net inputs first)."""
        seen: Dict[str, None] = dict.fromkeys(self.inputs)
        for layer in self.layers:
            seen.update(dict.fromkeys(layer.tops))
        return list(seen)

    def histories(self) -> Dict[str, BlobHistory]:
        """For each blob, its writers and readers in file order (over all states)."""
        result = {name: BlobHistory(name, net_input=True) for name in self.inputs}
        # Layers come in order, so a layer already listed is the list's last entry.
        for layer in self.layers:
            for name in layer.bottoms:
                history = result.setdefault(name, BlobHistory(name))
                if not layer.in_place(name) and (
                    not history.readers or history.readers[-1] is not layer
                ):
                    history.readers.append(layer)
            for name in layer.tops:
                history = result.setdefault(name, BlobHistory(name))
                if not history.writers or history.writers[-1] is not layer:
                    history.writers.append(layer)
        return result

    def chain(self, blob: str, state: NetState) -> List[Layer]:
        """The producer of ``blob`` in ``state`` followed by its in-place modifiers (empty
        when the blob does not exist there; a net input has no producer)."""
        chain: List[Layer] = []
        for layer in self.active_layers(state):
            if blob in layer.tops:
                if not layer.in_place(blob):
                    chain = []
                chain.append(layer)
        return chain
