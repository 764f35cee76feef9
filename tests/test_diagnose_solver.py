"""diagnose with the solver, without a debug_info trace: an lr_policy that grows the rate is the
cause (not a lower base_lr), the solver and the log make one cause probable instead of
``unknown``, the hunt that confirms it is given with the user's solver, and the advice names the
user's files (or says in words what it cannot name), never an invented file name."""

import pytest

from caffe_logs import CaffeLog
from caffe_nantools.diagnose import diagnose

NET = (
    'layer { name: "data" type: "Input" top: "data" top: "label"\n'
    "  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }\n"
    'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"\n'
    '  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }\n'
)
#: A Log layer without a shift, which lint flags: log of values <= 0.
LOG_LAYER = 'layer { name: "logit" type: "Log" bottom: "fc" top: "logit" }\n'


def losses(values, start=0, rates=None):
    log = CaffeLog().solving()
    for i, value in enumerate(values, start):
        log.loss(i, value).lr(i, (rates or {}).get(i, "0.01"))
    return log


def files(tmp_path, solver: str, net: str = NET, net_name: str = "my_net.prototxt"):
    if net is not None:
        (tmp_path / net_name).write_text(net)
    path = tmp_path / "my_solver.prototxt"
    path.write_text(solver)
    return str(path)


def advice_and_summary(result):
    return " ".join(result.advice + result.summary)


@pytest.mark.parametrize(
    "policy, line",
    [
        ('lr_policy: "exp"\ngamma: 1.8\n', 4),
        ('lr_policy: "step"\nstepsize: 2\ngamma: 10\n', 5),
        ('lr_policy: "multistep"\nstepvalue: 2\nstepvalue: 4\ngamma: 5\n', 6),
        ('lr_policy: "inv"\ngamma: 0.5\npower: -3\n', 5),
    ],
)
def test_a_policy_that_grows_the_rate_is_the_cause_with_diagnose_too(
    tmp_path, monkeypatch, policy, line
):
    monkeypatch.chdir(tmp_path)
    solver = files(tmp_path, 'net: "my_net.prototxt"\nbase_lr: 0.01\n' + policy)
    rates = {i: f"{0.01 * 4**i:g}" for i in range(6)}
    log = losses(["2.3", "2.2", "3.1", "40", "9e+08", "nan"], rates=rates)
    result = diagnose(log.write(tmp_path / "train.log"), solver=solver)
    assert result.cause == "lr_policy"
    assert result.summary[0].startswith(f"the solver's lr_policy drives it ({solver}:{line})")
    assert "a lower base_lr or clip_gradients would only delay the NaN" in result.summary[0]
    assert "the log's lr grew from 0.01 (iteration 0) to 10.24 (iteration 5)" in result.summary[0]
    assert result.advice[0].startswith(f"{solver}:{line}: lr_policy ")
    assert not any("lower base_lr" in a for a in result.advice) and result.suggested == {}
    assert any(f"`caffe-nantools hunt {solver}`" in a for a in result.advice)


def test_a_policy_that_decays_leaves_the_explosion_to_base_lr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = files(
        tmp_path, 'net: "my_net.prototxt"\nbase_lr: 0.5\nlr_policy: "exp"\ngamma: 0.99\n'
    )
    log = losses(["2.3", "40", "9e+05", "3e+12", "nan"])
    result = diagnose(log.write(tmp_path / "train.log"), solver=solver)
    assert result.cause == "exploding_gradients"
    assert any("lower base_lr" in a for a in result.advice)


def test_nan_at_iteration_0_is_never_the_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = files(tmp_path, 'net: "my_net.prototxt"\nbase_lr: 0.01\nlr_policy: "exp"\ngamma: 2\n')
    result = diagnose(losses(["nan"]).write(tmp_path / "train.log"), solver=solver)
    assert result.cause == "bad_input"


@pytest.mark.parametrize(
    "base_lr, values, cause, why",
    [
        # lint finds the rate too high: an explosion, though the log shows no growth.
        ("0.9", ["2.3", "2.2", "2.4", "nan"], "exploding_gradients", "base_lr 0.9 is above"),
        # a sound rate, but the loss rose before the NaN.
        ("0.01", ["2.3", "1.9", "31", "nan"], "exploding_gradients", "the loss rose from 1.9"),
        # a sound rate, a steady loss, a sound net: most often a record of the data.
        ("0.01", ["2.3", "2.1", "2.2", "nan"], "bad_input", "most often a record of the data"),
        ("0.01", ["nan", "nan"], "bad_input", "before any update"),
    ],
)
def test_without_a_trace_the_solver_and_the_log_give_the_probable_cause(
    tmp_path, monkeypatch, base_lr, values, cause, why
):
    monkeypatch.chdir(tmp_path)
    solver = files(tmp_path, f'net: "my_net.prototxt"\nbase_lr: {base_lr}\nlr_policy: "fixed"\n')
    result = diagnose(losses(values).write(tmp_path / "train.log"), solver=solver)
    assert result.cause == cause
    (probable,) = [s for s in result.summary if s.startswith("probable cause")]
    assert "no debug_info trace to confirm it" in probable and why in probable
    assert any(f"`caffe-nantools hunt {solver}`" in a for a in result.advice)
    # The net the solver names is the one the advice's commands take.
    assert "my_net.prototxt" in " ".join(result.advice)


@pytest.mark.parametrize("iteration", [0, 4])
def test_a_net_setting_lint_flags_is_the_probable_layer(tmp_path, monkeypatch, iteration):
    monkeypatch.chdir(tmp_path)
    solver = files(
        tmp_path, 'net: "my_net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n', NET + LOG_LAYER
    )
    values = ["2.3"] * iteration + ["nan"]
    result = diagnose(losses(values).write(tmp_path / "train.log"), solver=solver)
    assert result.cause == "layer_numerics"
    assert any("logit" in a and "my_net.prototxt:" in a for a in result.advice)


def test_without_the_solver_the_cause_stays_unknown_and_hunt_is_offered(tmp_path):
    result = diagnose(losses(["2.3", "2.2", "nan"]).write(tmp_path / "train.log"))
    assert result.cause == "unknown"
    assert any("`caffe-nantools hunt SOLVER`" in a for a in result.advice)
    assert (
        result.advice[-1]
        == "NET and SOLVER above: your train net and your solver, which the log does not name"
    )


@pytest.mark.parametrize(
    "solver, net_words",
    [
        # the net inline: inject takes the solver itself, the other commands need a file
        (
            'net_param { layer { name: "data" type: "Input" top: "data" } }\nbase_lr: 0.01\nlr_policy: "fixed"\n',
            "NET above: the train net is inline in",
        ),
        # no net at all in the solver
        (
            'base_lr: 0.01\nlr_policy: "fixed"\n',
            "NET above: your train net, which the log does not name",
        ),
    ],
)
def test_a_net_that_is_no_file_is_said_in_words(tmp_path, monkeypatch, solver, net_words):
    monkeypatch.chdir(tmp_path)
    path = files(tmp_path, solver, net=None)
    result = diagnose(losses(["nan"]).write(tmp_path / "train.log"), solver=path)
    told = advice_and_summary(result)
    assert "train_val.prototxt" not in told
    assert "solver.prototxt" not in told.replace(path, "").replace("checked_solver.prototxt", "")
    assert any(a.startswith(net_words) for a in result.advice)


def test_inline_nets_get_the_trace_through_the_solver_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = files(tmp_path, 'net_param { }\nbase_lr: 0.01\nlr_policy: "fixed"\n', net=None)
    result = diagnose(losses(["2.3", "nan"]).write(tmp_path / "train.log"), solver=path)
    assert any(
        f"`caffe-nantools inject {path} -o checked_solver.prototxt --display 1`" in a
        for a in result.advice
    )


def test_a_net_the_solver_names_but_that_is_not_here_is_named_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = files(
        tmp_path, 'net: "models/elsewhere.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n', net=None
    )
    result = diagnose(losses(["nan"]).write(tmp_path / "train.log"), solver=path)
    assert "`caffe-nantools scan models/elsewhere.prototxt`" in " ".join(result.advice)
    assert not any(a.startswith("NET") for a in result.advice)


def test_an_abort_s_advice_names_the_solvers_net(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = files(tmp_path, 'net: "my_net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n')
    log = losses(["2.3"]).glog(
        "Check failed: label_value < num_labels (7 vs. 2)",
        level="F",
        source="softmax_loss_layer.cpp:129",
    )
    result = diagnose(log.write(tmp_path / "train.log"), solver=path)
    assert result.cause == "caffe_abort"
    assert "`caffe-nantools scan my_net.prototxt`" in " ".join(result.advice)
    assert "train_val" not in " ".join(result.advice)
