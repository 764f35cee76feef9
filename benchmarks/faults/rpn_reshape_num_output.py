"""An RPN-style score conv with classes x anchors outputs, reshaped to 2 channels."""

import numpy as np

from faults import Key, layer_param
from faults._make import conv, dummy_data, softmax_loss, solver, write

SOURCE = "https://github.com/rbgirshick/py-faster-rcnn/issues/177"
SUMMARY = (
    "'reshape_layer.cpp:80] Check failed: 0 == bottom[0]->count() % explicit_count ... must be divisible by "
    "the product of the specified dimensions': rpn_cls_score had num_output 21 * 9 where 2 (bg/fg) * 9 "
    "anchors is right"
)
FAILS = "abort: must be divisible by the product of the specified dimensions"
SIZE = 5


def _anchors(seed):
    return int(np.random.RandomState(seed).choice([3, 5]))


def build(folder, seed, clean=False):
    rng = np.random.RandomState(seed)
    anchors = _anchors(seed)
    outputs = 2 * anchors if clean else int(rng.choice([3, 7])) * anchors
    net = dummy_data((2, 4, SIZE, SIZE), (2, 1, anchors * SIZE, SIZE))
    net += conv("rpn_cls_score", "data", outputs, 1)
    net += (
        'layer { name: "rpn_cls_score_reshape" type: "Reshape" bottom: "rpn_cls_score" '
        'top: "rpn_cls_score_reshape" reshape_param { shape { dim: 0 dim: 2 dim: -1 dim: 0 } } }\n'
    )
    write(folder, "net.prototxt", net + softmax_loss("rpn_cls_score_reshape", "rpn_loss_cls"))
    return solver(folder, seed, max_iter=10)


def key(seed):
    two = 2 * _anchors(seed)
    right = layer_param(
        "rpn_cls_score",
        "convolution_param.num_output",
        lambda v: v == [two],
        f"num_output {two} (2 x anchors)",
    )
    return Key(
        ("caffe_abort", "config"), ("rpn_cls_score_reshape", "rpn_cls_score"), fixes=(right,)
    )
