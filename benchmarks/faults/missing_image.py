"""An image list naming one image that is not there."""

import numpy as np

from faults import Key, source_without
from faults._make import classifier, solver, write

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
    from PIL import Image

    rng = np.random.RandomState(seed)
    names = [f"img_{i:02d}.png" for i in range(N)]
    for name in names:
        if clean or name != _missing(seed):
            Image.fromarray(rng.randint(0, 256, (6, 6, 3)).astype(np.uint8)).save(
                f"{folder}/{name}"
            )
    write(folder, "list.txt", "".join(f"{n} {i % 3}\n" for i, n in enumerate(names)))
    data = (
        'layer { name: "images" type: "ImageData" top: "data" top: "label" transform_param { scale: 0.00390625 } '
        'image_data_param { source: "list.txt" batch_size: 4 } }\n'
    )
    write(folder, "net.prototxt", classifier(data, 3))
    return solver(folder, seed, max_iter=12)


def key(seed):
    gone = _missing(seed)
    return Key(
        ("bad_input", "caffe_abort"),
        ("images",),
        frozenset([gone]),
        (source_without("images", [gone]),),
    )
