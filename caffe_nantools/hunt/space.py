"""Room on the workdir's disk: hunt's training log (debug_info every iteration) grows with every
iteration, so a long run is weighed against the free space before it starts, and a disk that
fills anyway is said as such (not as a Caffe abort)."""

from __future__ import annotations

import errno
import os

from caffe_nantools.errors import NanToolsError

#: Errors that mean the disk (or the user's quota) is full.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: Below this many free bytes, a training that ended without its result ran out of room.
NEARLY_FULL = 1 << 20
#: Bytes of Caffe's log an iteration, per layer of the checked net, with debug_info on: a
#: line for each top in the forward pass, each bottom in the backward pass, each param's data
#: and diff in both and in the update, a glog prefix on each (about 300 measured on small
#: classifiers, rounded up).
LOG_BYTES_PER_LAYER = 400
#: The lines of an iteration that do not depend on the net (the loss, the rate, the timing).
LOG_BYTES_PER_ITERATION = 400


class HuntSpaceError(NanToolsError):
    """The workdir's disk has no room for hunt's copies, log or results."""


def free_bytes(folder: str) -> int:
    """Bytes the current user may still write on the disk that holds ``folder``."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows)
        return -1
    return stats.f_bavail * stats.f_frsize


def size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def no_room(e: OSError, folder: str) -> NanToolsError:
    """The one-line error for ``e``, an OSError met writing hunt's files in ``folder``."""
    where = e.filename or folder
    if e.errno in NO_SPACE:
        return HuntSpaceError(
            f"{where}: disk full ({size(max(free_bytes(folder), 0))} free); free some space "
            "or give --workdir on a disk with room"
        )
    return HuntSpaceError(f"{where}: cannot write ({e.strerror or e})")


def log_bytes(layers: int, iters: int) -> int:
    """About how many bytes Caffe's log of ``iters`` iterations of a checked net of ``layers``
    layers takes."""
    return iters * (layers * LOG_BYTES_PER_LAYER + LOG_BYTES_PER_ITERATION)


def check_room(folder: str, layers: int, iters: int) -> None:
    """Refuse a training whose log would not fit in the free space of ``folder``'s disk.

    Raises:
        HuntSpaceError: it would not fit (the estimate and the room, in words).
    """
    needed, free = log_bytes(layers, iters), free_bytes(folder)
    if 0 <= free < needed:
        raise HuntSpaceError(
            f"{folder}: {iters} iterations would write about {size(needed)} of Caffe's log "
            f"(debug_info, {size(needed / iters)} an iteration) and the disk has {size(free)} "
            "free; give fewer --iters, free some space or give --workdir on a disk with room"
        )
