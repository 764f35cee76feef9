"""Optional modules a test needs (lmdb, plyvel, h5py, Pillow, ...). Without one the test, or a
whole module when called at its top, skips with the reason ``NO_MODULE``; the image carries them
all, so there (NANTOOLS_REQUIRE_CAFFE=1) such a skip is a failure, as conftest.py says. A
module the image leaves out on purpose is ``required=False``: its skip stays a skip."""

import importlib

import pytest

from caffe_nantools.optional import PACKAGES

NO_MODULE = "optional module missing: "
NOT_IN_IMAGE = "optional module not installed: "


def need(name: str, install: str = "", *, required: bool = True):
    """The module ``name``, or a skip that names it and what to install (``install``, else the
    package caffe-nantools knows it by, else ``name``)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        package = PACKAGES.get(name.split(".")[0], (name,))[0]
        reason = f"{NO_MODULE if required else NOT_IN_IMAGE}{name} ({e}; pip install '{install or package}')"
        pytest.skip(reason, allow_module_level=True)
