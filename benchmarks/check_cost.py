"""What a finite check costs: per blob, and per training step of a CaffeNet-sized net.

Run inside the image (docker/run-benchmark check_cost). Prints, measured side by side:
1. the check cost as a ratio to one ``x.sum()`` pass over the same float32 blob, 4 KB..200 MB,
   for caffe_nantools.finite.is_finite, the original answer's method and np.isfinite(x).all()
   (target: is_finite <= 1.0 for blobs >= 1 MB);
2. the forward+backward time of a CaffeNet-sized net on the CPU with a CheckFiniteLayer after
   every top blob, and with the original answer's layer there instead, relative to the same
   net without checks (target: <= 1.01). Skipped when pycaffe is missing.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # original_layer, and caffe_nantools from a checkout
from caffe_nantools.finite import is_finite  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402

SIZES_MB = [0.004, 0.064, 1, 9.3, 50, 200]


def best_time(fn, budget=0.4):
    """Best-of-5 seconds per call, each repeat sized to about budget/5 seconds."""
    once = timeit.timeit(fn, number=1)
    number = max(1, int(budget / 5 / max(once, 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def blob_table(targets):
    print("check cost per blob, as a ratio to one x.sum() pass (float32, all finite)")
    print(f"{'blob':>9} {'x.sum()':>10} {'is_finite':>10} {'original':>9} {'isfinite.all':>13}")
    for mb in SIZES_MB:
        x = np.random.default_rng(0).standard_normal(int(mb * 1e6 / 4), dtype=np.float32)
        base = best_time(x.sum)
        ours = best_time(lambda x=x: is_finite(x))
        original = best_time(lambda x=x: np.sum(1 - np.isfinite(x)))
        plain = best_time(lambda x=x: np.isfinite(x).all())
        label = f"{mb * 1000:.0f} KB" if mb < 1 else f"{mb:g} MB"
        row = f"{label:>9} {base * 1e6:>8.1f}us {ours / base:>9.2f}x {original / base:>8.2f}x {plain / base:>12.2f}x"
        if mb >= 1:
            targets.check(f"{row}  (target: is_finite <= 1.00x)", ours / base <= 1.0)
        else:
            print(row)


CAFFENET = [
    # (name, type, params) in CaffeNet's order; ReLUs and dropouts are in place.
    ("conv1", "Convolution", "convolution_param { num_output: 96 kernel_size: 11 stride: 4 %s }"),
    ("relu1", "ReLU", None),
    ("pool1", "Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
    ("norm1", "LRN", "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"),
    (
        "conv2",
        "Convolution",
        "convolution_param { num_output: 256 pad: 2 kernel_size: 5 group: 2 %s }",
    ),
    ("relu2", "ReLU", None),
    ("pool2", "Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
    ("norm2", "LRN", "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"),
    ("conv3", "Convolution", "convolution_param { num_output: 384 pad: 1 kernel_size: 3 %s }"),
    ("relu3", "ReLU", None),
    (
        "conv4",
        "Convolution",
        "convolution_param { num_output: 384 pad: 1 kernel_size: 3 group: 2 %s }",
    ),
    ("relu4", "ReLU", None),
    (
        "conv5",
        "Convolution",
        "convolution_param { num_output: 256 pad: 1 kernel_size: 3 group: 2 %s }",
    ),
    ("relu5", "ReLU", None),
    ("pool5", "Pooling", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
    ("fc6", "InnerProduct", "inner_product_param { num_output: 4096 %s }"),
    ("relu6", "ReLU", None),
    ("drop6", "Dropout", "dropout_param { dropout_ratio: 0.5 }"),
    ("fc7", "InnerProduct", "inner_product_param { num_output: 4096 %s }"),
    ("relu7", "ReLU", None),
    ("drop7", "Dropout", "dropout_param { dropout_ratio: 0.5 }"),
    ("fc8", "InnerProduct", "inner_product_param { num_output: 1000 %s }"),
]
FILLERS = (
    'weight_filler { type: "gaussian" std: 0.005 } bias_filler { type: "constant" value: 0.1 }'
)


def caffenet(batch, check):
    """CaffeNet's layers on an Input blob; check is None, 'ours' or 'original'."""
    lines = [
        'name: "CaffeNet" force_backward: true',
        'layer { name: "data" type: "Input" top: "data" top: "label" input_param { '
        f"shape {{ dim: {batch} dim: 3 dim: 227 dim: 227 }} shape {{ dim: {batch} }} }} }}",
    ]
    bottom = "data"
    for name, kind, params in CAFFENET:
        in_place = kind in ("ReLU", "Dropout")
        top = bottom if in_place else name
        body = "" if params is None else (params % FILLERS if "%s" in params else params)
        lines.append(
            f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{top}" {body} }}'
        )
        lines.append(check_layer(check, f"check_{name}", top))
        bottom = top
    lines.append(
        f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{bottom}" bottom: "label" top: "loss" }}'
    )
    lines.append(check_layer(check, "check_loss", "loss"))
    return "\n".join(lines) + "\n"


def check_layer(check, name, blob):
    if check is None:
        return ""
    module, layer = {
        "ours": ("caffe_nantools.layers", "CheckFiniteLayer"),
        "original": ("original_layer", "OriginalCheckLayer"),
    }[check]
    return (
        f'layer {{ name: "{name}" type: "Python" bottom: "{blob}" top: "{blob}" python_param {{ '
        f'module: "{module}" layer: "{layer}" param_str: "name={name} blobs={blob}" }} }}'
    )


def step_table(batch, rounds, targets):
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe
    except ImportError as e:
        print(f"\ntrain-step table skipped: no pycaffe ({e})")
        return
    caffe.set_mode_cpu()
    rng = np.random.default_rng(0)
    nets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in (None, "ours", "original"):
            path = os.path.join(tmp, f"{variant}.prototxt")
            with open(path, "w") as f:
                f.write(caffenet(batch, variant))
            net = caffe.Net(path, caffe.TRAIN)
            net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape)
            net.blobs["label"].data[...] = rng.integers(0, 1000, batch)
            nets[variant] = net
    n_checks = sum(1 for layer in nets["ours"].layers if layer.type == "Python")

    def step(net):
        start = time.perf_counter()
        net.forward()
        net.backward()
        return time.perf_counter() - start

    for net in nets.values():
        step(net)  # warm-up: first-touch allocations
    times = {variant: [] for variant in nets}
    for _ in range(rounds):  # interleaved, so drift hits every variant alike
        for variant, net in nets.items():
            times[variant].append(step(net))
    plain = statistics.median(times[None])
    print(
        f"\ntrain step (forward+backward) of CaffeNet, batch {batch}, CPU, {rounds} interleaved rounds, median"
    )
    print(f"{'checks':>34} {'seconds':>8} {'ratio':>7}")
    print(f"{'none':>34} {plain:>8.3f} {1:>6.3f}x")
    for variant, label in (("ours", "CheckFiniteLayer"), ("original", "original answer's layer")):
        median = statistics.median(times[variant])
        row = f"{label + f' after all {n_checks} tops':>34} {median:>8.3f} {median / plain:>6.3f}x"
        if variant == "ours":
            targets.check(f"{row}  (target <= 1.01x)", median / plain <= 1.01)
        else:
            print(row)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--skip-net", action="store_true", help="only the per-blob table")
    add_check_option(parser)
    args = parser.parse_args()
    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}")
    targets = Targets()
    blob_table(targets)
    if not args.skip_net:
        step_table(args.batch, args.rounds, targets)
    targets.exit(args)


if __name__ == "__main__":
    main()
