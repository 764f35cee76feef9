"""A stand-in for `caffe train` where there is no Caffe: prints a training log to stderr as
Caffe does, and acts on SIGHUP and SIGINT as -sighup_effect and -sigint_effect say (at the end
of an iteration, writing snapshot files as Caffe names them, in Caffe's wire format: their
values go non-finite with the first bad iteration's update)."""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_files import write_snapshot  # noqa: E402
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
    parser.add_argument(
        "-late_hup", action="store_true", help="a SIGHUP arrives once the handlers are put back"
    )
    parser.add_argument("-solver", help="read by watch (its snapshot settings), not here")
    parser.add_argument("-snapshot", type=int, default=0, help="the solver's snapshot interval")
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
        write(f"{STAMP}solver.cpp:258]     Train net output #0: accuracy = 0.{25 + i % 50}\n")
        write(
            f"{STAMP}solver.cpp:258]     Train net output #1: loss = {loss} (* 1 = {loss} loss)\n"
        )
        write(f"{STAMP}sgd_solver.cpp:112] Iteration {i}, lr = 0.01\n")
        sys.stderr.flush()
        time.sleep(args.pace)
        action = "stop" if "stop" in requests else "snapshot" if "snapshot" in requests else None
        requests.clear()
        bad_weights = args.nan_at is not None and i >= args.nan_at
        periodic = args.snapshot and (i + 1) % args.snapshot == 0
        if action == "snapshot" or (periodic and action != "stop"):
            snapshot(i + 1, bad_weights)
        if action == "stop":
            snapshot(i + 1, bad_weights)  # Caffe's snapshot_after_train
            write(f"{STAMP}solver.cpp:311] Optimization stopped early.\n")
            return 0
    snapshot(args.iterations, args.nan_at is not None and args.nan_at < args.iterations)
    write(f"{STAMP}solver.cpp:328] Optimization Done.\n")
    sys.stderr.flush()
    if args.late_hup:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGHUP)
    return 0


def snapshot(iteration: int, bad: bool) -> None:
    sys.stderr.write(snapshot_lines(iteration))  # Caffe names each file before it writes it
    sys.stderr.flush()
    weights = [[1.0, float("nan") if bad else 2.0], [0.5]]
    write_snapshot("snap", iteration, {"ip": weights})


if __name__ == "__main__":
    sys.exit(main())
