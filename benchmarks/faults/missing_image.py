"""An image list naming one image that is not there."""

import numpy as np

from faults import Key, source_without
from faults._make import classifier, image_list, solver, write

SOURCE = "https://github.com/BVLC/caffe/issues/3661"
SUMMARY = (
    "'Check failed: cv_img.data Could not load /images/...jpg': caffe train aborts in ImageDataLayer::load_batch "
    "on the first image that cannot be loaded, hours into training"
)
FAILS = "abort: Could not load"
N = 24


def _missing(seed):
    return f"img_{np.random.RandomState(seed).randint(4, N):02d}.png"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    names = [f"img_{i:02d}.png" for i in range(N)]
    gone = {} if clean else {_missing(seed): None}
    write(folder, "net.prototxt", classifier(image_list(folder, rng, names, gone), 3))
    return solver(folder, seed, max_iter=12)


def key(seed):
    gone = _missing(seed)
    return Key(
        ("bad_input", "caffe_abort"),
        ("images",),
        frozenset([gone]),
        (source_without("images", [gone]),),
    )
