"""A classifier with a box-regression head whose targets are in pixels, trained at the
classifier's rate (rebuilt with BVLC layers: SoftmaxWithLoss and EuclideanLoss)."""

import numpy as np

from faults import Key, base_lr_at_most, has_clip_gradients
from faults._make import fc, hdf5, hdf5_layer, softmax_loss, solver, write

SOURCE = (
    "https://github.com/BVLC/caffe/issues/3398",
    "https://github.com/rbgirshick/py-faster-rcnn/issues/65",
)
SUMMARY = (
    "a multitask net (SoftmaxWithLoss + EuclideanLoss on 4 box values) gives loss2 = nan from iteration 20 "
    "while base_lr 0 stays finite; a far lower rate fixes it (Faster R-CNN's box deltas overflow the same way)"
)
FAILS = "nonfinite"


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    # Wide enough to overflow within 30 iterations at this rate, as the report's did by 20.
    width = rng.choice([480, 600, 800])
    x = rng.randn(96, 16).astype(np.float32)
    boxes = np.sort(rng.uniform(0, width, size=(96, 4)), axis=1)
    if clean:
        boxes /= width
    source = hdf5(folder, "train.h5", data=x, label=np.arange(96) % 3, boxes=boxes)
    net = (
        hdf5_layer("data", source, 8, ("data", "label", "boxes"))
        + fc("shared", "data", 32, relu=True)
        + fc("cls", "shared", 3)
        + softmax_loss("cls", "loss_cls", "loss_weight: 2")
        + fc("box", "shared", 4)
        + 'layer { name: "loss_box" type: "EuclideanLoss" bottom: "box" bottom: "boxes" top: "loss_box" }\n'
    )
    write(folder, "net.prototxt", net)
    return solver(folder, seed, base_lr=0.001, max_iter=40)


def key(seed):
    return Key(
        ("exploding_gradients", "bad_input"), fixes=(base_lr_at_most(1e-4) | has_clip_gradients(),)
    )
