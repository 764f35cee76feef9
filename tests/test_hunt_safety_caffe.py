"""hunt never changes the user's files and never leaves a training behind, with real Caffe: a
LevelDB is only ever opened by Caffe as a private copy, a Python layer's compiled module goes to
the workdir, two hunts never share a workdir, a hunt killed with SIGKILL takes its training
with it, and a full disk is said as such, without losing what was found."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import caffe_nantools.hunt.space as space
from caffe_nantools.cli import main
from caffe_nantools.hunt import hunt
from caffe_nantools.watch import watch
from hunt_nets import classifier, dummy_classifier, float_store, lmdb_layer, solver
from datums import datum
from stores import damage_the_log, leveldb_with_tables_and_a_log
from test_hunt_caffe import regression_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hashes(folder):
    """Every file under ``folder`` (and each folder): its bytes' hash, or that it is a folder."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = "folder"
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def run_cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "caffe_nantools", *args],
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def leveldb_records(n, first=0):
    rng = np.random.RandomState(n)
    return [
        (f"{i:08d}".encode(), datum(rng.randn(1, 2, 3).astype(np.float32), label=i % 3))
        for i in range(first, first + n)
    ]


@pytest.mark.parametrize("where, batch", [(0.3, 4), (0.8, 5)])
def test_a_leveldb_with_a_damaged_log_is_left_byte_for_byte_and_is_a_finding(
    caffe, here, capsys, where, batch
):
    data = here / "data" / "train_leveldb"
    data.parent.mkdir()
    records = leveldb_records(1500)
    leveldb_with_tables_and_a_log(data, records[:500], records[500:])
    log = damage_the_log(data, where)
    testing = here / "data" / "test_leveldb"
    leveldb_with_tables_and_a_log(testing, leveldb_records(40)[:20], leveldb_records(40)[20:])
    test_layer = lmdb_layer("test_in", "data/test_leveldb", batch, backend="LEVELDB").replace(
        'top: "label" ', 'top: "label" include { phase: TEST } '
    )
    train_layer = lmdb_layer("train_in", "data/train_leveldb", batch, backend="LEVELDB").replace(
        'top: "label" ', 'top: "label" include { phase: TRAIN } '
    )
    (here / "net.prototxt").write_text(classifier(train_layer + test_layer))
    solver(here, extra="test_iter: 2\ntest_interval: 5\n")
    before = hashes(here / "data")
    for workdir in ("first", "second"):  # what the first left, the second finds again
        assert main(["hunt", "solver.prototxt", "--workdir", workdir, "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert hashes(here / "data") == before
        verdict = report["verdict"]
        assert verdict["cause"] == "bad_input"
        assert verdict["record"] == {"source": "data/train_leveldb", "key": log}
        train = next(s for s in report["stages"] if s["name"] == "train")
        assert train["status"] == "ok" and train["detail"]["finite"]
        assert f"without what its damaged {log} held" in verdict["fix"]["change"]
        # The private copies went with their training.
        assert not [n for n in os.listdir(here / workdir / "checked") if "leveldb" in n]


def test_the_fix_and_the_replay_of_a_leveldb_never_open_the_users_store(caffe, here, capsys):
    data = here / "train_leveldb"
    records = leveldb_records(60)
    bad = 17
    x = np.random.RandomState(0).randn(1, 2, 3).astype(np.float32)
    x.flat[2] = np.nan
    records[bad] = (records[bad][0], datum(x, label=1))
    leveldb_with_tables_and_a_log(data, records[:30], records[30:])
    (here / "net.prototxt").write_text(classifier(lmdb_layer("in", "train_leveldb", 4, "LEVELDB")))
    before = hashes(data)
    report = hunt(solver(here), workdir="hunt")
    v, fix = report.verdict, report.fix
    assert (v.cause, v.record.key, fix.verified) == ("bad_input", f"{bad:08d}", True)
    assert hashes(data) == before
    clean = fix.files["net"].rsplit("/fix/", 1)[0] + "/clean/train_leveldb"
    assert "source" not in (here / "hunt/replay/net.prototxt").read_text()
    assert os.path.isdir(clean) and "train_leveldb" not in (
        here / "hunt/fix/net.prototxt"
    ).read_text().replace(clean, "")


PYTHON_LAYER = textwrap.dedent("""\
    import caffe


    class Twice(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = 2 * bottom[0].data

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = 2 * top[0].diff
    """)


@pytest.mark.parametrize("module", ["twice_layer", "my_layers"])
def test_a_python_layer_beside_the_net_leaves_no_pycache_there(caffe, here, module):
    (here / f"{module}.py").write_text(PYTHON_LAYER)
    twice = (
        'layer { name: "twice" type: "Python" bottom: "fc_hidden" top: "doubled" '
        f'python_param {{ module: "{module}" layer: "Twice" }} }}'
    )
    (here / "net.prototxt").write_text(dummy_classifier(extra=twice, into="doubled"))
    report = hunt(solver(here, max_iter=5), workdir="hunt")
    assert report.training.iterations == 5 and report.verdict.cause == "none"
    assert [p for p in os.listdir(here) if p != "hunt"] == sorted(
        ["net.prototxt", "solver.prototxt", f"{module}.py"], key=os.listdir(here).index
    )
    assert not list(here.glob("**/__pycache__")) or all(
        str(p).startswith(str(here / "hunt")) for p in here.glob("**/__pycache__")
    )


def test_watch_of_a_pycaffe_training_with_a_python_layer_leaves_no_pycache(caffe, here):
    (here / "twice_layer.py").write_text(PYTHON_LAYER)
    twice = (
        'layer { name: "twice" type: "Python" bottom: "fc_hidden" top: "doubled" '
        'python_param { module: "twice_layer" layer: "Twice" } }'
    )
    (here / "net.prototxt").write_text(dummy_classifier(extra=twice, into="doubled"))
    solver(here, max_iter=3)
    (here / "train.py").write_text(
        "import sys; sys.path.insert(0, '.')\nimport caffe\ncaffe.set_mode_cpu()\n"
        "caffe.get_solver('solver.prototxt').step(3)\n"
    )
    result = watch([sys.executable, "train.py"], log="train.log")
    assert result.exit_status == 0
    assert not list(here.glob("**/__pycache__"))


def exploding(here):
    regression_data(here)
    return solver(here, lr=0.3)


def test_two_hunts_on_one_workdir_one_refuses_the_other_finds_the_cause(caffe, here):
    exploding(here)
    hunts = [run_cli("hunt", "solver.prototxt", "--workdir", "shared", cwd=here) for _ in range(2)]
    outcomes = sorted((p.wait(300), *p.communicate()) for p in hunts)
    (ok, out, _), (refused, _, err) = outcomes
    assert (ok, refused) == (1, 2)
    assert out.startswith("cause: exploding_gradients") and "fix: base_lr" in out
    assert err.count("\n") == 1 and "shared" in err and "Traceback" not in err


def test_default_workdirs_of_hunts_started_together_differ(caffe, here):
    exploding(here)
    hunts = [run_cli("hunt", "solver.prototxt", "--no-verify", cwd=here) for _ in range(2)]
    assert [p.wait(300) for p in hunts] == [1, 1]
    workdirs = [n for n in os.listdir(here) if n.startswith("nantools-hunt-")]
    assert len(workdirs) == 2
    for p in hunts:
        assert p.communicate()[0].startswith("cause: exploding_gradients")


def child_of(pid):
    """The pid of hunt's training process, once it has begun to train."""
    for _ in range(600):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read()
            except OSError:
                continue
            if parent == pid and b"caffe_nantools.hunt.child" in command:
                return int(entry)
        time.sleep(0.1)
    raise AssertionError("hunt's training never started")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_hunt_killed_with_sigkill_takes_its_training_with_it(caffe, here):
    big = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        'shape { dim: 64 dim: 2000 } shape { dim: 64 } data_filler { type: "gaussian" std: 1 } '
        'data_filler { type: "constant" value: 1 } } }\n'
    )
    (here / "net.prototxt").write_text(classifier(big).replace("num_output: 8", "num_output: 2000"))
    solver(here, lr=1e-4, max_iter=5000)
    proc = run_cli("hunt", "solver.prototxt", "--workdir", "long", cwd=here)
    child = child_of(proc.pid)
    log = here / "long" / "checked" / "train.log"
    for _ in range(600):
        if log.exists() and b"Iteration 1" in log.read_bytes():
            break
        time.sleep(0.1)
    assert alive(child)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 5
    while alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(child)


@pytest.fixture
def small_disk(here):
    """A folder on a tmpfs of a few MB (unmounted after the test)."""
    mounted = []

    def mount(name, size):
        folder = here / name
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"no tmpfs mount here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_more_iterations_than_the_disk_holds_are_refused_before_training(
    caffe, here, small_disk, capsys
):
    disk = small_disk("disk", "2m")
    exploding(here)
    assert main(["hunt", "solver.prototxt", "--workdir", "disk/w", "--iters", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "100000 iterations would write about" in err
    assert "MB free" in err or "KB free" in err
    assert not (disk / "w" / "checked" / "train.log").exists()


def test_a_disk_that_fills_while_training_is_disk_full_with_no_temporary_left(
    caffe, here, small_disk, capsys, monkeypatch
):
    disk = small_disk("disk", "1m")
    (here / "net.prototxt").write_text(dummy_classifier())
    solver(here, lr=0.001, max_iter=5000)
    # The estimate is not the log: here it is made far too low, and the disk fills anyway.
    monkeypatch.setattr(space, "LOG_BYTES_PER_LAYER", 1)
    monkeypatch.setattr(space, "LOG_BYTES_PER_ITERATION", 1)
    assert main(["hunt", "solver.prototxt", "--workdir", "disk/w", "--iters", "3000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full while training" in err and "Traceback" not in err
    left = [p for p in (disk / "w").rglob("*") if p.name.endswith(".tmp")]
    assert left == []


def test_a_disk_that_fills_while_the_fix_is_written_keeps_the_verdict(
    caffe, here, small_disk, capsys
):
    small_disk("disk", "3m")
    float_store(here / "train_lmdb", n=300, bad=(9,), shape=(3, 32, 32))
    (here / "net.prototxt").write_text(classifier(lmdb_layer("data", "train_lmdb", 4)))
    solver(here)
    assert main(["hunt", "solver.prototxt", "--workdir", "disk/w"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("cause: bad_input") and "record: 00000009 of train_lmdb" in out
    # LMDB says only "Input/output error" of a full tmpfs; the note names what was not written.
    assert "note: the fix could not be written or tried: " in out and "clean/train_lmdb" in out
    assert "fix:" not in out.split("stages:")[0]
