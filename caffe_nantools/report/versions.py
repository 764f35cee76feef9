"""The exact versions a report was made with: what a maintainer asks first."""

from __future__ import annotations

import os
import platform
import sys
from typing import List, Tuple

import numpy as np

from caffe_nantools import __version__


def versions() -> List[Tuple[str, str]]:
    """(name, version) of caffe-nantools, Caffe (where this process imported it), Python,
    numpy and the BLAS libraries loaded in this process."""
    caffe = sys.modules.get("caffe")
    return [
        ("caffe-nantools", __version__),
        ("Caffe", getattr(caffe, "__version__", "?") if caffe else "not loaded in this process"),
        ("Python", f"{platform.python_version()} ({platform.platform(terse=True)})"),
        ("numpy", np.__version__),
        ("BLAS", ", ".join(_blas()) or "not known"),
    ]


def _blas() -> List[str]:
    """The BLAS libraries mapped into this process (numpy's, and Caffe's where it is loaded)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower()}
    except OSError:
        return []
    return sorted({os.path.realpath(p) for p in paths if p.startswith("/")})
