"""What the cases are built of: solvers, small nets and their data, written into the case's
folder (paths relative to it, as Caffe opens them from where it runs)."""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import numpy as np


def write(folder: str, name: str, text: str) -> str:
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)
    return name


def solver(
    folder: str,
    seed: int,
    *,
    base_lr: float = 0.01,
    policy: Optional[str] = "fixed",
    max_iter: int = 30,
    extra: str = "",
    net: str = "net.prototxt",
) -> str:
    """``solver.prototxt``; ``policy=None`` writes none (Caffe has no default)."""
    lines = [f'net: "{net}"', f"base_lr: {base_lr:g}", "momentum: 0.9"]
    lines += [f'lr_policy: "{policy}"'] if policy else []
    lines += [f"max_iter: {max_iter}"] if max_iter else []
    lines += ["display: 10", f"random_seed: {seed}", "solver_mode: CPU", extra]
    return write(folder, "solver.prototxt", "\n".join(lines) + "\n")


def datums(path: str, images: Iterable[np.ndarray], labels: Sequence[int], bad=()) -> None:
    """An LMDB of Datums keyed 00000000..; uint8 images go to ``data``, float ones to
    ``float_data``; ``bad`` maps an index to raw bytes written instead of its Datum."""
    import lmdb
    from caffe.io import array_to_datum

    bad = dict(bad)
    env = lmdb.open(path, map_size=1 << 28)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(zip(images, labels)):
            value = bad[i] if i in bad else array_to_datum(image, int(label)).SerializeToString()
            txn.put(key(i).encode(), value)
    env.close()


def key(i: int) -> str:
    return f"{i:08d}"


def hdf5(folder: str, name: str, **datasets: np.ndarray) -> str:
    """``name`` (an HDF5 file) and ``name``.txt listing it; returns the list's name."""
    import h5py

    with h5py.File(os.path.join(folder, name), "w") as f:
        for dataset, values in datasets.items():
            f[dataset] = values.astype(np.float32)
    return write(folder, name + ".txt", name + "\n")


def image_list(folder: str, rng: np.random.RandomState, names: Sequence[str], replaced=()) -> str:
    """Small PNG-or-JPEG images (by their names' suffix), ``list.txt`` naming them with labels
    ``i % 3``, and the ImageData layer "images" reading it; ``replaced`` maps a name to the text
    written there instead of an image (None: no file at all)."""
    from PIL import Image

    replaced = dict(replaced)
    for name in names:
        pixels = rng.randint(0, 256, (6, 6, 3)).astype(np.uint8)
        if name not in replaced:
            Image.fromarray(pixels).save(os.path.join(folder, name))
        elif replaced[name] is not None:
            write(folder, name, replaced[name])
    write(folder, "list.txt", "".join(f"{n} {i % 3}\n" for i, n in enumerate(names)))
    return (
        'layer { name: "images" type: "ImageData" top: "data" top: "label" '
        "transform_param { scale: 0.00390625 } "
        'image_data_param { source: "list.txt" batch_size: 4 } }\n'
    )


def data_layer(name: str, source: str, batch: int, transform: str = "") -> str:
    return (
        f'layer {{ name: "{name}" type: "Data" top: "data" top: "label" {transform} '
        f'data_param {{ source: "{source}" backend: LMDB batch_size: {batch} }} }}\n'
    )


def hdf5_layer(name: str, source: str, batch: int, tops=("data", "label")) -> str:
    top = " ".join(f'top: "{t}"' for t in tops)
    return (
        f'layer {{ name: "{name}" type: "HDF5Data" {top} '
        f'hdf5_data_param {{ source: "{source}" batch_size: {batch} }} }}\n'
    )


def dummy_data(data: Sequence[int], label: Sequence[int], label_value: float = 1) -> str:
    """DummyData tops ``data`` (gaussian) and ``label`` (the constant ``label_value``)."""
    dims = lambda shape: " ".join(f"dim: {d}" for d in shape)  # noqa: E731
    return (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ {dims(data)} }} shape {{ {dims(label)} }} "
        'data_filler { type: "gaussian" std: 1 } '
        f'data_filler {{ type: "constant" value: {label_value:g} }} }} }}\n'
    )


def fc(name: str, bottom: str, outputs: int, *, relu: bool = False, extra: str = "") -> str:
    text = (
        f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" {extra} '
        f'inner_product_param {{ num_output: {outputs} weight_filler {{ type: "xavier" }} }} }}\n'
    )
    if relu:
        text += f'layer {{ name: "{name}_relu" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'
    return text


def conv(
    name: str, bottom: str, outputs: int, kernel: int, *, pad: int = 0, extra: str = ""
) -> str:
    return (
        f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
        f"convolution_param {{ num_output: {outputs} kernel_size: {kernel} pad: {pad} {extra}"
        'weight_filler { type: "xavier" } } }\n'
    )


def euclidean_loss(name: str, bottom: str, target: str) -> str:
    return (
        f'layer {{ name: "{name}" type: "EuclideanLoss" bottom: "{bottom}" bottom: "{target}" '
        f'top: "{name}" }}\n'
    )


def softmax_loss(bottom: str, name: str = "loss", extra: str = "") -> str:
    return (
        f'layer {{ name: "{name}" type: "SoftmaxWithLoss" bottom: "{bottom}" bottom: "label" '
        f'top: "{name}" {extra} }}\n'
    )


def images(rng: np.random.RandomState, n: int, shape=(3, 8, 8)) -> np.ndarray:
    """Small uint8 images whose mean brightness follows the class (``n % classes``)."""
    return rng.randint(0, 256, size=(n,) + shape).astype(np.uint8)


def conv_classifier(data: str, classes: int) -> str:
    """``data`` (tops data, label), a small conv, ReLU and MAX pooling, then the classifier."""
    return (
        data
        + (
            'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" '
            'convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }\n'
            'layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }\n'
            'layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
            "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        )
        + fc("ip1", "pool1", 32, relu=True)
        + fc("scores", "ip1", classes)
        + softmax_loss("scores")
    )


def classifier(data: str, classes: int, hidden: int = 16) -> str:
    """``data`` (tops data, label), a hidden layer with ReLU, the scores and SoftmaxWithLoss."""
    return (
        data
        + fc("hidden", "data", hidden, relu=True)
        + fc("scores", "hidden", classes)
        + softmax_loss("scores")
    )


def dummy_classifier(seed: int, extra: str, into: str) -> str:
    """Gaussian DummyData, a hidden layer with ReLU, ``extra`` after it and the scores reading
    ``into``."""
    data = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ dim: 4 dim: {6 + seed % 3} }} shape {{ dim: 4 }} "
        'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }\n'
    )
    return (
        data
        + fc("hidden", "data", 8, relu=True)
        + extra
        + fc("scores", into, 3)
        + softmax_loss("scores")
    )
