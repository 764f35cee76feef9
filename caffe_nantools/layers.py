"""Caffe Python layers. This module runs inside Caffe: it imports numpy, caffe and the
package's own pure-numpy modules, nothing else.

Use in a net (the module is an import name, so caffe_nantools must be importable, e.g. on
PYTHONPATH or installed)::

    layer {
      name: "nancheck/fc7"  type: "Python"  bottom: "fc7"  top: "fc7"
      python_param { module: "caffe_nantools.layers"  layer: "CheckFiniteLayer"
                     param_str: "name=fc7 blobs=fc7" }
    }
"""

import caffe

from caffe_nantools.checking import PHASES, Checker, parse_param_str
from caffe_nantools.errors import CheckConfigError

__all__ = ["CheckFiniteLayer", "checkFiniteLayer"]


def _address(array) -> int:
    return array.__array_interface__["data"][0]


class CheckFiniteLayer(caffe.Layer):
    """Checks every bottom's data in forward and every top's diff in backward for NaN/inf.

    In-place (top = bottom) it only looks. Not in-place it also copies data forward and diffs
    backward, so the net computes exactly what it would without the layer. Options come from
    ``param_str``: see :func:`caffe_nantools.checking.parse_param_str`. A bad blob raises
    :class:`caffe_nantools.NonFiniteError` (after writing its message to Caffe's log).
    """

    def setup(self, bottom, top):
        n = len(bottom)
        if n == 0 or len(top) != n:
            raise CheckConfigError(
                f"CheckFiniteLayer needs as many tops as bottoms, at least one "
                f"(got {n} bottoms, {len(top)} tops)"
            )
        phase = PHASES.get(getattr(self, "phase", 0), "TRAIN")
        self._checker = Checker(parse_param_str(self.param_str), n, phase)
        self._n = n
        self._copied = None

    def reshape(self, bottom, top):
        for i in range(self._n):
            top[i].reshape(*bottom[i].shape)
        if self._copied is None:
            # Whether a top shares its bottom's memory (in-place) cannot change after setup.
            self._copied = [
                i for i in range(self._n) if _address(top[i].data) != _address(bottom[i].data)
            ]

    def forward(self, bottom, top):
        # Debian's pycaffe cannot iterate bottom/top (no to_python converter): index them.
        checker = self._checker
        if checker.start_forward():
            checker.check("forward", [bottom[i].data for i in range(self._n)])
        for i in self._copied:
            top[i].data[...] = bottom[i].data

    def backward(self, top, propagate_down, bottom):
        checker = self._checker
        if checker.backward_due:
            checker.check(
                "backward",
                [top[i].diff if propagate_down[i] else None for i in range(self._n)],
            )
        for i in self._copied:
            if propagate_down[i]:
                bottom[i].diff[...] = top[i].diff


#: The original StackOverflow answer's name for the layer, so existing prototxts keep working.
checkFiniteLayer = CheckFiniteLayer
