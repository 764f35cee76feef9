"""The built-in example: a tiny net, a planted NaN and +inf, and the check layer naming them."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from caffe_nantools.errors import NonFiniteError
from caffe_nantools.pycaffe import load_caffe
from caffe_nantools.templates import check_layer, render

BATCH = 8


@dataclass
class DemoResult:
    """What the demo planted, and the error the check layer raised (None if it missed)."""

    nan_sample: int
    inf_sample: int
    error: Optional[NonFiniteError]

    @property
    def caught(self) -> bool:
        e = self.error
        return (
            e is not None
            and e.blob == "data"
            and e.stats.bad_samples == (self.nan_sample, self.inf_sample)
            and (e.stats.nan, e.stats.posinf) == (1, 1)
        )


def demo_net_text() -> str:
    """The demo net: Input ``data`` -> InnerProduct ``fc``, each checked in place."""
    return render(
        "demo_net.prototxt",
        batch=BATCH,
        check_data=check_layer(name="nancheck/data", blob="data", param_str="name=nancheck/data blobs=data"),
        check_fc=check_layer(name="nancheck/fc", blob="fc", param_str="name=nancheck/fc blobs=fc"),
    )


def run(*, planted: Tuple[int, int] = (2, 5), seed: int = 0) -> DemoResult:
    """Build the demo net in pycaffe, plant NaN and +inf in two samples, run forward.

    Args:
        planted: the batch indices that get the NaN and the +inf.
        seed: for the random input.

    Raises:
        CaffeUnavailableError: pycaffe is not importable.
    """
    caffe = load_caffe()
    caffe.set_mode_cpu()
    nan_sample, inf_sample = planted
    with tempfile.TemporaryDirectory(prefix="nantools-demo-") as tmp:
        path = os.path.join(tmp, "demo.prototxt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(demo_net_text())
        net = caffe.Net(path, caffe.TRAIN)
    data = np.random.default_rng(seed).standard_normal(net.blobs["data"].data.shape)
    data[nan_sample, 1, 2, 3] = np.nan
    data[inf_sample, 0, 0, 0] = np.inf
    net.blobs["data"].data[...] = data
    try:
        net.forward()
    except NonFiniteError as e:
        return DemoResult(nan_sample, inf_sample, e)
    return DemoResult(nan_sample, inf_sample, None)
