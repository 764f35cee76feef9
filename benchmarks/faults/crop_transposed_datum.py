"""Images written into the LMDB as height x width x channels, read with a crop_size."""

import numpy as np

from faults import Key
from faults._make import classifier, data_layer, datums, solver, write

SOURCE = "https://github.com/BVLC/caffe/issues/4487"
SUMMARY = (
    "arrays of [H x W x C] given to caffe.io.array_to_datum become Datums of C=H, H=W, W=3, and "
    "training with a crop stops in setup: 'Check failed: datum_width >= crop_size (3 vs. 224)'"
)
FAILS = "abort: crop_size"
N = 40


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    height, width = int(rng.choice([9, 10])), int(rng.choice([10, 12]))
    crop = int(rng.choice([6, 8]))
    pictures = rng.randint(0, 256, size=(N, height, width, 3)).astype(np.uint8)  # as PIL gives them
    if clean:
        pictures = pictures.transpose(0, 3, 1, 2)
    datums(f"{folder}/train_lmdb", pictures, np.arange(N) % 3)
    transform = f"transform_param {{ crop_size: {crop} scale: 0.00390625 }}"
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 8, transform), 3))
    return solver(folder, seed, max_iter=12)


def key(seed):
    # The fix is in the data (transpose before array_to_datum): no fix of the files is scored.
    return Key(("caffe_abort", "bad_input", "config"), ("data",))
