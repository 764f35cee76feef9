"""The LevelDB stores hunt's trainings read, as private copies: Caffe opening a LevelDB runs its
recovery, which rewrites the folder (CURRENT, MANIFEST, the .log turned into a table) and drops
the records of a damaged .log for good. Caffe only ever opens a copy (scan's, in the workdir:
tables hard-linked where the filesystem allows), so the user's store stays byte for byte."""

from __future__ import annotations

import os
import shutil
from typing import Dict, Iterator, Union

from caffe_nantools.prototxt import STRING, Document, Node
from caffe_nantools.scan.snapshot import private_copy
from caffe_nantools.scan.net_sources import BACKENDS
from caffe_nantools.templates import escape


def private_sources(root: Union[Document, Node], folder: str, made: Dict[str, str]) -> bool:
    """Point every LevelDB ``data_param.source`` under ``root`` (a net, or a solver with inline
    nets; every phase, a test net opens its store too) at a private copy made in ``folder``.
    ``made`` maps each store, as Caffe names it, to its copy: one copy a store, as Caffe opens
    it (the same store twice fails on LevelDB's lock there as on the user's). Returns whether
    a source was changed.

    Raises:
        OSError: a store that cannot be copied (read, or written: a full disk).
    """
    changed = False
    for params in _data_params(root):
        node = params.find("source")
        source = params.field("source", STRING)
        if source is None or params.field("backend", BACKENDS, "LEVELDB") != "LEVELDB":
            continue
        if not os.path.isdir(source):
            continue  # Caffe stops on it with its own line, as it would on the user's run
        if source not in made:
            made[source] = private_copy(source, folder)
        node.values[0][0].text = f'"{escape(made[source])}"'
        del node.values[0][1:]
        changed = True
    return changed


def remove_copies(made: Dict[str, str]) -> None:
    for copy in made.values():
        shutil.rmtree(copy, ignore_errors=True)
    made.clear()


def _data_params(root: Union[Document, Node]) -> Iterator[Node]:
    for child in root.children:
        if child.name == "data_param" and child.is_message:
            yield child
        elif child.is_message:
            yield from _data_params(child)
