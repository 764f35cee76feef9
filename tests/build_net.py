"""Run in a subprocess by the tests: build nets with pycaffe and print, per net and phase, the
number of Python layers, or nothing if Caffe aborts (a failed CHECK kills the process).

    python3 build_net.py PHASE NET [NET ...]
"""

import os
import sys

os.environ.setdefault("GLOG_minloglevel", "3")
import caffe  # noqa: E402

caffe.set_mode_cpu()
phase = {"TRAIN": caffe.TRAIN, "TEST": caffe.TEST}[sys.argv[1]]
for path in sys.argv[2:]:
    net = caffe.Net(path, phase)
    print(path, sum(1 for layer in net.layers if layer.type == "Python"), flush=True)
