"""The real-world prototxt corpus in ../shared/corpus (see its SOURCES.md)."""
import os
from pathlib import Path

CORPUS = Path(os.environ.get("NANTOOLS_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
FILES = sorted(p for p in CORPUS.glob("*/*") if p.suffix in (".prototxt", ".proto"))
SOLVERS = [p for p in FILES if "solver" in p.name]
NETS = [p for p in FILES if p not in SOLVERS]


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]
