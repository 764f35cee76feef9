"""hunt's training process: steps the checked solver one iteration at a time under the guard,
and at the first failure saves the replay bundle (the weights as they were at the start of
the failing iteration, that iteration's input batch) and reports what failed.

Runs next to Caffe, in its own process so that a Caffe abort (a failed CHECK, a segfault) ends
this process and not hunt: it imports numpy, caffe and the package's pure-numpy modules only.

    python -m caffe_nantools.hunt.child CONFIG.json

CONFIG holds ``solver``, ``iters``, ``gpu``, ``max_abs``, ``replay`` (a folder) and
``result`` (where the JSON result goes); to resume, ``restore`` (a solver state) and ``advance``
(``layers``, the data layers to advance by ``batches`` each before training).
"""

import contextlib
import errno
import json
import os
import shutil
import sys
import time

import numpy as np

from caffe_nantools.errors import NonFiniteError
from caffe_nantools.guard import Guard

#: The exit status of a training whose result or replay bundle found the disk full.
EXIT_NO_SPACE = 28  # errno's ENOSPC

#: Layer types whose tops are the batch read from a source.
DATA_TYPES = (
    "Data",
    "HDF5Data",
    "ImageData",
    "WindowData",
    "MemoryData",
    "DummyData",
    "AnnotatedData",
    "Input",
    "Python",
)


def data_tops(net):
    """The tops of the net's data layers (the input batch), by layer order."""
    tops = []
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type in DATA_TYPES and not list(net.bottom_names.get(name, [])):
            tops += [t for t in net.top_names[name] if t not in tops]
    return tops


def save_replay(folder, net, start_weights, error, iteration):
    """The weights at the start of the failing iteration, its batch, and a manifest."""
    os.makedirs(folder, exist_ok=True)
    for (_, _, blob), data in zip(_params(net), start_weights):
        blob.data[...] = data
    net.save(os.path.join(folder, "weights.caffemodel"))
    inputs = {}
    for top in data_tops(net):
        path = os.path.join(folder, _file_name(top) + ".npy")
        np.save(path, net.blobs[top].data)
        inputs[top] = os.path.basename(path)
    manifest = {
        "iteration": iteration,
        "inputs": inputs,
        "weights": "weights.caffemodel",
        "error": error.to_dict() if error is not None else None,
    }
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, default=str)


def _file_name(blob):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in blob)


def _params(net):
    return [(layer, i, blob) for layer, blobs in net.params.items() for i, blob in enumerate(blobs)]


def advance(net, layers, batches):
    """Each data layer in ``layers`` made to read ``batches`` batches (and nothing after it run):
    a resumed training then reads what the run read at the snapshot's iteration, as a solver
    state holds no position in the data."""
    names = list(net._layer_names)
    for name in layers:
        index = names.index(name)
        for _ in range(batches):
            net._forward(index, index)
    return batches if layers else 0


def train(config):
    import caffe

    if config.get("gpu") is not None:
        caffe.set_mode_gpu()
        caffe.set_device(int(config["gpu"]))
    else:
        caffe.set_mode_cpu()
    solver = caffe.get_solver(config["solver"])
    net = solver.net
    result = {"iterations": 0, "error": None, "lr": None, "seconds": 0.0}
    if config.get("restore"):
        solver.restore(config["restore"])
        result["start"] = int(solver.iter)
        result["skipped"] = advance(net, **config["advance"])
    guard = Guard(solver, max_abs=config.get("max_abs"))
    params = _params(net)
    start_weights = [np.empty_like(blob.data) for _, _, blob in params]
    began = time.time()
    try:
        for _ in range(int(config["iters"])):
            # The weights at the start of each iteration, for the replay of the one that fails.
            for saved, (_, _, blob) in zip(start_weights, params):
                np.copyto(saved, blob.data)
            guard.step(1)
            result["iterations"] += 1
    except NonFiniteError as e:
        iteration = int(solver.iter) if e.by == "check" else e.iteration
        result["error"] = e.to_dict()
        result["failed_iteration"] = iteration
        # A replay bundle replays a training iteration, not a test pass.
        if config.get("replay") and e.phase != "TEST":
            save_replay(config["replay"], net, start_weights, e, iteration)
    result["seconds"] = time.time() - began
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        config = json.load(f)
    temporary = config["result"] + ".tmp"
    try:
        result = train(config)
        with open(temporary, "w") as f:
            json.dump(result, f, indent=2, default=str)
        os.replace(temporary, config["result"])
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # No result and no half-written file: hunt says the disk is full.
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if config.get("replay"):
            shutil.rmtree(config["replay"], ignore_errors=True)
        print(f"caffe-nantools: {e.filename or temporary}: {e.strerror}", file=sys.stderr)
        return EXIT_NO_SPACE
    return 0


if __name__ == "__main__":
    sys.exit(main())
