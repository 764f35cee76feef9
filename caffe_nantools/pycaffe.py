"""Importing pycaffe for the commands that need it, with a clear error where it is missing."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Type

from caffe_nantools.errors import NanToolsError, literal


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


#: What a CPU-only Caffe says (its fatal line) when it is asked for a GPU.
CPU_ONLY = "Cannot use GPU in CPU-only Caffe"


def cpu_only(gpu: int, kind: Type[NanToolsError] = CaffeUnavailableError) -> NanToolsError:
    """The error (of the command's own ``kind``) for ``gpu`` given to a Caffe built for the CPU
    only."""
    return kind(
        "{gpu}: this Caffe is built for the CPU only; leave out {gpu:name}",
        arguments={"gpu": gpu},
    )


def unusable_gpu(gpu: int, fatal: str) -> NanToolsError:
    """The error for GPU ``gpu`` that Caffe ended a child process on asking for, with its
    ``fatal`` line (a CPU-only build, no such device)."""
    if CPU_ONLY in fatal:
        return cpu_only(gpu)
    return CaffeUnavailableError(
        "{gpu}: Caffe cannot use this GPU (" + literal(fatal) + ")", arguments={"gpu": gpu}
    )
