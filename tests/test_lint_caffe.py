"""What lint says about Caffe, checked against Caffe."""

import numpy as np
import pytest

from caffe_nantools.layertypes import empty_windows, pooled_size


@pytest.mark.parametrize("pool, empty_value", [("MAX", -np.finfo(np.float32).max), ("AVE", 0.0)])
def test_empty_pooling_windows_give_what_lint_says(caffe, tmp_path, pool, empty_value):
    path = tmp_path / "net.prototxt"
    path.write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 9 dim: 9 } } }\n'
        f'layer {{ name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: {pool} kernel_size: 3 stride: 5 }} }}\n'
    )
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["x"].data[...] = np.random.default_rng(0).random((1, 1, 9, 9)) + 1
    net.forward()
    y = net.blobs["y"].data[0, 0]
    assert y.shape == (pooled_size(9, 3, 5, 0),) * 2
    ((row, _, _),) = empty_windows(9, 3, 5, 0)
    assert (y[row, :] == empty_value).all() and (y[:, row] == empty_value).all()
    assert (y[:row, :row] > 0).all()
