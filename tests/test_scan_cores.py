"""The cores a scan spreads over: those the process may run on, and no more than its cgroup's
CPU quota (a container's --cpus, a Kubernetes limit), which the affinity does not show."""

import pytest

from caffe_nantools.scan import cores


def cgroup(tmp_path, own: str, files: dict):
    """A fake /sys/fs/cgroup under ``tmp_path`` with ``files`` (path: text) and a
    /proc/self/cgroup that says ``own``."""
    for path, text in files.items():
        target = tmp_path / "cgroup" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
    (tmp_path / "self").write_text(own + "\n")
    return str(tmp_path / "cgroup"), str(tmp_path / "self")


@pytest.mark.parametrize(
    "files, quota",
    [
        ({"cpu.max": "200000 100000"}, 2),  # docker --cpus 2, cgroup namespace of its own
        ({"cpu.max": "150000 100000"}, 2),  # 1.5 CPUs: two processes, rounded up
        ({"cpu.max": "50000 100000"}, 1),
        ({"cpu.max": "max 100000"}, None),  # no quota
        ({}, None),  # no cpu controller
        ({"cpu.max": "garbled"}, None),
    ],
)
def test_a_cgroup_v2_quota_of_the_process_own_cgroup(tmp_path, files, quota):
    root, own = cgroup(tmp_path, "0::/", files)
    assert cores.cpu_quota(root, own) == quota


def test_the_tightest_quota_above_the_process_counts(tmp_path):
    root, own = cgroup(
        tmp_path,
        "0::/kubepods/pod7/box",
        {
            "kubepods/cpu.max": "max 100000",
            "kubepods/pod7/cpu.max": "300000 100000",
            "kubepods/pod7/box/cpu.max": "max 100000",
        },
    )
    assert cores.cpu_quota(root, own) == 3


@pytest.mark.parametrize(
    "quota_us, quota",
    [("400000", 4), ("-1", None)],  # -1: cgroup v1's "no quota"
)
def test_a_cgroup_v1_quota(tmp_path, quota_us, quota):
    root, own = cgroup(
        tmp_path,
        "4:cpu,cpuacct:/docker/abc",
        {"cpu/cpu.cfs_quota_us": quota_us, "cpu/cpu.cfs_period_us": "100000"},
    )
    assert cores.cpu_quota(root, own) == quota


def test_without_cgroup_files_there_is_no_quota(tmp_path):
    assert cores.cpu_quota(str(tmp_path / "none"), str(tmp_path / "none")) is None


def test_the_quota_caps_the_cores_a_scan_uses(monkeypatch):
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(cores, "cpu_quota", lambda: 2)
    assert cores.usable_cores() == 2
    monkeypatch.setattr(cores, "cpu_quota", lambda: None)
    assert cores.usable_cores() == 64
    monkeypatch.setattr(cores, "cpu_quota", lambda: 128)  # a quota past the cores changes nothing
    assert cores.usable_cores() == 64
