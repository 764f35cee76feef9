"""watch speed (in the image: docker/run-benchmark watch_speed).

Throughput: a generated debug_info log stream (a 60-layer net, display 1) through
``caffe-nantools watch -- COMMAND > file`` against ``COMMAND > file`` alone, where COMMAND is
``cat`` of the stream (as fast as the machine goes) and a writer that sends it at 200 MB/s, the
rate watch must keep up with (target: >= 0.8x).

Stop latency: a stand-in for `caffe train` (Caffe's lines, an iteration that computes for a
while, SIGINT acted on at the end of an iteration as Caffe does) whose loss goes NaN at an
iteration, under watch while every core is kept busy: the iterations it ran after the one whose
output showed the first NaN (target: at most 1 for a net of 10 ms an iteration; a net of 50 us,
20,000 iterations a second, is measured too).
"""

import argparse
import os
import signal
import statistics
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


#: `caffe train` in miniature: each iteration computes for PACE seconds (a busy loop, as a net
#: keeps a core busy), then prints its loss line (NaN from iteration BAD on) and its rate line;
#: SIGINT is acted on at the end of an iteration, and the last one run is printed.
TRAINER = """
import signal, sys, time
pace, bad = float(sys.argv[-2]), int(sys.argv[-1])
stop = []
signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
signal.signal(signal.SIGHUP, signal.SIG_IGN)
err = sys.stderr
stamp = "I0101 00:00:00.000000  1 "
err.write(stamp + "solver.cpp:289] Solving bench\\n")
i = 0
while True:
    end = time.perf_counter() + pace
    while time.perf_counter() < end:
        pass
    loss = "nan" if i >= bad else "1.3"
    err.write(stamp + "solver.cpp:239] Iteration %d (50 iter/s, 0.02s/1 iters), loss = %s\\n" % (i, loss))
    err.write(stamp + "solver.cpp:258]     Train net output #0: loss = %s (* 1 = %s loss)\\n" % (loss, loss))
    err.write(stamp + "sgd_solver.cpp:112] Iteration %d, lr = 0.01\\n" % i)
    err.flush()
    if stop:
        err.write(stamp + "solver.cpp:311] Optimization stopped early.\\n")
        print(i)
        break
    i += 1
"""


def stop_latency(pace: float, runs: int, folder: str) -> list:
    """Iterations run after the first bad one, one number per run of the trainer under watch
    (as `caffe train -solver S`: its stop is SIGINT, the solver's snapshot_after_train on)."""
    caffe = os.path.join(folder, "caffe")
    with open(caffe, "w") as f:
        f.write(f"#!{sys.executable}\n{TRAINER}")
    os.chmod(caffe, 0o755)
    with open(os.path.join(folder, "solver.prototxt"), "w") as f:
        f.write('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n')
    late = []
    env = dict(os.environ, PYTHONPATH=ROOT)
    bad = max(20, int(0.5 / pace))
    for k in range(runs):
        log = os.path.join(folder, f"latency-{k}.log")
        done = subprocess.run(
            [sys.executable, "-m", "caffe_nantools", "watch", "--log", log, "--keep-good", "0"]
            + ["--", "./caffe", "train", "-solver", "solver.prototxt", str(pace), str(bad)],
            capture_output=True,
            text=True,
            cwd=folder,
            env=env,
            timeout=600,
        )
        os.unlink(log)
        late.append(int(done.stdout.split()[0]) - bad)
    return late


def busy_cores() -> list:
    """One busy loop per core (training that keeps every core busy), to be killed."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
    ]


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
    parser.add_argument("--runs", type=int, default=7, help="runs of each stop-latency measure")
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
        busy = busy_cores()
        try:
            for pace, label in ((0.01, "10 ms"), (0.00005, "50 us")):
                late = stop_latency(pace, args.runs, folder)
                row = (
                    f"stop latency, a net of {label} an iteration, every core busy: median "
                    f"{statistics.median(late):g}, max {max(late)} iterations after the first bad one "
                    f"({args.runs} runs)"
                )
                if pace >= 0.01:
                    targets.check(f"{row} (target: median <= 1)", statistics.median(late) <= 1)
                else:
                    print(row)
        finally:
            for proc in busy:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    targets.exit(args)


if __name__ == "__main__":
    main()
