"""What a scan reads: a source (a path, its backend, what the net expects of it), the error of a
scan that cannot run, and the slice of a source's records that one shard reads. The backends
and the scan driver import these; this module imports none of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Tuple

from caffe_nantools.errors import NanToolsError
from caffe_nantools.scan.checks import Expect

if TYPE_CHECKING:
    from caffe_nantools.scan.contracts import Transform


class ScanError(NanToolsError):
    """A scan that cannot run: bad options, a source that cannot be found or opened."""


@dataclass
class Source:
    """One thing to scan: a path, its backend, and what the net expects of it."""

    path: str
    backend: str
    expect: Expect = field(default_factory=Expect)
    datasets: Tuple[str, ...] = ()  # HDF5: the layer's tops; empty: every dataset
    #: What only its backend reads (ImageData's root_folder, resizing and cropping, as the
    #: imagelist backend's ImageOptions): the backend's own type, which this module need not know.
    options: Any = None
    mean_file: Optional[str] = None
    layer: str = ""  # the data layer it came from
    #: How ``--write-clean`` rewrites a blob of the copy (a systematic breach's fix).
    transform: Optional[Transform] = None

    @property
    def name(self) -> str:
        return self.path


def shard_range(
    total: int, shard: Optional[Tuple[int, int]], limit: Optional[int] = None
) -> Tuple[int, int]:
    """The records ``[first, end)`` of ``total`` that shard ``(k, n)`` reads (all for None),
    at most ``limit`` of them."""
    first, end = (
        (0, total)
        if shard is None
        else (shard[0] * total // shard[1], (shard[0] + 1) * total // shard[1])
    )
    return first, end if limit is None else min(end, first + limit)
