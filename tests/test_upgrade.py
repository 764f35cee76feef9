"""V1 nets rewritten in today's format, comments and layout kept, as Caffe's upgrade would."""

import os
import subprocess

import pytest

from caffe_nantools.inject import inject_text, remove_text
from caffe_nantools.prototxt.net import Net
from caffe_nantools.prototxt.upgrade import UpgradeError, upgrade_v1
from corpus import V1_NETS, corpus_params, read


V1 = """\
name: "old"  # a V1 net
layers {
  name: "conv1"
  type: CONVOLUTION   # the enum
  bottom: "data"
  top: "conv1"
  param: "w1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  convolution_param { num_output: 4 }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
"""


def test_v1_layers_become_layer_with_type_names_and_param_blocks():
    text, changes = upgrade_v1(V1)
    assert (
        text
        == """\
name: "old"  # a V1 net
layer {
  name: "conv1"
  type: "Convolution"   # the enum
  bottom: "data"
  top: "conv1"
  param { name: w1 lr_mult: 1 decay_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
""".replace("name: w1", 'name: "w1"')
    )
    assert changes == ["conv1: layers -> layer", "relu1: layers -> layer"]


@pytest.mark.parametrize("path", corpus_params(V1_NETS))
def test_corpus_v1_nets_upgrade_and_take_checks(path):
    text, changes = upgrade_v1(read(path))
    net = Net.parse(text)
    assert not net.v1 and len(changes) == len(net.layers)
    assert "layers {" not in text and "blobs_lr" not in text and "weight_decay" not in text
    result = inject_text(read(path), upgrade=True)
    assert result.upgraded == changes
    assert remove_text(result.text)[0] == text


BY_CAFFE = "; upgrade it with Caffe's upgrade_net_proto_text"


@pytest.mark.parametrize(
    "before",
    ["", 'name: "old"\n', '# an old net\nname: "old"\n\nlayers { name: "x" type: RELU }\n'],
)
@pytest.mark.parametrize(
    "text, message",
    [
        ("layers { name: 'a' type: FOO }", "unknown V1 layer type 'FOO'"),
        ("layers { layer { name: 'a' } }", "a V0 layer nested in 'layers'" + BY_CAFFE),
        (
            "layers { name: 'd' type: DATA data_param { scale: 0.1 } }",
            "data_param holds scale from before transform_param" + BY_CAFFE,
        ),
    ],
)
def test_what_the_upgrade_does_not_rewrite_is_refused_at_its_layer(before, text, message):
    with pytest.raises(UpgradeError) as info:
        upgrade_v1(before + text, "old.prototxt")
    assert str(info.value) == f"old.prototxt:{before.count(chr(10)) + 1}:1: {message}"


def caffe_upgrade(tmp_path, text, name):
    source, target = tmp_path / f"{name}.in", tmp_path / f"{name}.out"
    source.write_text(text)
    run = subprocess.run(
        ["upgrade_net_proto_text", str(source), str(target)],
        capture_output=True,
        text=True,
        env=dict(os.environ, GLOG_minloglevel="2"),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return target.read_text()


@pytest.mark.parametrize("path", corpus_params(V1_NETS))
def test_caffe_upgrades_ours_and_the_original_to_the_same_net(caffe, tmp_path, path):
    original = read(path)
    ours, _ = upgrade_v1(original)
    assert caffe_upgrade(tmp_path, ours, "ours") == caffe_upgrade(tmp_path, original, "original")
