"""The optional packages: the name a module is imported by is not always the one pip installs
(``import PIL`` comes from Pillow), so both are kept here, with the extra of caffe-nantools that
brings the package (pyproject.toml's optional-dependencies)."""

from __future__ import annotations

from typing import Dict, Tuple

#: Top-level import name -> (the package pip installs, the caffe-nantools extra that has it).
PACKAGES: Dict[str, Tuple[str, str]] = {
    "lmdb": ("lmdb", "lmdb"),
    "plyvel": ("plyvel", "leveldb"),
    "h5py": ("h5py", "hdf5"),
    "PIL": ("Pillow", "images"),
    "matplotlib": ("matplotlib", "plot"),
}


def install_hint(module: str) -> str:
    """What a message about the missing ``module`` (an import name such as ``PIL.Image``) says:
    ``the Python package 'Pillow': pip install 'caffe-nantools[images]'``."""
    package, extra = PACKAGES[module.split(".")[0]]
    return f"the Python package {package!r}: pip install 'caffe-nantools[{extra}]'"
