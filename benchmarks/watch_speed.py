"""watch speed (in the image: docker/run-benchmark watch_speed): a generated debug_info log
stream (a 60-layer net, display 1) through ``caffe-nantools watch -- COMMAND > file`` against
``COMMAND > file`` alone, where COMMAND is ``cat`` of the stream (as fast as the machine goes)
and a writer that sends it at 200 MB/s, the rate watch must keep up with (target: >= 0.8x).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from diagnose_speed import STAMP, block  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402

PACER = """
import sys, time
path, rate = sys.argv[1], float(sys.argv[2]) * 2 ** 20
out = sys.stdout.buffer
start, sent = time.perf_counter(), 0
with open(path, "rb") as f:
    for piece in iter(lambda: f.read(1 << 20), b""):
        out.write(piece)
        out.flush()
        sent += len(piece)
        ahead = sent / rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
"""


def write_stream(path: str, megabytes: int) -> None:
    """A healthy debug_info log: every value finite, nothing growing."""
    healthy = block(1.0)
    with open(path, "w") as f:
        f.write(f"{STAMP}solver.cpp:289] Solving bench\n")
        i = 0
        while f.tell() < megabytes * 2**20:
            f.write(healthy)
            f.write(
                f"{STAMP}solver.cpp:239] Iteration {i} (12.5 iter/s, 0.08s/1 iters), loss = 1.3\n"
            )
            f.write(
                f"{STAMP}solver.cpp:258]     Train net output #0: loss = 1.3 (* 1 = 1.3 loss)\n"
            )
            f.write(f"{STAMP}sgd_solver.cpp:112] Iteration {i}, lr = 0.01\n")
            i += 1


def timed(command, folder: str) -> float:
    out = os.path.join(folder, "out.txt")
    for name in ("out.txt", "watch.log"):
        if os.path.exists(os.path.join(folder, name)):
            os.unlink(os.path.join(folder, name))
    env = dict(os.environ, PYTHONPATH=ROOT)
    start = time.perf_counter()
    with open(out, "wb") as f:
        subprocess.run(
            command, stdout=f, stderr=subprocess.DEVNULL, cwd=folder, env=env, check=True
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="MB/s of the paced stream")
    parser.add_argument("--repeat", type=int, default=3)
    add_check_option(parser)
    args = parser.parse_args()
    targets = Targets()
    with tempfile.TemporaryDirectory() as folder:
        stream = os.path.join(folder, "stream.log")
        write_stream(stream, args.megabytes)
        size = os.path.getsize(stream) / 2**20
        watch = [sys.executable, "-m", "caffe_nantools", "watch", "--log", "watch.log", "--"]
        for label, command in (
            ("cat", ["cat", stream]),
            (f"paced at {args.rate:g} MB/s", [sys.executable, "-c", PACER, stream, str(args.rate)]),
        ):
            alone = min(timed(command, folder) for _ in range(args.repeat))
            watched = min(timed(watch + command, folder) for _ in range(args.repeat))
            assert os.path.getsize(os.path.join(folder, "out.txt")) == os.path.getsize(stream)
            assert os.path.getsize(os.path.join(folder, "watch.log")) == os.path.getsize(stream)
            row = (
                f"{size:5.0f} MB, {label:>20}: alone {size / alone:7.0f} MB/s, through watch {size / watched:7.0f} MB/s, "
                f"ratio {alone / watched:.2f}x"
            )
            if command[0] == "cat":  # as fast as the pipe goes: the target is at the paced rate
                print(row)
            else:
                targets.check(
                    f"{row} (target >= 0.8 at {args.rate:g} MB/s)", alone / watched >= 0.8
                )
    targets.exit(args)


if __name__ == "__main__":
    main()
