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


def _indented(text: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in text.splitlines(True))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _commented(text: str) -> str:
    """``text`` with a comment line above each layer and one after each closing brace."""
    lines = []
    for i, line in enumerate(text.splitlines(True)):
        if line.startswith("layer"):
            lines.append(f"# part {i} of the net\n")
        lines.append(line.replace("}\n", f"}}  # closes line {i}\n") if line == "}\n" else line)
    return "".join(lines)


_SETTINGS = (
    '# a short run\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 4\ndisplay: 10\n'
    'snapshot_prefix: "snap"\nsolver_mode: CPU\ntest_interval: 2\n'
)

#: Solvers that hold PHASED_NET inline (as Caffe's lenet_consolidated_solver.prototxt does), in
#: the layouts people write them in; each trains in Caffe as it is.
INLINE_SOLVERS = {
    "net_param": _SETTINGS + "test_iter: 1\nnet_param {\n" + _indented(PHASED_NET, "  ") + "}\n",
    "one line": _SETTINGS + "test_iter: 1\nnet_param { " + _one_line(PHASED_NET) + " }\n",
    "comments and tabs": _SETTINGS
    + "test_iter: 1\n# the net itself\nnet_param: {  # inline\n"
    + _indented(_commented(PHASED_NET), "\t")
    + "}  # end of the net\n# nothing after it\n",
    "train and two test nets": "train_net_param {\n"
    + _indented(PHASED_NET, "    ")
    + "}\n"
    + _SETTINGS
    + "test_iter: 1\ntest_net_param { "
    + _one_line(PHASED_NET)
    + " }\ntest_iter: 2\ntest_net_param {\n"
    + _indented(_commented(PHASED_NET), "  ")
    + "}\n",
    "windows line breaks": (
        _SETTINGS + "test_iter: 1\nnet_param {\n" + _indented(PHASED_NET, "  ") + "}\n"
    ).replace("\n", "\r\n"),
}
