"""A test loss for Caffe: mean of x^2 / 2 whose gradient is NaN for the samples named in
param_str (e.g. "1,3"), as a faulty custom loss would be."""

import caffe
import numpy as np


class NanGradientLoss(caffe.Layer):
    def setup(self, bottom, top):
        self.bad = [int(i) for i in self.param_str.split(",") if i]

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[0] = 0.5 * np.sum(x * x) / x.shape[0]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data
            grad = x / x.shape[0]
            grad[self.bad] = np.nan
            bottom[0].diff[...] = grad * top[0].diff[0]
