"""watch --hunt --resume around the real `caffe train`: a run that reads a NaN record some
iterations in is stopped; hunt, from the last finite snapshot watch kept, finds the record over
the failing window and verifies the clean copy; the resume command it prints, run under watch
again, trains from that snapshot to the end, every value finite."""

import json
import re
import subprocess

from hunt_nets import classifier, float_store, lmdb_layer
from test_watch_caffe import PACE_LAYER, PACE_MODULE, env, watch_args

SOLVER = (
    'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: {max_iter}\n'
    'display: 1\nsnapshot_prefix: "snap"\nsolver_mode: CPU\nrandom_seed: 3\n'
)


def paced_training(folder, *, bad, batch, max_iter):
    """An LMDB of float records with one NaN in record ``bad``, read ``batch`` at a time in
    order by a classifier whose iterations last 20 ms (watch's snapshots fall between them)."""
    float_store(folder / "train_lmdb", n=4 * max_iter, bad=(bad,))
    (folder / "pace.py").write_text(PACE_MODULE)
    (folder / "net.prototxt").write_text(
        classifier(lmdb_layer("records", "train_lmdb", batch), extra=PACE_LAYER)
    )
    (folder / "solver.prototxt").write_text(SOLVER.format(max_iter=max_iter))


def test_hunt_from_the_kept_snapshot_finds_the_record_and_the_resumed_run_stays_finite(
    caffe, tmp_path
):
    bad, batch = 53, 4  # read at iteration 13
    paced_training(tmp_path, bad=bad, batch=batch, max_iter=30)
    run = subprocess.run(
        watch_args("--log", "w.log", "--keep-good", "0.05", "--hunt", "--resume", "--json")
        + ["--report", "watched.md"]
        + ["--", "caffe", "train", "-solver", "solver.prototxt"],
        cwd=tmp_path,
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(run.stdout)
    first = result["diagnosis"]["first_nonfinite"]["iteration"]
    assert result["non_finite"] and first == bad // batch, run.stderr[-3000:]
    good = result["last_good_iteration"]
    assert good is not None and good <= first and result["finite"][f"snap_iter_{good}.solverstate"]
    # hunt ran from that snapshot over the failing window: the record, where the run read it.
    hunted = result["hunt"]
    assert hunted["no_hunt"] is None and hunted["state"] == f"snap_iter_{good}.solverstate"
    verdict = hunted["report"]["verdict"]
    assert (verdict["cause"], verdict["layer"], verdict["iteration"]) == (
        "bad_input",
        "records",
        first,
    )
    assert verdict["record"] == {"source": "train_lmdb", "key": f"{bad:08d}"}
    assert verdict["fix"]["verified"]
    workdir = hunted["report"]["workdir"]
    assert hunted["resume"] == [
        "caffe",
        "train",
        "-solver",
        f"{workdir}/fix/resume/solver.prototxt",
        "-snapshot",
        f"snap_iter_{good}.solverstate",
    ]
    # --resume ran it under watch: from the snapshot to max_iter, every value finite.
    resumed = result["resumed"]
    assert resumed["command"] == hunted["resume"] and resumed["log"] == "w-resume.log"
    assert not resumed["non_finite"] and resumed["status"] == 0
    log = (tmp_path / "w-resume.log").read_text()
    assert f"Resuming from snap_iter_{good}.solverstate" in log
    shown = [int(i) for i in re.findall(r"\] Iteration (\d+) \(.*\), loss = ", log)]
    assert shown[0] == good and shown[-1] == 29
    assert run.returncode == result["exit_status"] == 0
    # The report shows the way back: the hunt from the snapshot, its fix, the resume and its end.
    md = (tmp_path / "watched.md").read_text().replace("\\_", "_")  # as GitHub shows it
    assert f"- **last finite snapshot**: snap_iter_{good}.caffemodel" in md
    assert f"- **hunt from**: snap_iter_{good}.solverstate" in md
    assert "- **hunt's verdict**: bad input" in md and "- **hunt's fix**: " in md
    assert f"- **resume**: caffe train -solver {workdir}/fix/resume/solver.prototxt" in md
    resumed_line = next(line for line in md.splitlines() if line.startswith("- **resumed**: "))
    assert "ended with status 0; every value was finite" in resumed_line
    # The user's files are untouched: the net still reads the store with the NaN record.
    assert 'source: "train_lmdb"' in (tmp_path / "net.prototxt").read_text()
