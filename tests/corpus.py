"""The real-world prototxt corpus (``shared/corpus`` beside the checkout, see its SOURCES.md).

Found through NANTOOLS_CORPUS (a folder that is not there is an error), else ``tests/_corpus``
(where docker/run-tests puts a copy for the image), else ``../shared/corpus`` next to the
checkout. Without it the corpus tests skip, unless NANTOOLS_REQUIRE_CORPUS=1.
"""

import os
from pathlib import Path

import pytest

from caffe_nantools.prototxt.net import Net


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


HERE = Path(__file__).resolve().parent
NAMED = os.environ.get("NANTOOLS_CORPUS")
CANDIDATES = [Path(NAMED)] if NAMED else [HERE / "_corpus", HERE.parents[1] / "shared" / "corpus"]
CORPUS = next((p for p in CANDIDATES if p.is_dir()), CANDIDATES[-1])
FILES = sorted(p for p in CORPUS.glob("*/*") if p.suffix in (".prototxt", ".proto"))
SOLVERS = [p for p in FILES if "solver" in p.name]
NETS = [p for p in FILES if p not in SOLVERS]
V1_NETS = [
    p for p in NETS if Net.parse(read(p)).v1
]  # the old `layers {` format, which inject refuses
V2_NETS = [p for p in NETS if p not in V1_NETS]
MISSING = f"the prototxt corpus is not here (looked in {', '.join(map(str, CANDIDATES))})"


def ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def corpus_params(paths):
    """``paths`` as pytest parameters, or one parameter that skips when there is no corpus."""
    if paths:
        return [pytest.param(p, id=i) for p, i in zip(paths, ids(paths))]
    return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING), id="no-corpus")]
