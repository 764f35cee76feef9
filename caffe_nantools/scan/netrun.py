"""The child process of ``scan --mode net``: builds the scanner net with pycaffe, runs it for
the given number of iterations and prints one JSON line per batch. Run apart from the scan so
that a record that makes Caffe abort (a failed CHECK) ends this process, not the scan.

    python -m caffe_nantools.scan.netrun NET PHASE ITERATIONS LABEL_TOP CONTRACTED TOP [TOP ...]

CONTRACTED: the tops (comma-separated) that a loss or metric layer has a contract on; each
row of theirs goes out as its distinct values and their counts.
"""

import json
import os
import sys

import numpy as np

from caffe_nantools.finite import finite_stats, is_finite


def batch_record(net, tops, label_top, contracted=()) -> dict:
    out = {}
    for top in tops:
        data = net.blobs[top].data
        flat = data.reshape(data.shape[0], -1) if data.ndim else data.reshape(1, 1)
        entry = {"n": int(flat.shape[0]), "bad": []}
        if not is_finite(flat):
            for row in np.flatnonzero(~np.isfinite(flat).all(axis=1)):
                s = finite_stats(flat[row])
                entry["bad"].append([int(row), s.nan, s.posinf, s.neginf, s.count])
        finite = flat[np.isfinite(flat)] if entry["bad"] else flat
        if finite.size:
            entry["stats"] = [
                float(finite.min()),
                float(finite.max()),
                float(finite.sum(dtype=np.float64)),
                int(finite.size),
            ]
        if top == label_top:
            entry["labels"] = flat[:, 0].tolist()
        if top in contracted:
            entry["values"] = [
                [v.tolist(), c.tolist()]
                for v, c in (np.unique(r, return_counts=True) for r in flat)
            ]
        out[top] = entry
    return out


def main(argv) -> int:
    path, phase, iterations, label_top, contracted, *tops = argv
    os.environ.setdefault("GLOG_minloglevel", "1")
    import caffe

    caffe.set_mode_cpu()
    net = caffe.Net(path, caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    for _ in range(int(iterations)):
        net.forward()
        sys.stdout.write(
            json.dumps(batch_record(net, tops, label_top, contracted.split(","))) + "\n"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
