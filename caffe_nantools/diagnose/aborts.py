"""What a Caffe abort usually means, told by its failing check and the functions of its stack
trace, and what to run next."""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from caffe_nantools.diagnose.reading import Abort

#: (pattern over the check, its source file and the stack's functions; what it usually means;
#: what to run next, ``{net}`` the net given or a placeholder).
MEANINGS: List[Tuple[re.Pattern, str, str]] = [
    (
        re.compile(r"SampleBBox|GenerateSamples|GenerateBatchSamples|sampler"),
        "a box sampler of the data layer (the SSD fork's batch_sampler: SampleBBox) drew from an empty range; "
        "usually a batch_sampler with min > max (scale, aspect ratio) or a box of the data outside [0, 1] "
        "(`0 vs. -1.19209e-07` is float rounding: a sampled box a hair wider than the image)",
        "check every batch_sampler (min_scale <= max_scale <= 1, min_aspect_ratio <= max_aspect_ratio) and the "
        "records' boxes: `caffe-nantools scan {net}`",
    ),
    (
        re.compile(r"caffe_rng_uniform|Check failed: a <= b"),
        "caffe_rng_uniform was asked for a number in [a, b] with a > b: a random draw of the data pipeline (a crop, "
        "scale or box of data augmentation) got an empty range",
        "check the data layer's transform and sampler settings (min <= max) and its records: `caffe-nantools scan {net}`",
    ),
    (
        re.compile(r"label_value|num_labels|label >= 0|label < "),
        "a label outside [0, number of classes): the data's labels do not fit the classifier's num_output",
        "find the records with bad labels: `caffe-nantools scan {net}`; labels must run 0..num_output-1 "
        "(or be the loss's ignore_label)",
    ),
    (
        re.compile(r"cv_img\.data|Could not (?:open|load)|cannot (?:open|read)|No such file"),
        "a file the data layer reads (an image of the list, a database, an HDF5 file) could not be opened",
        "list what cannot be read: `caffe-nantools scan {net}` (paths are relative to root_folder)",
    ),
    (
        re.compile(r"Check failed: data_"),
        "a blob without memory: a shape with a 0 in it (num_output: 0, an input smaller than a kernel, a data layer "
        "that delivered nothing), or a MemoryData layer never Reset",
        "check the shapes: `caffe-nantools lint {net}`",
    ),
    (
        re.compile(r"shape|count\(\)|Cannot copy param|num_axes|Incompatible|dimension"),
        "two shapes that must match do not (a bottom and a label, weights and the layer they are loaded into)",
        "check the shapes: `caffe-nantools lint {net}`",
    ),
    (
        re.compile(r"out of memory|allocation of size|cudaSuccess"),
        "memory ran out (GPU or host)",
        "lower batch_size (and use iter_size to keep the effective batch)",
    ),
]


def explain(abort: Abort, net: Optional[str]) -> Tuple[List[str], List[str]]:
    """Sentences for the summary (the failing check quoted, what it usually means) and advice."""
    where = f" ({abort.source})" if abort.source and abort.source != "?" else ""
    if abort.kind == "python":
        frame = f" in {abort.frames[0]}" if abort.frames else ""
        summary = [f"a Python layer raised {_quoted(abort.text)}{frame}"]
    elif abort.kind == "crash":
        unnamed = "" if "Check failed" in abort.text else " (the log names no failed check)"
        summary = [f"the run crashed: {_quoted(abort.text)}{unnamed}"]
    else:
        summary = [f"the run aborted: {_quoted(abort.text)}{where}"]
    # glog's own frames (google::LogMessage...) say nothing of where Caffe failed.
    frames = [f for f in abort.frames if not f.startswith("google::")]
    if frames and abort.kind != "python":
        summary.append("in " + " <- ".join(frames)[:300])
    clue = " ".join((_message(abort.text), abort.source) + abort.frames)
    for pattern, meaning, advice in MEANINGS:
        if pattern.search(clue):
            return summary + [f"this usually means {meaning}"], [
                advice.format(net=net or "train_val.prototxt")
            ]
    if abort.kind == "python":
        return summary, [
            "fix the Python layer's code at that frame; run the net in pycaffe to reproduce it quickly"
        ]
    return summary, [
        "the check and the stack trace name the layer or function that failed: look there first"
    ]


def _message(text: str) -> str:
    """The text after glog's prefix (``] ``), or all of it."""
    head, sep, message = text.partition("] ")
    return message if sep else text


def _quoted(text: str) -> str:
    return f"`{_message(text).strip()}`"
