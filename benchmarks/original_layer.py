"""The baseline: the StackOverflow answer's check layer, ported to Python 3 with its method
unchanged (count non-finite elements with ``np.sum(1 - np.isfinite(x))`` on every pass)."""

import caffe
import numpy as np


class OriginalCheckLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.prefix = self.param_str

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        for i in range(len(bottom)):
            bad = np.sum(1 - np.isfinite(bottom[i].data[...]))
            if bad > 0:
                raise Exception(
                    f"{self.prefix}: forward bottom {i} has {100.0 * bad / bottom[i].count:.2f}% non-finite"
                )

    def backward(self, top, propagate_down, bottom):
        for i in range(len(top)):
            if propagate_down[i]:
                bad = np.sum(1 - np.isfinite(top[i].diff[...]))
                if bad > 0:
                    raise Exception(
                        f"{self.prefix}: backward top {i} has {100.0 * bad / top[i].count:.2f}% non-finite"
                    )
