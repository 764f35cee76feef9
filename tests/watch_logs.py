"""Caffe training logs made to order, for the watch tests: debug_info blocks, losses, rates and
snapshot lines as `caffe train` prints them."""

import time
from typing import Optional

STAMP = "I1121 07:12:32.521270 10203 "
LAYERS = ("ip1", "ip2")


def block(scale: float, bad: bool = False) -> str:
    """One iteration's debug_info lines; ``bad``: ip2's top is nan."""
    lines = [f"{STAMP}net.cpp:593]     [Forward] Layer data, top blob data data: 0.75"]
    for name in LAYERS:
        value = "nan" if bad and name == "ip2" else f"{0.5 * scale:g}"
        lines.append(
            f"{STAMP}net.cpp:593]     [Forward] Layer {name}, top blob {name} data: {value}"
        )
        lines.append(f"{STAMP}net.cpp:605]     [Forward] Layer {name}, param blob 0 data: 0.0312")
    for name in reversed(LAYERS):
        diff = "nan" if bad else f"{0.004 * scale:g}"
        lines.append(
            f"{STAMP}net.cpp:621]     [Backward] Layer {name}, bottom blob {name} diff: {diff}"
        )
        lines.append(f"{STAMP}net.cpp:632]     [Backward] Layer {name}, param blob 0 diff: {diff}")
    lines.append(
        f"E1121 07:12:32.521485 10203 net.cpp:721]     [Backward] All net params (data, diff): "
        f"L1 norm = (6.2, {2.0 * scale:g}); L2 norm = (2.6, {0.9 * scale:g})"
    )
    return "\n".join(lines) + "\n"


def snapshot_lines(iteration: int, prefix: str = "snap") -> str:
    return (
        f"{STAMP}solver.cpp:464] Snapshotting to binary proto file {prefix}_iter_{iteration}.caffemodel\n"
        f"{STAMP}sgd_solver.cpp:284] Snapshotting solver state to binary proto file "
        f"{prefix}_iter_{iteration}.solverstate\n"
    )


def training_log(
    iterations: int,
    *,
    bad_at: Optional[int] = None,
    growth: float = 1.0,
    display: int = 1,
    debug: bool = True,
    snapshot: Optional[int] = None,
    loss: Optional[float] = None,
    lr: str = "0.01",
) -> str:
    """A run of ``iterations``: values grow ``growth``-fold per iteration, go nan at ``bad_at``;
    ``loss`` fixes the loss printed; a snapshot every ``snapshot`` iterations."""
    out = [f"{STAMP}solver.cpp:289] Solving regression\n"]
    for i in range(0, iterations, display):
        bad = bad_at is not None and i >= bad_at
        scale = growth**i
        if debug:
            out.append(block(scale, bad))
        value = "nan" if bad else f"{loss if loss is not None else 1.3 * scale:g}"
        out.append(
            f"{STAMP}solver.cpp:239] Iteration {i} (50 iter/s, 0.02s/1 iters), loss = {value}\n"
        )
        out.append(
            f"{STAMP}solver.cpp:258]     Train net output #0: loss = {value} (* 1 = {value} loss)\n"
        )
        out.append(f"{STAMP}sgd_solver.cpp:112] Iteration {i}, lr = {lr}\n")
        for k in range(i + 1, i + display + 1):
            if snapshot and k % snapshot == 0:
                out.append(snapshot_lines(k))
    return "".join(out)


def wait_for(path, text: str, timeout: float = 120.0) -> None:
    """Until the file at ``path`` holds ``text`` (a log being written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never came")
