"""A mean file of another image size than the LMDB's records."""

import numpy as np

from faults import Key, layer_param
from faults._make import classifier, data_layer, datums, images, solver, write

SOURCE = "https://github.com/BVLC/caffe/issues/4113"
SUMMARY = (
    "'data_transformer.cpp:63] Check failed: datum_height == data_mean_.height() (760 vs. 256)': "
    "the mean file does not have the size of the training images"
)
FAILS = "abort: data_mean_"


def build(folder, seed, clean=False):
    from caffe.io import array_to_blobproto

    rng = np.random.RandomState(seed)
    size = int(rng.choice([6, 8, 10]))
    pictures = images(rng, 48, (3, size, size))
    datums(f"{folder}/train_lmdb", pictures, np.arange(48) % 3)
    mean_size = size if clean else size + int(rng.choice([2, 4]))
    mean = np.full((1, 3, mean_size, mean_size), 127.0, np.float32)
    with open(f"{folder}/mean.binaryproto", "wb") as f:
        f.write(array_to_blobproto(mean).SerializeToString())
    transform = 'transform_param { mean_file: "mean.binaryproto" scale: 0.00390625 }'
    write(folder, "net.prototxt", classifier(data_layer("data", "train_lmdb", 8, transform), 3))
    return solver(folder, seed, max_iter=20)


def key(seed):
    no_file = layer_param(
        "data", "transform_param.mean_file", lambda v: not v, "mean_value instead of mean_file"
    )
    return Key(("caffe_abort", "config", "bad_input"), ("data",), fixes=(no_file,))
