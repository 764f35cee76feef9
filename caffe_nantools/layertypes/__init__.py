"""What caffe-nantools knows of each Caffe layer type, in one table (:data:`TYPES`): the rules
lint checks it by, the contract a loss or metric layer holds its bottoms to, the advice for a
layer that made non-finite values, and the changes hunt tries on it."""

from caffe_nantools.layertypes.contracts import (
    BINARY,
    CLASS,
    LABEL_COUNT,
    REQUIRES,
    SCALE,
    UNIT,
    Contract,
)
from caffe_nantools.layertypes.edits import Edit, Edits
from caffe_nantools.layertypes.rules import (
    Found,
    LayerProblem,
    LayerSeen,
    Problem,
    Rule,
    SettingProblem,
)
from caffe_nantools.layertypes.table import EVERY_LAYER, TYPES, LayerType, layer_type
from caffe_nantools.layertypes.windows import empty_windows, hw_pair, pooled_size

__all__ = [
    "BINARY",
    "CLASS",
    "EVERY_LAYER",
    "LABEL_COUNT",
    "REQUIRES",
    "SCALE",
    "TYPES",
    "UNIT",
    "Contract",
    "Edit",
    "Edits",
    "Found",
    "LayerProblem",
    "LayerSeen",
    "LayerType",
    "Problem",
    "Rule",
    "SettingProblem",
    "empty_windows",
    "hw_pair",
    "layer_type",
    "pooled_size",
]
