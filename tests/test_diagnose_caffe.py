"""diagnose on logs of real trainings that fail in known ways, written by Caffe itself
(`caffe train`, and pycaffe's solver for the case `caffe train` cannot run)."""

import re
import subprocess
import sys
import textwrap
from string import Template

import numpy as np

from caffe_nantools.diagnose import FirstNonfinite, diagnose
from caffe_nantools.inject import inject
from caffe_train import caffe_train, train_env

#: A small regression net on HDF5 rows; $extra goes between relu1 and ip2, which reads $into.
REGRESSION_NET = Template(
    textwrap.dedent(
        """\
    name: "regression"
    layer { name: "data" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "train.txt" batch_size: 4 } }
    layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
            inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
    layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
    $extra
    layer { name: "ip2" type: "InnerProduct" bottom: "$into" top: "ip2"
            inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }
    """
    )
)

POOLING_NET = Template(
    textwrap.dedent(
        """\
    name: "pooling"
    layer { name: "data" type: "DummyData" top: "data" top: "label"
            dummy_data_param { shape { dim: 4 dim: 1 dim: 9 dim: 9 } shape { dim: 4 }
                               data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 } } }
    layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: $stride } }
    layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
            inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
    """
    )
)

SOLVER = (
    'net: "net.prototxt"\nbase_lr: {base_lr}\nlr_policy: "{policy}"\nmomentum: 0.9\ndisplay: {display}\n'
    'debug_info: {debug}\nsnapshot_prefix: "snap"\nsolver_mode: CPU\n'
)


def regression_data(folder, nan_row=None):
    import h5py

    rng = np.random.RandomState(0)
    x = rng.randn(32, 16).astype(np.float32)
    y = (x.sum(1, keepdims=True) * 3).astype(np.float32)
    if nan_row is not None:
        x[nan_row, 3] = np.nan
    with h5py.File(str(folder / "train.h5"), "w") as f:
        f["data"] = x
        f["label"] = y
    (folder / "train.txt").write_text("train.h5\n")


def write_solver(
    folder, base_lr=0.01, policy="fixed", display=1, debug="true", max_iter=30, extra=""
):
    text = SOLVER.format(base_lr=base_lr, policy=policy, display=display, debug=debug)
    if max_iter is not None:
        text += f"max_iter: {max_iter}\n"
    (folder / "solver.prototxt").write_text(text + extra)


def pycaffe_steps(folder, steps):
    """Train with pycaffe's solver.step(), which runs even where `caffe train` would not."""
    script = (
        f"import caffe\ncaffe.set_mode_cpu()\ncaffe.SGDSolver('solver.prototxt').step({steps})\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=folder,
        capture_output=True,
        text=True,
        env=train_env(folder),
        timeout=300,
    )
    (folder / "train.log").write_text(run.stderr)


def run_diagnose(folder, net=True, solver=True):
    return diagnose(
        str(folder / "train.log"),
        net=str(folder / "net.prototxt") if net else None,
        solver=str(folder / "solver.prototxt") if solver else None,
    )


def test_a_planted_nan_sample_is_bad_input_at_its_batch(caffe, tmp_path):
    regression_data(tmp_path, nan_row=9)  # batch of 4: the third batch, iteration 2
    (tmp_path / "net.prototxt").write_text(REGRESSION_NET.substitute(extra="", into="ip1"))
    write_solver(tmp_path)
    caffe_train(tmp_path)
    result = run_diagnose(tmp_path)
    assert result.cause == "bad_input"
    assert result.first_nonfinite.layer == "data" and result.first_nonfinite.iteration == 2
    assert result.first_nonfinite.pass_ == "forward" and result.first_nonfinite.blob == "top data"
    assert any("scan train.txt --write-clean" in a for a in result.advice)


def test_a_base_lr_far_too_high_is_exploding_gradients(caffe, tmp_path):
    regression_data(tmp_path)
    (tmp_path / "net.prototxt").write_text(REGRESSION_NET.substitute(extra="", into="ip1"))
    write_solver(tmp_path, base_lr=0.3)
    caffe_train(tmp_path)
    result = run_diagnose(tmp_path)
    assert result.cause == "exploding_gradients"
    assert result.blowup is not None and result.blowup.orders >= 3
    assert result.blowup.start[0] < result.first_nonfinite.iteration
    assert result.began.pass_ == "update" and result.began.layer in ("ip1", "ip2")
    lowered = next(a for a in result.advice if a.startswith("lower base_lr to"))
    assert (
        "(from 0.3)" in lowered and float(lowered.split()[3]) < 0.03
    )  # by the update/weight ratios


def test_poly_without_max_iter_is_the_lr_policy_from_iteration_0(caffe, tmp_path):
    # `caffe train` runs max_iter iterations, none without it; pycaffe's step() runs anyway.
    (tmp_path / "net.prototxt").write_text(POOLING_NET.substitute(stride=2))
    write_solver(tmp_path, policy="poly", max_iter=None, extra="power: 1\n")
    pycaffe_steps(tmp_path, 3)
    result = run_diagnose(tmp_path)
    assert result.cause == "lr_policy"
    assert result.first_nonfinite.pass_ == "lr" and result.first_nonfinite.iteration == 0
    assert any("poly without max_iter" in a and "solver.prototxt:3" in a for a in result.advice)


def test_poly_past_max_iter_is_the_lr_policy(caffe, tmp_path):
    (tmp_path / "net.prototxt").write_text(POOLING_NET.substitute(stride=2))
    write_solver(tmp_path, policy="poly", max_iter=2, extra="power: 0.5\n")
    pycaffe_steps(tmp_path, 5)
    result = run_diagnose(tmp_path)
    assert result.cause == "lr_policy" and result.first_nonfinite.iteration == 3
    assert any("past max_iter 2" in a for a in result.advice)


def test_log_of_zero_is_layer_numerics_in_the_log_layer(caffe, tmp_path):
    regression_data(tmp_path)
    log_layer = 'layer { name: "log" type: "Log" bottom: "ip1" top: "logged" }'
    (tmp_path / "net.prototxt").write_text(
        REGRESSION_NET.substitute(extra=log_layer, into="logged")
    )
    write_solver(tmp_path, max_iter=3)
    caffe_train(tmp_path)
    result = run_diagnose(tmp_path)
    assert result.cause == "layer_numerics"
    lines = (tmp_path / "train.log").read_text().splitlines()
    first_bad = next(
        n
        for n, line in enumerate(lines, 1)
        if re.search(r"\[Forward\] Layer log, top blob logged data: -?(nan|inf)", line)
    )
    assert result.first_nonfinite == FirstNonfinite(
        iteration=0,
        pass_="forward",
        layer="log",
        blob="top logged",
        line=first_bad,
    )
    assert any("shift" in a for a in result.advice)


def test_a_max_pooling_window_past_the_input_is_blamed_on_the_pooling(caffe, tmp_path):
    (tmp_path / "net.prototxt").write_text(POOLING_NET.substitute(stride=5))
    write_solver(tmp_path, max_iter=3)
    caffe_train(tmp_path)
    result = run_diagnose(tmp_path)
    assert result.cause == "layer_numerics" and result.first_nonfinite.layer == "pool1"
    assert any("pool-empty-window" not in a and "past the input" in a for a in result.advice)


def test_with_display_2_the_trace_is_dated_by_the_loss_line_after_it(caffe, tmp_path):
    regression_data(tmp_path, nan_row=13)  # iteration 3, not displayed; its NaN reaches the weights
    (tmp_path / "net.prototxt").write_text(REGRESSION_NET.substitute(extra="", into="ip1"))
    write_solver(tmp_path, display=2, max_iter=8)
    caffe_train(tmp_path)
    result = run_diagnose(tmp_path)
    assert result.first_nonfinite.iteration == 4 and result.first_nonfinite.pass_ == "update"
    assert result.cause == "unknown" and any("display: 1" in a for a in result.advice)


def test_a_check_layer_error_names_the_blob_when_the_log_has_no_trace(caffe, tmp_path):
    regression_data(tmp_path, nan_row=9)
    (tmp_path / "plain.prototxt").write_text(REGRESSION_NET.substitute(extra="", into="ip1"))
    inject(str(tmp_path / "plain.prototxt"), output=str(tmp_path / "net.prototxt"), blobs=["data"])
    write_solver(tmp_path, debug="false")
    assert "Solving" in caffe_train(tmp_path, fails=True).log  # the check stopped the training
    result = run_diagnose(tmp_path)
    assert result.cause == "bad_input" and not result.debug_info
    assert result.first_nonfinite.blob == "data" and result.first_nonfinite.layer == "data"
    assert any("NonFiniteError" in e.text for e in result.evidence)


def batch_norm_net(depth):
    """``depth`` InnerProduct + BatchNorm pairs with use_global_stats and no statistics loaded:
    each BatchNorm divides by sqrt(eps) and the values overflow inside the first forward pass."""
    layers = [
        'layer { name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        'shape { dim: 4 dim: 8 } shape { dim: 4 dim: 8 } data_filler { type: "gaussian" std: 1 } '
        'data_filler { type: "gaussian" std: 1 } } }'
    ]
    bottom = "data"
    for k in range(1, depth + 1):
        layers.append(
            f'layer {{ name: "fc{k}" type: "InnerProduct" bottom: "{bottom}" top: "fc{k}" '
            'inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }'
        )
        layers.append(
            f'layer {{ name: "bn{k}" type: "BatchNorm" bottom: "fc{k}" top: "fc{k}" '
            "batch_norm_param { use_global_stats: true } }"
        )
        bottom = f"fc{k}"
    layers.append(
        f'layer {{ name: "loss" type: "EuclideanLoss" bottom: "{bottom}" bottom: "label" top: "loss" }}'
    )
    return "\n".join(layers) + "\n"


def test_a_batchnorm_without_statistics_is_the_origin_of_an_overflow_in_one_pass(caffe, tmp_path):
    (tmp_path / "net.prototxt").write_text(batch_norm_net(20))
    write_solver(tmp_path, max_iter=1)
    caffe_train(tmp_path)
    result = run_diagnose(tmp_path)
    assert result.first_nonfinite.iteration == 0 and result.first_nonfinite.pass_ == "forward"
    assert result.first_nonfinite.layer not in ("bn1", "fc1", "fc2")  # it overflowed far later
    assert result.began.layer == "bn1" and "all-zero statistics" in result.began.why
    assert result.cause == "layer_numerics" and any(
        "use_global_stats: false" in a for a in result.advice
    )


def test_an_image_list_naming_a_missing_file_is_a_caffe_abort_with_the_check_quoted(
    caffe, tmp_path
):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    names = [f"img{k}.png" for k in range(6)]
    for name in names[:2]:
        Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(str(tmp_path / "imgs" / name))
    (tmp_path / "list.txt").write_text("".join(f"{name} {k % 2}\n" for k, name in enumerate(names)))
    (tmp_path / "net.prototxt").write_text(
        textwrap.dedent(
            """\
        layer { name: "data" type: "ImageData" top: "data" top: "label"
                image_data_param { source: "list.txt" root_folder: "imgs/" batch_size: 2 } }
        layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
                inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
        """
        )
    )
    write_solver(tmp_path, debug="false", max_iter=10)
    caffe_train(tmp_path, fails=True)
    result = run_diagnose(tmp_path)
    assert result.cause == "caffe_abort" and result.first_nonfinite is None
    assert "Check failed" in result.abort["text"] and "img2.png" in result.abort["text"]
    assert any("Check failed" in s and "img2.png" in s for s in result.summary)
    assert any("could not be opened" in s for s in result.summary)
    assert any("caffe-nantools scan" in a for a in result.advice)
