"""Importing pycaffe for the commands that need it, with a clear error where it is missing."""

from __future__ import annotations

import os
from types import ModuleType

from caffe_nantools.errors import NanToolsError


class CaffeUnavailableError(NanToolsError):
    """pycaffe cannot be imported here."""


def load_caffe(*, quiet: bool = True) -> ModuleType:
    """Import and return the ``caffe`` module.

    Args:
        quiet: keep Caffe's info lines (net set-up and so on) out of the output; only takes
            effect when Caffe was not imported yet.

    Raises:
        CaffeUnavailableError: pycaffe is missing or broken, with how to get it.
    """
    if quiet:
        os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe
    except Exception as e:  # a broken _caffe raises SystemError, ImportError and others
        raise CaffeUnavailableError(
            f"this command needs pycaffe, and 'import caffe' failed ({type(e).__name__}: {e}); "
            "run it where Caffe is installed, e.g. in the image built from docker/Dockerfile"
        ) from None
    return caffe
