"""diagnose speed and memory, measured side by side in one run (in the image:
docker/run-benchmark diagnose_speed):

three generated logs, display 1, test passes every 500 iterations, whose values blow up and go
NaN: a debug_info log of a 60-layer net and a plain log of the same size (what a training
without debug_info logs: losses, train and test outputs, rates), both NaN near the end, and a
debug_info log that goes NaN a tenth of the way in and stays NaN (Caffe trains on: every value of
the rest of the log is NaN). diagnose against
Python iterating the file's lines (``for line in open(path)``), each in a fresh process for its
peak RSS, the two taking turns (best of ``--repeat`` each) so that load on the machine weighs on
both alike. Targets: diagnose within 3x of the line loop on the 1 GB debug_info logs and within
2x on the 1 GB plain log (the second pass over every line included), and peak RSS flat from
100 MB to 1 GB.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT]

from targets import FLAT, Targets, add_check_option  # noqa: E402

STAMP = "I1121 07:12:32.521270 10203 "
LAYERS = [(f"conv{i}", i % 3 != 2) for i in range(40)] + [(f"ip{i}", True) for i in range(20)]


def block(scale: float, bad_from: int = 10**9) -> str:
    """One iteration's forward and backward lines; layers from ``bad_from`` on are nan."""
    lines = [f"{STAMP}net.cpp:593]     [Forward] Layer data, top blob data data: 0.75"]
    for k, (name, params) in enumerate(LAYERS):
        value = "nan" if k >= bad_from else f"{0.5 * scale * (1 + k / 60):g}"
        lines.append(
            f"{STAMP}net.cpp:593]     [Forward] Layer {name}, top blob {name} data: {value}"
        )
        if params:
            lines.append(
                f"{STAMP}net.cpp:605]     [Forward] Layer {name}, param blob 0 data: 0.0312"
            )
            lines.append(
                f"{STAMP}net.cpp:605]     [Forward] Layer {name}, param blob 1 data: 0.0005"
            )
    for k, (name, params) in reversed(list(enumerate(LAYERS))):
        value = "nan" if k >= bad_from else f"{0.004 * scale:g}"
        lines.append(
            f"{STAMP}net.cpp:621]     [Backward] Layer {name}, bottom blob {name} diff: {value}"
        )
        if params:
            lines.append(
                f"{STAMP}net.cpp:632]     [Backward] Layer {name}, param blob 0 diff: {value}"
            )
            lines.append(
                f"{STAMP}net.cpp:632]     [Backward] Layer {name}, param blob 1 diff: {value}"
            )
    lines.append(
        f"E1121 07:12:32.521485 10203 net.cpp:721]     [Backward] All net params (data, diff): "
        f"L1 norm = (6256.24, {22.0 * scale:g}); L2 norm = (26.113, {9.04 * scale:g})"
    )
    return "\n".join(lines) + "\n"


def write_log(path: str, megabytes: int, debug_info: bool = True, persist: bool = False) -> int:
    """A log of about ``megabytes`` (with ``debug_info`` blocks, or a plain one), blowing up
    over 10 displayed iterations: its last ones, or (``persist``) those before a tenth of the
    way, NaN to the end after that; returns the NaN iteration."""
    healthy = block(1.0) if debug_info else ""
    nan = block(1e12, bad_from=0) if debug_info else ""
    per_iteration = len(healthy) + 300 if debug_info else 240
    total = megabytes * 2**20 // per_iteration
    bad = total // 10 if persist else total - 20
    with open(path, "w") as f:
        f.write(f"{STAMP}solver.cpp:289] Solving bench\n")
        for i in range(total):
            if i % 500 == 0:
                f.write(f"{STAMP}solver.cpp:347] Iteration {i}, Testing net (#0)\n")
                f.write(
                    f"{STAMP}net.cpp:593]     [Forward] Layer data, top blob data data: 0.75\n"
                    if debug_info
                    else f"{STAMP}solver.cpp:414]     Test net output #0: accuracy = 0.1\n"
                )
                f.write(
                    f"{STAMP}solver.cpp:414]     Test net output #1: loss = 1.2 (* 1 = 1.2 loss)\n"
                )
            if i < bad - 10:
                text, loss = healthy, f"{1.3 + (i % 97) / 1000:g}"
            elif i < bad:
                scale = 10.0 ** (i - bad + 11)
                text, loss = block(scale), f"{1.3 * scale:g}"
            elif i == bad:
                text, loss = block(1e12, bad_from=30), "nan"
            else:
                text, loss = nan, "nan"
            if debug_info:
                f.write(text)
            f.write(
                f"{STAMP}solver.cpp:239] Iteration {i} (12.5 iter/s, 0.08s/1 iters), loss = {loss}\n"
            )
            f.write(
                f"{STAMP}solver.cpp:258]     Train net output #0: loss = {loss} (* 1 = {loss} loss)\n"
            )
            f.write(f"{STAMP}sgd_solver.cpp:112] Iteration {i}, lr = 0.01\n")
    return bad


def child(what: str, path: str) -> None:
    from caffe_nantools.diagnose import diagnose

    start = time.perf_counter()
    if what == "lines":
        with open(path) as f:
            for _ in f:
                pass
        answer = ""
    else:
        result = diagnose(path)
        first = result.first_nonfinite
        answer = f"{first.iteration} {first.layer}"
    seconds = time.perf_counter() - start
    print(f"{seconds} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {answer}")


def measure(what: str, path: str):
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, path],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, rss_kb, *answer = out.stdout.split()
    return float(seconds), int(rss_kb) / 1024, " ".join(answer)


def side_by_side(path: str, repeat: int):
    """The best (fastest) of ``repeat`` runs of the line loop and of diagnose, taking turns."""
    measure("lines", path)  # page cache warm for both
    lines, ours = [], []
    for _ in range(repeat):
        lines.append(measure("lines", path))
        ours.append(measure("diagnose", path))
    return min(lines, key=lambda m: m[0]), min(ours, key=lambda m: m[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument(
        "--small", type=int, default=100, help="the size of the log for the memory comparison"
    )
    parser.add_argument("--repeat", type=int, default=5)
    add_check_option(parser)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    targets = Targets()
    runs = [
        ("debug_info", args.small, None),
        ("debug_info", args.megabytes, 3),
        ("persisting NaN debug_info", args.megabytes, 3),
        ("plain", args.megabytes, 2),
    ]
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for kind, megabytes, target in runs:
            path = os.path.join(folder, f"{kind.split()[-1]}-{megabytes}.log")
            bad = write_log(
                path, megabytes, debug_info=kind != "plain", persist=kind.startswith("persisting")
            )
            size = os.path.getsize(path) / 2**20
            lines, ours = side_by_side(path, args.repeat)
            os.remove(path)
            expected = f"{bad} None" if kind == "plain" else f"{bad} conv30"
            assert ours[2] == expected, (ours[2], expected)
            if kind == "debug_info":
                rows.append((size, lines, ours))
            ratio = ours[0] / lines[0]
            row = (
                f"{size:7.0f} MB {kind} log: lines {size / lines[0]:7.0f} MB/s (peak RSS {lines[1]:5.0f} MB); "
                f"diagnose {size / ours[0]:7.0f} MB/s (peak RSS {ours[1]:5.0f} MB); time ratio {ratio:.2f}x"
            )
            if target is None:  # the small log is for memory: start-up weighs on its time
                print(row, flush=True)
            else:
                targets.check(f"{row} (target <= {target})", ratio <= target)
        (small, _, a), (big, _, b) = rows
        targets.check(
            f"diagnose peak RSS: {a[1]:.0f} MB on {small:.0f} MB, {b[1]:.0f} MB on {big:.0f} MB "
            f"(ratio {b[1] / a[1]:.2f}; target: flat, <= {FLAT})",
            b[1] / a[1] <= FLAT,
        )
    targets.exit(args)


if __name__ == "__main__":
    main()
