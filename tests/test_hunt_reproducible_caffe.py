"""Whether a hunt's failure comes back from the state it failed in, with real Caffe: the failing
iteration replayed twice from its bundle; a failure that comes back the same way is reproducible,
one that does not (a layer whose state is the process's) or whose replays disagree (as threads
racing over a sum make them) is not, and the retry with one thread tells which."""

import json
import textwrap

import pytest

from caffe_nantools.hunt import hunt
from hunt_nets import classifier, dummy_classifier, float_lmdb, lmdb_layer, solver

#: A Python layer that passes its bottom through and writes NaN into one sample of its top where
#: ``spoils`` says. Its param_str is ``KIND ARG``: ``call N`` spoils this process's N-th forward
#: (a state the bundle does not hold); ``race COUNTER`` spoils every forward of the odd-numbered
#: processes (COUNTER counts them), and of every process with one thread, as a sum whose order
#: the threads decide would go one way or the other.
FLAKY = textwrap.dedent("""\
    import os
    import caffe
    import numpy as np


    class Flaky(caffe.Layer):
        def setup(self, bottom, top):
            self.kind, *self.args = self.param_str.split()
            self.calls = 0
            if self.kind == "race":
                runs = 1  # this process's number: the first file COUNTER.N it makes
                while True:
                    try:
                        os.close(os.open(f"{self.args[0]}.{runs}", os.O_CREAT | os.O_EXCL))
                        break
                    except FileExistsError:
                        runs += 1
                alone = os.environ.get("OPENBLAS_NUM_THREADS") == "1"
                self.racing = alone or runs % 2 == 1

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def spoils(self):
            if self.kind == "call":
                return self.calls == int(self.args[0])
            return self.racing

        def forward(self, bottom, top):
            self.calls += 1
            top[0].data[...] = bottom[0].data
            if self.spoils():
                top[0].data[0, 0] = np.nan

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = top[0].diff
    """)


def flaky_net(here, param_str, name="wobble"):
    (here / "flaky_layer.py").write_text(FLAKY)
    layer = (
        f'layer {{ name: "{name}" type: "Python" bottom: "fc_hidden" top: "wobbled" '
        f'python_param {{ module: "flaky_layer" layer: "Flaky" param_str: "{param_str}" }} }}\n'
    )
    (here / "net.prototxt").write_text(dummy_classifier(layer, "wobbled"))
    return solver(here, max_iter=8)


@pytest.fixture
def many_threads(monkeypatch):
    """The machine's own thread settings, as a user's shell has them: none set to one."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def stage(report):
    return next(s for s in report.stages if s.name == "reproducible")


@pytest.mark.parametrize("bad, batch", [(9, 4), (14, 3)])
def test_a_bad_record_fails_again_in_both_replays(caffe, here, bad, batch):
    float_lmdb(here / "rows_lmdb", n=24, bad=(bad,))
    (here / "net.prototxt").write_text(classifier(lmdb_layer("reader", "rows_lmdb", batch)))
    report = hunt(solver(here, max_iter=10), workdir="hunt", verify=False, scan=False)
    assert report.verdict.iteration == bad // batch
    found = report.reproducible
    assert (found.replays, found.agree, found.came_back, found.one_thread) == (2, True, True, None)
    assert found.verdict == "reproducible" and found.differences == []
    assert found.replay.first_bad.name == "reader: data"
    assert stage(report).status == "ok"
    assert "  reproducible: reproducible\n" in report.format()
    assert json.loads(report.to_json())["reproducible"] == {
        "replays": 2,
        "agree": True,
        "came_back": True,
        "one_thread": None,
        "verdict": "reproducible",
        "differences": [],
    }


@pytest.mark.parametrize("call", [4])
def test_a_failure_of_the_processs_own_state_does_not_come_back(caffe, here, many_threads, call):
    report = hunt(flaky_net(here, f"call {call}"), workdir="hunt", verify=False)
    assert (report.verdict.layer, report.verdict.iteration) == ("wobble", call - 1)
    found = report.reproducible
    assert (found.replays, found.agree, found.came_back) == (2, True, False)
    assert found.one_thread.to_dict() == {"replays": 1, "agree": None, "came_back": False}
    assert found.verdict.startswith(
        f"not reproducible from the state of iteration {call - 1}: the failure does not come back"
    )
    assert "a state before it" in found.verdict and "hardware" in found.verdict
    assert stage(report).status == "found"
    assert f"  reproducible: {found.verdict}\n" in report.format()


@pytest.mark.parametrize("name", ["jitter_2"])
def test_replays_that_disagree_are_told_apart_by_one_thread(caffe, here, many_threads, name):
    counter = here / "run"
    report = hunt(flaky_net(here, f"race {counter}", name), workdir="hunt", verify=False)
    assert (report.verdict.layer, report.verdict.iteration) == (name, 0)
    # The training was process 1, the replays 2 and 3 (one finite, one spoilt), then two alone.
    assert sorted(p.name for p in here.glob("run.*")) == [f"run.{n}" for n in range(1, 6)]
    found = report.reproducible
    assert (found.replays, found.agree) == (2, False)
    assert found.one_thread.to_dict() == {"replays": 2, "agree": True, "came_back": True}
    spoilt = f"the data of {name}: wobbled"
    assert found.differences[0] in (
        f"first non-finite: none vs {spoilt}",
        f"first non-finite: {spoilt} vs none",
    )
    assert f"two replays disagree ({found.differences[0]})" in found.verdict
    assert "with one thread (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1) they agree" in (
        found.verdict
    )
    assert "the threads (BLAS, OpenMP) change the result" in found.verdict


def test_a_hunt_from_a_snapshot_that_stays_finite_says_the_failure_did_not_come_back(caffe, here):
    (here / "net.prototxt").write_text(dummy_classifier())
    path = solver(here, max_iter=30)
    s = caffe.get_solver(path)
    s.step(4)
    s.snapshot()
    report = hunt(path, workdir="hunt", snapshot="snap_iter_4.solverstate", iters=3)
    assert report.verdict.cause == "none"
    found = report.reproducible
    assert (found.replays, found.came_back) == (0, False)
    assert found.verdict.startswith(
        "not reproducible from the snapshot: iterations 4 to 6 stayed finite"
    )
    assert stage(report).status == "found"


def test_a_hunt_from_the_start_that_stays_finite_replays_nothing(caffe, here):
    (here / "net.prototxt").write_text(dummy_classifier())
    report = hunt(solver(here, max_iter=3), workdir="hunt")
    assert report.reproducible is None
    assert stage(report).status == "skipped"
    assert stage(report).summary == "the training stayed finite: no failure to replay"
