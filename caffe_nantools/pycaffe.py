"""Importing pycaffe for the commands that need it, with a clear error where it is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import ModuleType
from typing import Optional, Type

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
CPU_ONLY = b"Cannot use GPU in CPU-only Caffe"


def cpu_only(gpu: int, kind: Type[NanToolsError] = CaffeUnavailableError) -> NanToolsError:
    """The error (of the command's own ``kind``) for ``gpu`` given to a Caffe built for the CPU
    only."""
    return kind(
        "{gpu}: this Caffe is built for the CPU only; leave out {gpu:name}",
        arguments={"gpu": gpu},
    )


#: Asks for GPU argv[1] in a process of its own: Caffe ends the process that asks for one it
#: cannot use (a CPU-only build, no such device) with a fatal line.
_GPU_PROBE = "import sys, caffe; caffe.set_mode_gpu(); caffe.set_device(int(sys.argv[1]))"


_FATAL = re.compile(r"F\d{4} ")


def use_device(caffe: ModuleType, gpu: Optional[int]) -> None:
    """Have Caffe compute on GPU ``gpu``, or on the CPU for None, once a child process has shown
    that Caffe can use that GPU.

    Raises:
        CaffeUnavailableError: Caffe cannot use GPU ``gpu`` (with its fatal line).
    """
    if gpu is None:
        caffe.set_mode_cpu()
        return
    probe = subprocess.run(
        [sys.executable, "-c", _GPU_PROBE, str(gpu)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, GLOG_logtostderr="1"),
    )
    if probe.returncode != 0:
        if CPU_ONLY in probe.stderr:
            raise cpu_only(gpu)
        lines = probe.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"]
        fatal = next((line for line in lines if _FATAL.match(line)), lines[-1])
        raise CaffeUnavailableError(
            "{gpu}: Caffe cannot use this GPU (" + literal(fatal) + ")",
            arguments={"gpu": gpu},
        )
    caffe.set_mode_gpu()
    caffe.set_device(gpu)
