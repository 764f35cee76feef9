"""Small LMDB and LevelDB stores of Datums for the scan tests."""

import os
from dataclasses import replace

import numpy as np

from datums import datum


def write_store(path, backend, records):
    """``records``: (key bytes, value bytes) pairs."""
    if backend == "lmdb":
        import lmdb

        env = lmdb.open(str(path), map_size=1 << 28)
        with env.begin(write=True) as txn:
            for key, value in records:
                txn.put(key, value)
        env.close()
    else:
        import plyvel

        db = plyvel.DB(str(path), create_if_missing=True)
        for key, value in records:
            db.put(key, value)
        db.close()


def leveldb_with_tables_and_a_log(path, first, second):
    """A LevelDB holding ``first`` in a table and ``second`` in a pending .log, as a crash (or
    a writer that has not reopened it) leaves it."""
    import plyvel

    write_store(path, "leveldb", first)
    db = plyvel.DB(str(path))  # recovery turns the first .log into a table
    for key, value in second:
        db.put(key, value)
    db.close()
    assert any(name.endswith(".ldb") for name in os.listdir(path))
    assert any(
        name.endswith(".log") and os.path.getsize(path / name) for name in os.listdir(path)
    ) == bool(second)


def damage_the_log(path, where):
    """Overwrite 16 bytes of the LevelDB's .log at the fraction ``where`` of it; its name."""
    log = next(name for name in os.listdir(path) if name.endswith(".log"))
    data = bytearray((path / log).read_bytes())
    at = int(len(data) * where)
    data[at : at + 16] = b"\xee" * 16
    (path / log).write_bytes(bytes(data))
    return log


def planted(n=300, shape=(3, 4, 4), seed=0):
    """Float Datums keyed 00000000.. with problems at known keys; returns (records, expected
    findings as (index, key, problem))."""
    rng = np.random.default_rng(seed)
    records, expected = [], []
    for i in range(n):
        x = rng.standard_normal(shape).astype(np.float32)
        label = i % 5
        key = f"{i:08d}".encode()
        if i == 7:
            x[0, 0, 1] = np.nan
            expected.append((i, "nan"))
        if i == 150:
            x[1, 2, 3] = -np.inf
            expected.append((i, "inf"))
        if i == 42:
            label = -3
            expected.append((i, "label"))
        if i == 99:
            x = rng.standard_normal((1, 4, 4)).astype(np.float32)
            expected.append((i, "shape"))
        value = datum(x, label=label)
        if i == 201:
            value = b"not a datum at all"
            expected.append((i, "not_datum"))
        records.append((key, value))
    return records, expected


def read_store(path, backend):
    """All (key, value) pairs in key order."""
    if backend == "lmdb":
        import lmdb

        env = lmdb.open(str(path), readonly=True, lock=False)
        with env.begin() as txn:
            items = list(txn.cursor())
        env.close()
        return items
    import plyvel

    db = plyvel.DB(str(path))
    items = list(db.iterator())
    db.close()
    return items


def per_worker(monkeypatch, backend: str, size: int) -> None:
    """Let ``backend`` scan in a process per core from ``size`` bytes a process (for the tests'
    stores of a few kB)."""
    from caffe_nantools.scan import backends

    backends.backend_names()  # loads the registry
    registered = backends._BACKENDS[backend]
    monkeypatch.setitem(backends._BACKENDS, backend, replace(registered, bytes_per_worker=size))
