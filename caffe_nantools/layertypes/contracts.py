"""What a loss or metric layer requires of one of its bottoms: the kinds of values, and one
bottom's contract as a layer type's entry holds it (scan checks the data against it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: What a bottom must hold.
CLASS = "class"  # a whole class index 0..K-1 per prediction, or the ignore_label
UNIT = "unit"  # a target probability in [0, 1]
BINARY = "binary"  # 0 (dissimilar) or 1 (similar)
SCALE = "scale"  # any real number, on the scale of the prediction it is compared with
#: Caffe's fatal line for a label blob of the wrong size.
LABEL_COUNT = "Number of labels must match number of predictions"


@dataclass(frozen=True)
class Contract:
    """One bottom's contract: ``ignore`` is the parameter block holding the layer's
    ``ignore_label``; ``aborts`` the fatal line Caffe stops with on a label blob of the wrong
    size (its check fails at set-up)."""

    bottom: int
    kind: str
    ignore: Optional[str] = None
    aborts: str = ""


#: What each kind requires, in words.
REQUIRES = {
    CLASS: "a whole class index in 0..K-1 for each prediction",
    UNIT: "targets in [0, 1]",
    BINARY: "0 or 1 (dissimilar or similar pair)",
    SCALE: "targets on the prediction's scale",
}
