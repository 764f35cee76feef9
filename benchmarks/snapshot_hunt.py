"""A hunt from a snapshot costs what the failing window costs, not what the iterations before it
cost, measured side by side in one run (in the image: docker/run-benchmark snapshot_hunt):

a small LeNet (two convolutions, 28 x 28 uint8 images from an LMDB, batch 8) is trained with
plain pycaffe to a snapshot at iteration S (10,000 by default); its rate steps up a million-fold
a few iterations later (multistep), so the run explodes after the snapshot. Then
``hunt --snapshot`` from it and a hunt from scratch of the same solver (its ``--iters`` through
the failure) each find the failure, without trying a fix (``verify=False``: the from-scratch
fix would train every iteration again). Targets: the hunt from the snapshot takes <= 0.3x the
hunt from scratch, and both name the same cause and iteration.

A missed target is marked and makes the run exit 1 (``--no-check``: exit 0, for exploratory runs).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, "tests")]
from hunt_speed import lenet  # noqa: E402
from scan_speed import make_lmdb  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402

#: The hunt from the snapshot against the hunt from scratch, at most.
RATIO = 0.3
#: Iterations after the snapshot at which the rate steps up.
STEP_AFTER = 5

NET = lenet(
    'name: "small_lenet"\n'
    'layer { name: "mnist" type: "Data" top: "data" top: "label" transform_param { scale: 0.00390625 }\n'
    '        data_param { source: "digits_lmdb" backend: LMDB batch_size: 8 } }\n',
    (4, 8, 32),
)

#: The run to the snapshot, with plain pycaffe in a process of its own.
PLAIN = textwrap.dedent("""\
    import sys
    import caffe
    caffe.set_mode_cpu()
    solver = caffe.get_solver(sys.argv[1])
    solver.step(int(sys.argv[2]))
    solver.snapshot()
    """)


def write_run(folder, snapshot_at, window):
    """The LMDB, net and solver in ``folder``; the rate steps up STEP_AFTER iterations after
    the snapshot and max_iter ends the window."""
    make_lmdb(os.path.join(folder, "digits_lmdb"), 1000, (1, 28, 28), "uint8")
    with open(os.path.join(folder, "lenet.prototxt"), "w") as f:
        f.write(NET)
    with open(os.path.join(folder, "solver.prototxt"), "w") as f:
        f.write(
            'net: "lenet.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "multistep"\n'
            f"gamma: 1000000\nstepvalue: {snapshot_at + STEP_AFTER}\n"
            f"max_iter: {snapshot_at + window}\ndisplay: 0\nrandom_seed: 7\n"
            'snapshot_prefix: "lenet"\nsolver_mode: CPU\n'
        )
    return "solver.prototxt"


def plain_run(solver, iterations):
    """Seconds of the plain training to its snapshot, and the snapshot."""
    began = time.time()
    subprocess.run(
        [sys.executable, "-c", PLAIN, solver, str(iterations)],
        check=True,
        env=dict(os.environ, GLOG_minloglevel="2"),
    )
    return time.time() - began, f"lenet_iter_{iterations}.solverstate"


def cpu_seconds():
    """This process's CPU time and its finished children's (hunt's training, its replays)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def timed_hunt(solver, workdir, **options):
    """(wall seconds, CPU seconds, the report) of one hunt."""
    from caffe_nantools.hunt import hunt

    began, cpu = time.time(), cpu_seconds()
    report = hunt(solver, workdir=workdir, verify=False, **options)
    return time.time() - began, cpu_seconds() - cpu, report


def found(report):
    v = report.verdict
    trained = report.training.iterations if report.training is not None else 0
    said = report.reproducible.verdict if report.reproducible is not None else "not judged"
    return f"{v.cause} at iteration {v.iteration} ({trained} iterations trained; {said})"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--snapshot-at", type=int, default=10000, help="the snapshot's iteration")
    parser.add_argument("--window", type=int, default=40, help="iterations after it, at most")
    add_check_option(parser)
    args = parser.parse_args()
    targets = Targets()
    with tempfile.TemporaryDirectory(prefix="snapshot-hunt-") as folder:
        os.chdir(folder)  # Caffe and hunt open the net's relative paths from here
        solver = write_run(folder, args.snapshot_at, args.window)
        plain, state = plain_run(solver, args.snapshot_at)
        print(f"plain pycaffe training to the snapshot at {args.snapshot_at}: {plain:.1f} s")
        resumed, resumed_cpu, from_state = timed_hunt(solver, "from-snapshot", snapshot=state)
        print(
            f"hunt --snapshot {state}: {resumed:.1f} s ({resumed_cpu:.1f} s CPU): {found(from_state)}"
        )
        iters = args.snapshot_at + args.window
        scratch, scratch_cpu, from_start = timed_hunt(solver, "from-scratch", iters=iters)
        print(f"hunt from scratch: {scratch:.1f} s ({scratch_cpu:.1f} s CPU): {found(from_start)}")
        os.chdir(ROOT)
    one, other = from_state.verdict, from_start.verdict
    targets.check(
        f"hunt from the snapshot {resumed:.1f} s, from scratch {scratch:.1f} s: ratio "
        f"{resumed / scratch:.2f}x (target <= {RATIO}x; in CPU seconds {resumed_cpu / scratch_cpu:.2f}x)",
        resumed / scratch <= RATIO,
    )
    targets.check(
        f"the same finding: {one.cause} at {one.iteration} and {other.cause} at {other.iteration} "
        "(target: the same cause and iteration, after the snapshot)",
        (one.cause, one.iteration) == (other.cause, other.iteration) != ("none", None)
        and one.iteration >= args.snapshot_at,
    )
    targets.exit(args)


if __name__ == "__main__":
    main()
