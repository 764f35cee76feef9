"""Prototxt speed: parse + inject + print of a generated 2,000-layer net (target < 0.5 s), inject
on 2k and 8k in-place layers on one blob (target: ~4x apart, linear), and parser throughput
against protobuf's own text_format.Parse into caffe_pb2 (target: at least as fast), measured
side by side. Run in the image: docker/run-benchmark prototxt_speed.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # caffe_nantools from a checkout

from caffe_nantools.inject import inject_text  # noqa: E402
from caffe_nantools.prototxt import dump, parse  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402

BLOCK = """\
# block {i}
layer {{
  name: "conv{i}"
  type: "Convolution"
  bottom: "{bottom}"
  top: "conv{i}"
  param {{ lr_mult: 1 decay_mult: 1 }}
  param {{ lr_mult: 2 decay_mult: 0 }}
  convolution_param {{
    num_output: 64
    pad: 1
    kernel_size: 3
    weight_filler {{ type: "gaussian" std: 0.01 }}
    bias_filler {{ type: "constant" value: 0 }}
  }}
}}
layer {{
  name: "relu{i}"
  type: "ReLU"
  bottom: "conv{i}"
  top: "conv{i}"
}}
"""


def generated_net(layers: int) -> str:
    head = 'name: "generated"\nlayer {\n  name: "data"\n  type: "Input"\n  top: "data"\n  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }\n}\n'
    blocks = [
        BLOCK.format(i=i, bottom="data" if i == 0 else f"conv{i - 1}")
        for i in range((layers - 1) // 2)
    ]
    return head + "".join(blocks)


def in_place_net(layers: int) -> str:
    """One blob and ``layers`` in-place ReLUs on it, each a writer of the same blob."""
    head = 'layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
    return head + "".join(
        f'layer {{ name: "relu{i}" type: "ReLU" bottom: "x" top: "x" }}\n' for i in range(layers)
    )


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    add_check_option(parser)
    args = parser.parse_args()
    targets = Targets()
    measure(args, targets)
    targets.exit(args)


def measure(args, targets):
    text = generated_net(args.layers)
    n_layers = text.count("\nlayer {") + 1
    mb = len(text.encode()) / 1e6
    print(f"Python {sys.version.split()[0]}; generated net: {n_layers} layers, {mb:.2f} MB")

    total = best(lambda: inject_text(text, "generated.prototxt"), args.repeat)
    targets.check(
        f"parse + inject after every blob + print: {total:.3f} s (target < 0.5 s)", total < 0.5
    )
    small, large = (
        best(lambda n=n: inject_text(in_place_net(n), "in_place.prototxt", each=True), args.repeat)
        for n in (2000, 8000)
    )
    targets.check(
        f"inject --each on in-place layers of one blob: 2k {small:.3f} s, 8k {large:.3f} s, "
        f"ratio {large / small:.1f}x (target ~4x: linear, <= 5x)",
        large / small <= 5,
    )
    ours = best(lambda: parse(text), args.repeat)
    print(f"{'caffe_nantools.prototxt.parse':>40}: {mb / ours:7.2f} MB/s")
    assert dump(parse(text)) == text
    try:
        os.environ.setdefault("GLOG_minloglevel", "2")
        from caffe.proto import caffe_pb2
        from google.protobuf import text_format
        from google.protobuf.internal import api_implementation
    except ImportError as e:
        print(f"text_format comparison skipped: no caffe_pb2 ({e})")
        return
    theirs = best(lambda: text_format.Parse(text, caffe_pb2.NetParameter()), args.repeat)
    label = f"text_format.Parse ({api_implementation.Type()})"
    print(f"{label:>40}: {mb / theirs:7.2f} MB/s")
    targets.check(
        f"{'ratio (ours / text_format)':>40}: {theirs / ours:7.2f}x (target >= 1.0)",
        theirs / ours >= 1.0,
    )


if __name__ == "__main__":
    main()
