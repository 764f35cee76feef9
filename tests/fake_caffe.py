"""A stand-in for `caffe train` where there is no Caffe: prints a training log to stderr as
Caffe does, and acts on SIGHUP and SIGINT as -sighup_effect and -sigint_effect say (at the end
of an iteration, writing snapshot files as Caffe names them)."""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from watch_logs import STAMP, block, snapshot_lines  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("-iterations", type=int, default=20)
    parser.add_argument("-nan_at", type=int)
    parser.add_argument("-pace", type=float, default=0.02)
    parser.add_argument("-sighup_effect", default="snapshot")
    parser.add_argument("-sigint_effect", default="stop")
    parser.add_argument("-deaf", action="store_true", help="ignore every signal it can")
    args = parser.parse_args()
    requests = []
    for signum, effect in (
        (signal.SIGHUP, args.sighup_effect),
        (signal.SIGINT, args.sigint_effect),
    ):
        signal.signal(
            signum, signal.SIG_IGN if args.deaf else lambda s, f, e=effect: requests.append(e)
        )
    if args.deaf:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    write = sys.stderr.write
    write(f"{STAMP}solver.cpp:289] Solving fake\n")
    for i in range(args.iterations):
        bad = args.nan_at is not None and i >= args.nan_at
        write(block(1.0, bad))
        loss = "nan" if bad else "1.3"
        write(f"{STAMP}solver.cpp:239] Iteration {i} (50 iter/s, 0.02s/1 iters), loss = {loss}\n")
        write(f"{STAMP}sgd_solver.cpp:112] Iteration {i}, lr = 0.01\n")
        sys.stderr.flush()
        time.sleep(args.pace)
        action = "stop" if "stop" in requests else "snapshot" if "snapshot" in requests else None
        requests.clear()
        if action == "snapshot":
            snapshot(i + 1)
        if action == "stop":
            snapshot(i + 1)  # Caffe's snapshot_after_train
            write(f"{STAMP}solver.cpp:311] Optimization stopped early.\n")
            return 0
    snapshot(args.iterations)
    return 0


def snapshot(iteration: int) -> None:
    for kind in ("caffemodel", "solverstate"):
        with open(f"snap_iter_{iteration}.{kind}", "w") as f:
            f.write("fake")
    sys.stderr.write(snapshot_lines(iteration))
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
