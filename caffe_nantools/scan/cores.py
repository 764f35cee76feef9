"""How many cores this process may keep busy: the CPUs it may run on, and no more than its
cgroup's CPU quota (docker --cpus, a Kubernetes CPU limit), which the affinity does not show: a
container limited to 2 CPUs on a 64-core node would otherwise start 64 processes that share 2."""

from __future__ import annotations

import math
import os
from typing import List, Optional

CGROUP = "/sys/fs/cgroup"


def usable_cores() -> int:
    """The cores this process may keep busy (at least 1)."""
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    quota = cpu_quota()
    return max(1, min(cores, quota)) if quota is not None else cores


def cpu_quota(root: str = CGROUP, own: str = "/proc/self/cgroup") -> Optional[int]:
    """The CPUs the cgroup quota allows (rounded up), None without one. cgroup v2: the
    ``cpu.max`` of the process's cgroup and of each cgroup above it; v1: ``cpu.cfs_quota_us``
    over ``cpu.cfs_period_us`` of the cpu controller's mount, as a container sees its own."""
    quotas = [_v2_quota(os.path.join(root, path)) for path in _v2_paths(own)]
    quotas.append(_ratio(os.path.join(root, "cpu", "cpu.cfs_quota_us"), "cpu.cfs_period_us"))
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _v2_paths(own: str) -> List[str]:
    """The process's cgroup v2 folder (``0::/a/b``: ``a/b``) and those above it, up to the root."""
    try:
        with open(own) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.startswith("0::"):
            parts = [p for p in line[3:].split("/") if p]
            return ["/".join(parts[:n]) for n in range(len(parts), -1, -1)]
    return []


def _v2_quota(folder: str) -> Optional[int]:
    text = _read(os.path.join(folder, "cpu.max"))
    if text is None:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _cpus(fields[0], fields[1])


def _ratio(quota_path: str, period_name: str) -> Optional[int]:
    quota = _read(quota_path)
    period = _read(os.path.join(os.path.dirname(quota_path), period_name))
    if quota is None or period is None:
        return None
    return _cpus(quota, period)


def _cpus(quota: str, period: str) -> Optional[int]:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return math.ceil(q / p) if q > 0 and p > 0 else None  # v1 writes -1 for no quota


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
