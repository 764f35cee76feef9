"""Train a solver with plain pycaffe (no checks) and say whether it stayed finite: the proof
that a case fails as its report says, that its twin does not, and that a fix holds on another
seed. Run in the case folder, in its own process (a failed CHECK ends it):

    python3 _plain.py SOLVER ITERS [SEED]

SEED: train a copy of the solver with that random_seed, on a copy of its net without
caffe-nantools' checks. Prints one JSON line: finite, iterations, first (what went bad).
"""

import json
import os
import sys

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, os.getcwd())  # the case's Python layers, as Caffe finds them


def plain_copy(solver, seed):
    from caffe_nantools.inject import remove_text
    from caffe_nantools.prototxt import parse
    from caffe_nantools.solver_edits import set_fields
    from caffe_nantools.solver_settings import setting

    with open(solver) as f:
        text = f.read()
    net = str(setting(parse(text, solver), "net").typed(str_kind()))
    with open(net) as f:
        plain, _ = remove_text(f.read(), net)
    with open("plain_net.prototxt", "w") as f:
        f.write(plain)
    fields = {"net": '"plain_net.prototxt"', "random_seed": str(seed), "debug_info": "false"}
    with open("plain_solver.prototxt", "w") as f:
        f.write(set_fields(text, solver, fields))
    return "plain_solver.prototxt"


def str_kind():
    from caffe_nantools.prototxt import STRING

    return STRING


def bad(values):
    return not np.all(np.isfinite(values))


def main():
    solver, iters = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        solver = plain_copy(solver, int(sys.argv[3]))
    import caffe

    caffe.set_mode_cpu()
    s = caffe.get_solver(solver)
    for i in range(iters):
        s.step(1)
        first = next((f"output {n}" for n in s.net.outputs if bad(s.net.blobs[n].data)), None)
        first = first or next(
            (f"param {n}" for n, ps in s.net.params.items() for p in ps if bad(p.data)), None
        )
        if first:
            print(json.dumps({"finite": False, "iterations": i + 1, "first": first}))
            return
    print(json.dumps({"finite": True, "iterations": iters, "first": None}))


if __name__ == "__main__":
    main()
