"""What hunt's checked training costs, measured side by side in one run (in the image:
docker/run-benchmark hunt_speed):

1. hunt's training stage to iteration K (a check after every blob and in-place layer,
   debug_info every iteration, the guard's output, gradient and weight checks, the start
   weights kept for a replay) against a bare pycaffe ``solver.step(1)`` loop to the same K, each
   in a child process timing its loop only. Targets: <= 1.5x on a LeNet-size net (batch 64),
   <= 1.15x on a CaffeNet-size net (batch 8).
2. the whole demo hunt (write the demo, lint, scan, train, verdict, verify): target < 60 s.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]
from check_cost import caffenet  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402


def lenet(data_layer, widths=(20, 50, 500)):
    """LeNet on ``data_layer`` (tops data and label): its two convolutions' and its hidden
    layer's widths."""
    conv1, conv2, hidden = widths
    return data_layer + textwrap.dedent(f"""\
        layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
                convolution_param {{ num_output: {conv1} kernel_size: 5 weight_filler {{ type: "xavier" }} }} }}
        layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
        layer {{ name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
                convolution_param {{ num_output: {conv2} kernel_size: 5 weight_filler {{ type: "xavier" }} }} }}
        layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
        layer {{ name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" inner_product_param {{ num_output: {hidden} weight_filler {{ type: "xavier" }} }} }}
        layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
        layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
        layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
        """)


LENET = lenet(
    'name: "lenet"\n'
    'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param {\n'
    "        shape { dim: 64 dim: 1 dim: 28 dim: 28 } shape { dim: 64 }\n"
    '        data_filler { type: "gaussian" std: 0.3 } data_filler { type: "constant" value: 1 } } }\n'
)

BARE = textwrap.dedent("""\
    import json, sys, time
    import caffe
    caffe.set_mode_cpu()
    solver = caffe.get_solver(sys.argv[1])
    solver.step(1)  # the first step allocates; neither side counts it
    began = time.time()
    for _ in range(int(sys.argv[2])):
        solver.step(1)
    print(json.dumps({"seconds": time.time() - began}))
    """)


def trainable_caffenet(batch):
    """check_cost's CaffeNet with a DummyData layer (random images, label 1) for its Input."""
    lines = caffenet(batch, None).split("\n")
    lines[0] = 'name: "CaffeNet"'
    lines[1] = (
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        f"shape {{ dim: {batch} dim: 3 dim: 227 dim: 227 }} shape {{ dim: {batch} }} "
        'data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }'
    )
    return "\n".join(lines)


def solver_file(folder, net_text, name):
    net = os.path.join(folder, f"{name}.prototxt")
    with open(net, "w") as f:
        f.write(net_text)
    solver = os.path.join(folder, f"{name}_solver.prototxt")
    with open(solver, "w") as f:
        f.write(
            f'net: "{net}"\nbase_lr: 0.001\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 100000\n'
            "display: 0\nrandom_seed: 1\nsolver_mode: CPU\n"
        )
    return solver


def bare_seconds(solver, k):
    env = dict(os.environ, GLOG_minloglevel="2")
    out = subprocess.run(
        [sys.executable, "-c", BARE, solver, str(k)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def hunt_seconds(solver, k, folder):
    from caffe_nantools.hunt.inputs import make_copies, read_inputs
    from caffe_nantools.hunt.training import train

    inputs = read_inputs(solver, folder)
    copies = make_copies(inputs, os.path.join(folder, f"checked-{os.path.basename(solver)}-{k}"))
    # One more iteration than the bare loop: hunt's first step allocates as well.
    training = train(copies, k + 1, replay=False)
    assert training.finite, training
    return training.seconds * k / (k + 1)


def compare(name, net_text, k, runs, folder, targets, most):
    solver = solver_file(folder, net_text, name)
    bare, hunted = [], []
    for _ in range(runs):  # in turns, best of each
        bare.append(bare_seconds(solver, k))
        hunted.append(hunt_seconds(solver, k, folder))
    b, h = min(bare), min(hunted)
    targets.check(
        f"{name:>9} K={k:<4} bare solver.step {b / k * 1000:8.1f} ms/iter   hunt's training "
        f"{h / k * 1000:8.1f} ms/iter   ratio {h / b:5.2f}x (target <= {most})",
        h / b <= most,
    )


def demo_seconds():
    from caffe_nantools import demo

    began = time.time()
    result = demo.run()
    assert result.found
    return time.time() - began


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="repeats of each side, in turns (best of)"
    )
    parser.add_argument("--lenet-iters", type=int, default=40)
    parser.add_argument("--caffenet-iters", type=int, default=4)
    add_check_option(parser)
    args = parser.parse_args()
    targets = Targets()
    with tempfile.TemporaryDirectory(prefix="hunt-speed-") as folder:
        print(
            "hunt's training stage against a bare pycaffe solver.step loop (loop time only, best of "
            f"{args.runs})"
        )
        compare("LeNet", LENET, args.lenet_iters, args.runs, folder, targets, 1.5)
        if args.caffenet_iters:  # 0: without it (a smoke test of the benchmark)
            compare(
                "CaffeNet",
                trainable_caffenet(8),
                args.caffenet_iters,
                args.runs,
                folder,
                targets,
                1.15,
            )
    seconds = demo_seconds()
    targets.check(f"the whole demo hunt: {seconds:.1f} s (target < 60 s)", seconds < 60)
    targets.exit(args)


if __name__ == "__main__":
    main()
