"""replay's Caffe work, in a process of its own (:func:`caffe_nantools.replay.replay` starts
it): a failed CHECK in a layer's set-up, forward or backward ends this process through glog's
abort, not the command.

    python -m caffe_nantools.replay_child CONFIG.json

CONFIG holds ``bundle`` (the folder, checked by the command), ``gpu`` and ``progress``: a
file this process adds one JSON line to at each step, so that what it did before an abort is
kept: ``{"stage", "layer"}`` as a step begins (``device``, ``setup``, ``weights``, then
``forward`` and ``backward`` layer by layer), ``{"row"}`` for each array measured,
``{"refused"}`` (a ReplayError's message) for a bundle it cannot replay, ``{"raised"}`` for a
Python exception (a Python layer's), and ``{"done": true}`` at the end.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import IO, Optional

from caffe_nantools.bundle import ReplayError, check_python_layers, copy_weights, open_bundle
from caffe_nantools.replay import measure


#: Caffe's random seed in every replay.
REPLAY_SEED = 1


class Progress:
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, **record) -> None:
        # One line at a time, flushed: the next step may end the process.
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def stage(self, stage: str, layer: Optional[str] = None) -> None:
        self.write(stage=stage, layer=layer)


def run(config: dict, progress: Progress) -> None:
    import caffe

    gpu = config.get("gpu")
    progress.stage("device")
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_mode_gpu()
        caffe.set_device(int(gpu))
    # Every replay draws the same numbers (a Dropout's mask), so that two replays of one
    # bundle can be compared: a difference is then the threads', the hardware's or a layer's own.
    caffe.set_random_seed(REPLAY_SEED)
    bundle = open_bundle(config["bundle"])
    # Caffe imports a Python layer's module from sys.path: the bundle's folder is one place
    # for it, after PYTHONPATH and the current folder.
    sys.path.append(os.path.abspath(bundle.folder))
    check_python_layers(bundle)
    progress.stage("setup")
    # Without weights: they are copied in after their shapes are checked against the net's.
    net = caffe.Net(bundle.net_path, caffe.TRAIN)
    progress.stage("weights")
    params = dict(net.params.items())
    copy_weights(bundle, params)
    for top, batch in bundle.inputs.items():
        net.blobs[top].data[...] = batch
    names = list(net._layer_names)
    net.clear_param_diffs()
    # Layer by layer, so that each blob is measured as that layer left it: an in-place layer
    # after it changes the same memory.
    for name in names:
        progress.stage("forward", name)
        net.forward(start=name, end=name)
        for top in net.top_names[name]:
            progress.write(row=measure("data", f"{name}: {top}", net.blobs[top].data).to_dict())
        for i, blob in enumerate(params.get(name, ())):
            progress.write(row=measure("data", f"{name}: param {i}", blob.data).to_dict())
    for name in reversed(names):
        progress.stage("backward", name)
        net.backward(start=name, end=name)
        for bottom in net.bottom_names[name]:
            row = measure("diff", f"{name}: {bottom}", net.blobs[bottom].diff)
            progress.write(row=row.to_dict())
        for i, blob in enumerate(params.get(name, ())):
            progress.write(row=measure("diff", f"{name}: param {i}", blob.diff).to_dict())


def raised(e: BaseException) -> str:
    """The exception as one line, with where it was raised (a Python layer's file and line)."""
    frames = traceback.extract_tb(e.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{where}".replace("\n", " ")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        config = json.load(f)
    with open(config["progress"], "a") as out:
        progress = Progress(out)
        try:
            run(config, progress)
        except ReplayError as e:
            progress.write(refused=e.template)
        except Exception as e:  # a Python layer's, or Caffe's own: the command names the step
            progress.write(raised=raised(e))
        else:
            progress.write(done=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
