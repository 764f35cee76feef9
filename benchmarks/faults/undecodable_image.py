"""An image list naming a file that is there but is not an image OpenCV can decode."""

import numpy as np

from faults import Key, source_without
from faults._make import classifier, image_list, solver, write

SOURCE = "https://blog.csdn.net/huangynn/article/details/52947894"
SUMMARY = (
    "faulty input: make sure the training and validation sets hold no corrupt images (one picture was "
    "replaced on download by a page of another format); Caffe's ImageData stops on one it cannot decode"
)
FAILS = "abort: Could not load"
N = 24


def _broken(seed):
    return f"pic_{np.random.RandomState(seed).randint(4, N):02d}.jpg"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    names = [f"pic_{i:02d}.jpg" for i in range(N)]
    page = {} if clean else {_broken(seed): "<html><body>302 Found</body></html>\n"}
    write(folder, "net.prototxt", classifier(image_list(folder, rng, names, page), 3))
    return solver(folder, seed, max_iter=12)


def key(seed):
    broken = _broken(seed)
    return Key(
        ("bad_input", "caffe_abort"),
        ("images",),
        frozenset([broken]),
        (source_without("images", [broken]),),
    )
