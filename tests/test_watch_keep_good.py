"""watch --keep-good around a stand-in named `caffe` (`caffe train -solver S`, acting on SIGHUP
and SIGINT as Caffe does and writing snapshots in Caffe's wire format, non-finite once a bad
update happened): snapshots asked for while the run is healthy, checked, the newest two finite
ones kept, watch's older ones removed and the solver's periodic ones never; the report names the
last finite one and whether the stop's is finite."""

import json
import os
import re
import subprocess
import sys

from test_watch import HERE, own_lines, watch_env


def stand_in(folder, snapshot=0):
    """``./caffe``: the stand-in under Caffe's name; a solver with a ``snapshot`` interval."""
    caffe = folder / "caffe"
    caffe.write_text(
        f'#!/bin/sh\nexec {sys.executable} {os.path.join(HERE, "fake_caffe.py")} "$@"\n'
    )
    caffe.chmod(0o755)
    (folder / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nsnapshot: {snapshot}\nsnapshot_prefix: "snap"\n'
    )


def keep_watch(folder, *args, keep="0.3", flags=(), solver_snapshot=0):
    command = [
        "./caffe",
        "train",
        "-solver",
        "solver.prototxt",
        "-snapshot",
        str(solver_snapshot),
        *args,
    ]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "caffe_nantools",
            "watch",
            "--log",
            "w.log",
            "--keep-good",
            keep,
            *flags,
            "--",
            *command,
        ],
        cwd=folder,
        env=watch_env(),
        capture_output=True,
        timeout=120,
    )


def iterations(folder):
    return sorted(
        int(re.search(r"_iter_(\d+)\.", p.name).group(1))
        for p in folder.glob("snap_iter_*.caffemodel")
    )


def test_a_run_that_goes_bad_late_leaves_the_last_finite_snapshot_and_the_one_before(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(
        tmp_path, "-nan_at", "60", "-iterations", "300", "-pace", "0.02", flags=("--json",)
    )
    assert run.returncode == 1, run.stderr.decode()[-2000:]
    result = json.loads(run.stdout)
    good = result["last_good_snapshot"]
    kept = result["kept"]
    assert len(kept) == 2 and good == kept[-1]
    assert result["finite"][good[0]] is True and result["finite"][good[1]] is True
    assert 0 < result["last_good_iteration"] <= 60
    # The snapshot of the stop holds the bad update, and the report says so.
    stop = result["snapshot"]
    assert stop and result["finite"][stop[0]] is False
    # Only the two kept and the stop's remain: watch removed its older ones.
    on_disk = iterations(tmp_path)
    kept_iterations = [int(re.search(r"_iter_(\d+)\.", k[0]).group(1)) for k in kept]
    assert on_disk == sorted(kept_iterations + [int(re.search(r"_iter_(\d+)\.", stop[0]).group(1))])
    assert any("kept snap_iter_" in m for m in own_lines(run.stderr))


def test_the_text_report_names_the_last_finite_snapshot_and_the_stops_finiteness(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(tmp_path, "-nan_at", "40", "-iterations", "300")
    out = run.stdout.decode()
    good = next(line for line in out.splitlines() if line.startswith("last finite snapshot: "))
    assert re.search(
        r"snap_iter_\d+\.caffemodel, snap_iter_\d+\.solverstate \(iteration \d+, line \d+", good
    )
    assert "every value finite" in good and "resume from it with -snapshot snap_iter_" in good
    stop = next(line for line in out.splitlines() if line.startswith("snapshot: "))
    assert "not finite: snap_iter_" in stop and "layer 'ip' param 0: 1 NaN" in stop


def test_the_report_names_the_last_finite_snapshot_and_the_stops_finiteness(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(tmp_path, "-nan_at", "40", "-iterations", "300", flags=("--report", "w.md"))
    assert run.returncode == 1, run.stderr.decode()[-2000:]
    md = (tmp_path / "w.md").read_text().replace("\\_", "_")  # as GitHub shows it
    good = next(line for line in md.splitlines() if line.startswith("- **last finite snapshot**: "))
    assert "every value finite" in good and "resume from it with -snapshot snap_iter_" in good
    stop = next(line for line in md.splitlines() if line.startswith("- **snapshot**: "))
    assert "not finite: snap_iter_" in stop


def test_the_solvers_periodic_snapshots_are_never_removed(tmp_path):
    stand_in(tmp_path, snapshot=7)
    run = keep_watch(tmp_path, "-iterations", "120", "-pace", "0.01", solver_snapshot=7)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    on_disk = iterations(tmp_path)
    assert [i for i in range(7, 120, 7)] == [i for i in on_disk if i % 7 == 0]
    # watch's own: two kept at most, besides the periodic ones and the last one Caffe writes at the end.
    assert len([i for i in on_disk if i % 7 and i != 120]) <= 2


def test_keep_good_0_asks_for_nothing(tmp_path):
    stand_in(tmp_path)
    run = keep_watch(tmp_path, "-nan_at", "30", "-iterations", "200", keep="0")
    assert run.returncode == 1
    assert all(i > 30 for i in iterations(tmp_path))  # the stop's alone
    assert (
        "last finite snapshot: none named in the log before the first non-finite value; watch asked for none (--keep-good 0)"
        in run.stdout.decode()
    )


def test_a_script_is_told_that_only_its_own_snapshots_exist(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "caffe_nantools",
            "watch",
            "--log",
            "w.log",
            "--keep-good",
            "0.2",
            "--",
            sys.executable,
            os.path.join(HERE, "fake_caffe.py"),
            "train",
            "-nan_at",
            "20",
            "-iterations",
            "100",
        ],
        cwd=tmp_path,
        env=watch_env(),
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert (
        "the command is not `caffe train`, so only its own snapshots exist" in run.stdout.decode()
    )
    assert all(i > 20 for i in iterations(tmp_path))  # the stop's: watch asked the script for none


def test_a_snapshot_request_that_reaches_caffe_after_its_training_ended_is_a_clean_exit(tmp_path):
    # Caffe puts its signal handlers back after "Optimization Done.": a request watch sent just
    # then ends the process by the signal, with the training complete.
    stand_in(tmp_path)
    run = keep_watch(tmp_path, "-iterations", "30", "-late_hup")
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert any(
        "Optimization Done.) when watch's snapshot request" in m for m in own_lines(run.stderr)
    )


def test_a_periodic_snapshot_written_before_watchs_does_not_take_its_place(tmp_path):
    # CI saw it: the signal landed while Caffe wrote its periodic snapshot at 28; the answer
    # came at 29, was taken for nobody's, and was never kept nor removed.
    import signal

    from caffe_nantools.finite_snapshot import Finiteness
    from caffe_nantools.watch.keeper import Keeper

    keeper = Keeper(
        1.0, signal.SIGHUP, "SIGHUP", periodic=7, check=lambda files: Finiteness(True, "")
    )

    def snapshot(line, iteration):
        keeper.written(line, f"snap_iter_{iteration}.caffemodel")
        keeper.written(line + 1, f"snap_iter_{iteration}.solverstate")

    keeper.ask(0.0, 0)  # training has begun: the count starts
    # Each request, and the snapshots written after it: a periodic one first (28), or Caffe's
    # two at one iteration (56: the periodic one and the answer, the same files), or the answer.
    for k, (asked_at, written) in enumerate([(10, (28, 29)), (40, (56, 56)), (70, (80,))]):
        assert keeper.ask(float(10 * (k + 1)), asked_at)  # the signal goes: the last was answered
        for j, iteration in enumerate(written):
            snapshot(asked_at + 2 + 3 * j, iteration)
    kept = [e.message.split(" (")[0] for e in keeper.close() if e.kind == "keep"]
    assert kept == [
        "kept snap_iter_29.caffemodel, snap_iter_29.solverstate",
        "kept snap_iter_80.caffemodel, snap_iter_80.solverstate",
    ]
