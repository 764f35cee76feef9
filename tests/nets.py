"""Nets the tests share."""

import textwrap

#: A small net with a TRAIN and a TEST data layer, an in-place ReLU, a TRAIN-only Dropout,
#: a loss and a TEST-only accuracy; DummyData, so Caffe builds it without files.
PHASED_NET = textwrap.dedent(
    """\
    name: "small"
    layer {
      name: "data"
      type: "DummyData"
      top: "data"
      top: "label"
      dummy_data_param {
        shape { dim: 8 dim: 1 dim: 12 dim: 12 } shape { dim: 8 }
        data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 }
      }
      include { phase: TRAIN }
    }
    layer {
      name: "data"
      type: "DummyData"
      top: "data"
      top: "label"
      dummy_data_param {
        shape { dim: 4 dim: 1 dim: 12 dim: 12 } shape { dim: 4 }
        data_filler { type: "gaussian" } data_filler { type: "constant" value: 2 }
      }
      include { phase: TEST }
    }
    layer {
      name: "conv1"
      type: "Convolution"
      bottom: "data"
      top: "conv1"
      convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } }
    }
    layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
    layer {
      name: "drop1"
      type: "Dropout"
      bottom: "conv1"
      top: "conv1"
      include { phase: TRAIN }
    }
    layer {
      name: "ip1"
      type: "InnerProduct"
      bottom: "conv1"
      top: "ip1"
      inner_product_param { num_output: 3 weight_filler { type: "xavier" } }
    }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
    layer {
      name: "accuracy"
      type: "Accuracy"
      bottom: "ip1"
      bottom: "label"
      top: "accuracy"
      include { phase: TEST }
    }
    """
)
