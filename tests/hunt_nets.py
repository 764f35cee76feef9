"""Small nets, solvers and stores for the hunt tests with real Caffe."""

import textwrap

import numpy as np

from datums import datum
from stores import write_store

SOLVER = (
    'net: "{net}"\nbase_lr: {lr}\nlr_policy: "{policy}"\nmomentum: 0.9\nmax_iter: {max_iter}\ndisplay: 5\n'
    'snapshot_prefix: "snap"\nsolver_mode: CPU\n{extra}'
)


def solver(folder, *, net="net.prototxt", lr=0.01, policy="fixed", max_iter=20, extra=""):
    (folder / "solver.prototxt").write_text(
        SOLVER.format(net=net, lr=lr, policy=policy, max_iter=max_iter, extra=extra)
    )
    return "solver.prototxt"


def classifier(data_layer, *, hidden="fc_hidden", extra="", into=None, classes=3):
    """A small classifier on ``data_layer``'s tops data/label; ``extra`` goes after the hidden
    layer's ReLU and ``into`` is what the scores read."""
    return data_layer + textwrap.dedent(f"""\
        layer {{ name: "{hidden}" type: "InnerProduct" bottom: "data" top: "{hidden}"
                inner_product_param {{ num_output: 8 weight_filler {{ type: "xavier" }} }} }}
        layer {{ name: "{hidden}_relu" type: "ReLU" bottom: "{hidden}" top: "{hidden}" }}
        {extra}
        layer {{ name: "scores" type: "InnerProduct" bottom: "{into or hidden}" top: "scores"
                inner_product_param {{ num_output: {classes} weight_filler {{ type: "xavier" }} }} }}
        layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" }}
        """)


def lmdb_layer(name, source, batch=4, backend="LMDB"):
    return (
        f'layer {{ name: "{name}" type: "Data" top: "data" top: "label" '
        f'data_param {{ source: "{source}" backend: {backend} batch_size: {batch} }} }}\n'
    )


def float_store(path, backend="lmdb", *, n=40, bad=(), value=np.nan, labels=None, shape=(1, 2, 3)):
    """Float Datums keyed 00000000..; the records in ``bad`` hold one ``value``, ``labels``
    maps a record to its label (else ``i % 3``)."""
    rng = np.random.RandomState(3)
    records = []
    for i in range(n):
        x = rng.randn(*shape).astype(np.float32)
        if i in bad:
            x.flat[i % x.size] = value
        label = (labels or {}).get(i, i % 3)
        records.append((f"{i:08d}".encode(), datum(x, label=label)))
    write_store(path, backend, records)


def float_lmdb(path, n=40, bad=()):
    float_store(path, "lmdb", n=n, bad=bad)


def dummy_classifier(extra="", into=None, batch=4):
    data = (
        f'layer {{ name: "data" type: "DummyData" top: "data" top: "label" dummy_data_param {{ '
        f'shape {{ dim: {batch} dim: 6 }} shape {{ dim: {batch} }} data_filler {{ type: "gaussian" std: 1 }} '
        f'data_filler {{ type: "constant" value: 1 }} }} }}\n'
    )
    return classifier(data, extra=extra, into=into)


def assert_names_the_record(verdict, layer, source, bad, batch):
    """The verdict of a non-finite record ``bad`` of a store keyed 00000000.., read ``batch`` at
    a time by ``layer``: bad input in that layer's forward pass, at the batch that held it."""
    v = verdict
    assert (v.cause, v.layer, v.pass_, v.iteration) == ("bad_input", layer, "forward", bad // batch)
    assert v.record.to_dict() == {"source": source, "key": f"{bad:08d}"}
