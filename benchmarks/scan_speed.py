"""scan speed, measured side by side in one run (in the image: docker/run-benchmark scan_speed):

1. records/s on a 50k-record 3x32x32 float LMDB and a uint8 one: caffe-nantools' direct scan
   (as by default: a process per core from 64 MB a core, else one process reading ahead in a
   thread), with --workers 1 and 2 (a process of one core each), its net mode, the naive Python
   loop (Datum.ParseFromString, np.array(float_data)), and a bare Caffe net of the Data layer
   and a dummy loss (target: direct >= 1.0x that net on floats);
2. --workers 2 against --workers 1 (target >= 1.7x);
3. MB/s on a 1 GB HDF5 file against a plain h5py read of the same rows (target >= 0.8x), as
   by default and with --workers 1;
4. peak RSS of a scan of 100 MB and of 2 GB of data, and of an HDF5 scan --write-clean of as
   much (target: flat);
5. records/s on the SSD fork's AnnotatedDatum records (the uint8 3x32x32 images of 1., each
   with 1 to 6 boxes) against the Datums of the same images, the two stores timed in turns
   (target: the same speed class, >= 0.5x);
6. records/s on a store of varied records (float Datums as Caffe writes them and packed, uint8
   ones, labels 0..9, 1% bad: NaN, cut short, another shape, not a Datum) against the store of
   one record repeated of 1., so that the general path is measured as well as the fast one; its
   findings must be exactly the planted ones.

A missed target is marked and makes the run exit 1 (``--no-check``: exit 0, for exploratory runs).
``--parts 5`` runs only some of them (1 and 2 are one table, and 6 needs 1's store).
"""

import argparse
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from caffe_nantools.scan import scan  # noqa: E402
from datums import datum, varint  # noqa: E402
from targets import FLAT, Targets, add_check_option  # noqa: E402


def make_lmdb(path, n, shape, dtype, annotated=False):
    """Datums of one random image (float or uint8) under labels 0..9, or those Datums in
    AnnotatedDatums with 1 to 6 boxes each."""
    import lmdb

    rng = np.random.default_rng(0)
    one = (
        rng.standard_normal(shape).astype(np.float32)
        if dtype == "float"
        else rng.integers(0, 256, shape, dtype=np.uint8)
    )
    size = len(datum(one)) + 64 + (300 if annotated else 0)
    env = lmdb.open(path, map_size=max(2 * n * size, 1 << 24))
    batch = 1000
    for start in range(0, n, batch):
        with env.begin(write=True) as txn:
            for i in range(start, min(start + batch, n)):
                value = datum(one, label=i % 10)
                txn.put(f"{i:08d}".encode(), annotated_datum(value, rng) if annotated else value)
    env.close()


def make_varied_lmdb(path, n):
    """Datums of three layouts (float_data as Caffe writes it, packed float_data, uint8 data)
    with random values and labels, 1% of them bad; returns the indices of the bad ones."""
    import lmdb

    rng = np.random.default_rng(1)
    env = lmdb.open(path, map_size=max(40 * n * 1024, 1 << 24))
    bad = set()
    with env.begin(write=True) as txn:
        for i in range(n):
            x = rng.standard_normal((3, 32, 32)).astype(np.float32)
            label, layout = int(rng.integers(0, 10)), rng.integers(0, 3)
            value = (
                datum((np.abs(x) * 40).astype(np.uint8), label=label)
                if layout == 2
                else datum(x, label=label, packed=layout == 1)
            )
            if rng.random() < 0.01:
                bad.add(i)
                x[rng.integers(0, 3), rng.integers(0, 32), rng.integers(0, 32)] = np.nan
                value = [
                    datum(x, label=label),
                    value[: len(value) // 2],
                    datum(x[:, :16]),
                    b"not a Datum",
                ][rng.integers(0, 4)]
            txn.put(f"{i:08d}".encode(), value)
    env.close()
    return bad


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def annotated_datum(value, rng):
    """An AnnotatedDatum (the SSD fork's field numbers) around the Datum ``value``: type BBOX,
    1 to 3 groups of 1 to 2 boxes, as the fork's create_annoset writes them."""
    groups = b""
    for label in range(1, rng.integers(2, 5)):
        boxes = b""
        for _ in range(rng.integers(1, 3)):
            x, y = rng.uniform(0, 0.5, 2)
            bbox = b"".join(
                bytes([n << 3 | 5]) + struct.pack("<f", v)
                for n, v in zip((1, 2, 3, 4), (x, y, x + 0.3, y + 0.4))
            )
            boxes += field(2, b"\x08\x00" + field(2, bbox + b"\x30\x00"))
        groups += field(3, varint(1 << 3) + varint(label) + boxes)
    return field(1, value) + b"\x10\x00" + groups


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_fresh_process(*args):
    """The seconds this script prints when run again with ``args``: timed in a fresh process as
    `caffe-nantools scan` runs, without pycaffe, whose libraries (loaded here for the Caffe side)
    change the timings (measured in the image: --workers 2 about 15% slower with them loaded,
    --workers 1 faster). Both sides of a comparison are timed alike."""
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    ).stdout
    return [float(v) for v in out.split()]


# Best of this many: the machine's cores are shared with others (two processes in parallel
# measured anywhere from 1.1x to 1.9x one), and a scan here takes 0.05 to 0.3 s.
RUNS = 7


SCANS = {"direct scan": None, "direct scan, --workers 1": 1, "direct scan, --workers 2": 2}


def best_seconds(sides):
    """Best of RUNS timings of each of ``sides`` (callables), taken in turns so that all meet
    the machine in the same moods."""
    best = [float("inf")] * len(sides)
    for _ in range(RUNS):
        for i, side in enumerate(sides):
            best[i] = min(best[i], timed(side))
    return best


def scan_seconds(*paths):
    """Best seconds of the direct scans of SCANS of each path (all taken in turns: stores that
    are compared meet the machine in the same moods), then what two busy processes at once get
    done against one (:func:`busy`), which bounds what --workers 2 can show."""
    import multiprocessing

    scans = [
        lambda path=path, workers=workers: scan(path, workers=workers)
        for path in paths
        for workers in SCANS.values()
    ]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        *seconds, one, two = best_seconds(
            scans + [busy, lambda: pool.map(busy, range(2), chunksize=1)]
        )
    return seconds + [2 * one / two]


def busy(_=None):
    """A fixed amount of pure Python work: two at once take as long as one on two free cores."""
    total = 0
    for i in range(2_000_000):
        total += i
    return total


def warm_up(path):
    """Every value read once: the page cache warm for whichever side is timed first."""
    import lmdb

    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        for _ in txn.cursor().iternext(keys=False):
            pass
    env.close()


def naive_loop(path):
    import lmdb
    from caffe.proto import caffe_pb2

    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        for _, value in txn.cursor():
            d = caffe_pb2.Datum()
            d.ParseFromString(value)
            x = (
                np.array(d.float_data, np.float32)
                if d.float_data
                else np.frombuffer(d.data, np.uint8)
            )
            np.isfinite(x).all()


def caffe_data_net(path, n, batch, tmp):
    import caffe

    caffe.set_mode_cpu()
    net_path = os.path.join(tmp, "bare.prototxt")
    with open(net_path, "w") as f:
        f.write(
            f'layer {{ name: "data" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{path}" backend: LMDB batch_size: {batch} }} }}\n'
            'layer { name: "loss" type: "Silence" bottom: "data" bottom: "label" }\n'
        )
    net = caffe.Net(net_path, caffe.TRAIN)
    net.forward()  # warm-up: the prefetch threads start
    iterations = n // batch
    return timed(lambda: [net.forward() for _ in range(iterations)]), iterations * batch


def net_file(path, batch, tmp):
    net_path = os.path.join(tmp, "scan.prototxt")
    with open(net_path, "w") as f:
        f.write(
            f'layer {{ name: "data" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{path}" backend: LMDB batch_size: {batch} }} }}\n'
        )
    return net_path


def records_table(n, tmp, with_caffe, targets):
    print(
        f"\nrecords/s on {n} records of 3x32x32, LMDB (best of {RUNS} runs of a direct scan, of 3 of the others;"
        " page cache warm)"
    )
    print(f"{'':>28} {'float':>12} {'uint8':>12}")
    rows, ceiling = {}, {}
    for dtype in ("float", "uint8"):
        path = os.path.join(tmp, f"{dtype}_lmdb")
        make_lmdb(path, n, (3, 32, 32), dtype)
        os.sync()  # the store's pages written back before anything is timed
        warm_up(path)
        best = lambda fn: min(timed(fn) for _ in range(3))  # noqa: E731
        *seconds, ceiling[dtype] = in_fresh_process("--scan-seconds", path)
        for name, s in zip(SCANS, seconds):
            rows.setdefault(name, {})[dtype] = n / s
        if with_caffe:
            rows.setdefault("net mode", {})[dtype] = n / best(
                lambda path=path: scan(net_file(path, 256, tmp), mode="net")
            )
            rows.setdefault("naive Python loop", {})[dtype] = n / best(
                lambda path=path: naive_loop(path)
            )
            seconds, count = min(caffe_data_net(path, n, 256, tmp) for _ in range(3))
            rows.setdefault("bare Caffe Data-layer net", {})[dtype] = count / seconds
    for name, by_type in rows.items():
        print(f"{name:>28} {by_type.get('float', 0):>12,.0f} {by_type.get('uint8', 0):>12,.0f}")
    if with_caffe:
        for dtype in ("float", "uint8"):
            ratio = rows["direct scan"][dtype] / rows["bare Caffe Data-layer net"][dtype]
            line = f"direct scan / bare Caffe net, {dtype}: {ratio:.2f}x"
            if dtype == "float":
                targets.check(f"{line} (target >= 1.0)", ratio >= 1.0)
            else:
                print(line)
    for dtype in ("float", "uint8"):
        ratio = rows["direct scan, --workers 2"][dtype] / rows["direct scan, --workers 1"][dtype]
        targets.check(
            f"--workers 2 / --workers 1, {dtype}: {ratio:.2f}x (target >= 1.7; {os.cpu_count()} cores, on which "
            f"two busy processes did {ceiling[dtype]:.2f}x one meanwhile)",
            ratio >= 1.7,
        )
    return rows


def varied_table(n, tmp, uniform):
    """records/s of the direct scans on varied records against ``uniform`` (records_table's
    rows, the float store of one record repeated)."""
    path = os.path.join(tmp, "varied_lmdb")
    bad = make_varied_lmdb(path, n)
    os.sync()
    warm_up(path)
    found = {f.index for f in scan(path).findings}
    assert found == bad, (
        f"the varied store's findings are not the planted ones: {sorted(found ^ bad)[:10]}"
    )
    *seconds, _ = in_fresh_process("--scan-seconds", path)
    print(
        f"\nrecords/s on {n} varied records, LMDB (3 layouts, labels 0..9, {len(bad)} bad: all found), against the"
        f" float store of one record repeated (best of {RUNS} runs)"
    )
    print(f"{'':>28} {'uniform':>12} {'varied':>12} {'ratio':>6}")
    for name, s in zip(SCANS, seconds):
        print(
            f"{name:>28} {uniform[name]['float']:>12,.0f} {n / s:>12,.0f} {n / s / uniform[name]['float']:>5.2f}x"
        )


def annotated_table(n, tmp, targets):
    print(
        f"\nrecords/s on {n} records of 3x32x32 uint8, LMDB: AnnotatedDatum (1 to 6 boxes each) against Datum"
        f" (best of {RUNS} runs)"
    )
    paths = []
    for kind in ("Datum", "AnnotatedDatum"):
        paths.append(os.path.join(tmp, f"{kind}_lmdb"))
        make_lmdb(paths[-1], n, (3, 32, 32), "uint8", annotated=kind == "AnnotatedDatum")
    os.sync()
    for path in paths:
        warm_up(path)
    *seconds, _ = in_fresh_process("--scan-seconds", *paths)
    rows = {
        "Datum": [n / s for s in seconds[: len(SCANS)]],
        "AnnotatedDatum": [n / s for s in seconds[len(SCANS) :]],
    }
    print(f"{'':>28} {'Datum':>12} {'AnnotatedDatum':>15} {'ratio':>6}")
    for i, name in enumerate(SCANS):
        datum_rate, annotated_rate = rows["Datum"][i], rows["AnnotatedDatum"][i]
        print(
            f"{name:>28} {datum_rate:>12,.0f} {annotated_rate:>15,.0f} {annotated_rate / datum_rate:>5.2f}x"
        )
    ratio = rows["AnnotatedDatum"][0] / rows["Datum"][0]
    targets.check(
        f"AnnotatedDatum / Datum, direct scan: {ratio:.2f}x (target >= 0.5: the same speed class)",
        ratio >= 0.5,
    )


def hdf5_times(path):
    """Best seconds of: a plain h5py read, a chunked read into one buffer, the scan as by default
    and with --workers 1."""
    import h5py

    def plain_read():
        with h5py.File(path, "r") as f:
            f["data"][:].sum  # noqa: B018 (read, nothing more)
            f["label"][:]

    def chunked_read():
        with h5py.File(path, "r") as f:
            ds = f["data"]
            step = 4096
            buf = np.empty((step,) + ds.shape[1:], ds.dtype)
            for a in range(0, ds.shape[0], step):
                b = min(a + step, ds.shape[0])
                ds.read_direct(buf[: b - a], np.s_[a:b], np.s_[0 : b - a])
            f["label"][:]

    return best_seconds(
        [plain_read, chunked_read, lambda: scan(path), lambda: scan(path, workers=1)]
    )


def make_h5(path, megabytes):
    import h5py

    rows = megabytes * (1 << 20) // (3 * 32 * 32 * 4)
    with h5py.File(path, "w") as f:
        data = f.create_dataset("data", (rows, 3, 32, 32), np.float32)
        block = np.random.default_rng(0).standard_normal((4096, 3, 32, 32)).astype(np.float32)
        for start in range(0, rows, 4096):
            end = min(start + 4096, rows)
            data[start:end] = block[: end - start]
        f.create_dataset("label", data=np.zeros(rows, np.float32))
    os.sync()


def hdf5_table(megabytes, tmp, targets):
    path = os.path.join(tmp, "big.h5")
    make_h5(path, megabytes)
    size = os.path.getsize(path) / 1e6
    plain, chunked, ours, one = in_fresh_process("--hdf5-times", path)
    print(
        f"\nHDF5, {size:.0f} MB: plain h5py read (ds[:]) {size / plain:,.0f} MB/s; chunked read_direct into one buffer "
        f"{size / chunked:,.0f} MB/s"
    )
    targets.check(
        f"  scan (default: a process per core) {size / ours:,.0f} MB/s: {plain / ours:.2f}x the plain read "
        "(target >= 0.8)",
        plain / ours >= 0.8,
    )
    print(f"  scan --workers 1 {size / one:,.0f} MB/s: {plain / one:.2f}x the plain read")


def peak_rss(target, **options):
    """(peak RSS, peak anonymous RSS) in MB of a scan of ``target`` with ``options`` in one
    fresh process (--workers 1: each worker process of a larger scan holds as much). An LMDB
    is memory-mapped: the pages it reads count in RSS but belong to the page cache, which the
    kernel drops at will; the anonymous part is the memory the scan itself holds."""
    code = (
        "import sys, threading, time; sys.path.insert(0, %r)\n"
        "from caffe_nantools.scan import scan\n"
        "peak = [0]\n"
        "def watch():\n"
        "    while True:\n"
        "        for line in open('/proc/self/status'):\n"
        "            if line.startswith('RssAnon:'): peak[0] = max(peak[0], int(line.split()[1]))\n"
        "        time.sleep(0.01)\n"
        "threading.Thread(target=watch, daemon=True).start()\n"
        "scan(%r, workers=1, **%r)\n"
        "hwm = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(hwm, peak[0])\n" % (ROOT, target, options)
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    hwm, anon = out.split()[-2:]
    return int(hwm) / 1024, int(anon) / 1024


def rss_table(tmp, sizes_mb, targets):
    print("\npeak RSS of a direct scan (uint8 3x256x256 Datums)")
    record = 3 * 256 * 256
    anonymous = []
    for mb in sizes_mb:
        path = os.path.join(tmp, f"rss_{mb}")
        make_lmdb(path, mb * (1 << 20) // record, (3, 256, 256), "uint8")
        total, anon = peak_rss(path)
        anonymous.append(anon)
        print(
            f"{mb:>6} MB of data: {total:7.1f} MB peak RSS, of which at most {anon:6.1f} MB anonymous (the rest is LMDB's mapped file)"
        )
    targets.check(
        f"anonymous peak RSS {anonymous[-1] / anonymous[0]:.2f}x from the least to the most data (target: flat, "
        f"<= {FLAT})",
        anonymous[-1] / anonymous[0] <= FLAT,
    )
    print("\npeak RSS of an HDF5 scan --write-clean (float 3x32x32 rows)")
    totals = []
    for mb in sizes_mb:
        path = os.path.join(tmp, f"rss_{mb}.h5")
        make_h5(path, mb)
        total, anon = peak_rss(path, write_clean=path + ".clean.h5")
        os.remove(path + ".clean.h5")
        totals.append(total)
        print(f"{mb:>6} MB of data: {total:7.1f} MB peak RSS, of which {anon:6.1f} MB anonymous")
    targets.check(
        f"peak RSS {totals[-1] / totals[0]:.2f}x from the least to the most data (target: flat, not the data's size, "
        f"<= {FLAT})",
        totals[-1] / totals[0] <= FLAT,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50000)
    parser.add_argument("--hdf5-mb", type=int, default=1024)
    parser.add_argument("--rss-mb", type=int, nargs="+", default=[100, 2048])
    parser.add_argument(
        "--parts",
        type=int,
        nargs="+",
        choices=range(1, 7),
        default=list(range(1, 7)),
        metavar="N",
        help="run only these parts, numbered as in this file's docstring (1 and 2 are one table; 6 runs it too)",
    )
    add_check_option(parser)
    # What in_fresh_process runs:
    parser.add_argument("--hdf5-times", metavar="H5", help=argparse.SUPPRESS)
    parser.add_argument("--scan-seconds", nargs="+", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hdf5_times:
        print(*hdf5_times(args.hdf5_times))
        return
    if args.scan_seconds:
        print(*scan_seconds(*args.scan_seconds))
        return
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe  # noqa: F401

        with_caffe = True
    except ImportError:
        with_caffe = False
        print("no pycaffe: the Caffe columns are left out")
    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    targets = Targets()
    with tempfile.TemporaryDirectory(prefix="nantools-bench-") as tmp:
        parts = set(args.parts)
        if parts & {1, 2, 6}:
            uniform = records_table(args.records, tmp, with_caffe, targets)
        if 6 in parts:
            varied_table(args.records, tmp, uniform)
        if 5 in parts:
            annotated_table(args.records, tmp, targets)
        if 3 in parts:
            hdf5_table(args.hdf5_mb, tmp, targets)
        if 4 in parts:
            rss_table(tmp, args.rss_mb, targets)
    print(
        f"\nthis process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    targets.exit(args)


if __name__ == "__main__":
    main()
