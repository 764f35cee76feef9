"""Every file a command writes can be read by Caffe running as another user or in a container:
new files and folders follow the umask (not the 0600 of a temporary file), and an in-place edit
keeps the mode the user gave the file."""

import os
import stat

import numpy as np
import pytest

from caffe_nantools.cli import main
from caffe_logs import CaffeLog
from nets import PHASED_NET
from stores import planted, write_store
from needs import need

SOLVER = 'net: "train_val.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\ndisplay: 10\n'


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=["umask 022", "umask 077", "umask 002"])
def umask(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_follows_umask(path, mask):
    """``path`` and, for a folder, everything in it: files 0666 and folders 0777 less the umask."""
    paths = [path] + [
        os.path.join(root, n) for root, dirs, files in os.walk(path) for n in dirs + files
    ]
    for p in paths:
        full = 0o777 if os.path.isdir(p) else 0o666
        assert mode(p) == full & ~mask, f"{p}: {oct(mode(p))}"


def test_inject_outputs(umask, tmp_path):
    (tmp_path / "train_val.prototxt").write_text(PHASED_NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    assert (
        main(
            [
                "inject",
                "train_val.prototxt",
                "-o",
                "checked.prototxt",
                "--solver",
                "solver.prototxt",
                "--solver-out",
                "checked_solver.prototxt",
            ]
        )
        == 0
    )
    assert_follows_umask("checked.prototxt", umask)
    assert_follows_umask("checked_solver.prototxt", umask)
    assert main(["remove", "checked.prototxt", "-o", "plain.prototxt"]) == 0
    assert_follows_umask("plain.prototxt", umask)


@pytest.mark.parametrize("given", [0o640, 0o604, 0o664, 0o600])
def test_in_place_keeps_the_files_mode_whatever_the_umask(umask, tmp_path, given):
    (tmp_path / "train_val.prototxt").write_text(PHASED_NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    os.chmod("train_val.prototxt", given)
    os.chmod("solver.prototxt", given)
    assert main(["inject", "train_val.prototxt", "--in-place", "--solver", "solver.prototxt"]) == 0
    for name in (
        "train_val.prototxt",
        "solver.prototxt",
        "train_val.prototxt.orig",
        "solver.prototxt.orig",
    ):
        assert mode(name) == given, name
    assert main(["remove", "train_val.prototxt", "--in-place"]) == 0
    assert mode("train_val.prototxt") == given


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_write_clean_of_a_store(umask, tmp_path, backend):
    need({"lmdb": "lmdb", "leveldb": "plyvel"}[backend])
    records, _ = planted(40)
    write_store(tmp_path / "train_db", backend, records)
    assert main(["scan", "train_db", "--write-clean", "clean_db"]) == 1
    assert_follows_umask("clean_db", umask)


def test_write_clean_of_an_image_list(umask, tmp_path):
    Image = need("PIL.Image")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_text("a.png 0\nmissing.png 1\na.png 2\n")
    assert main(["scan", "list.txt", "--write-clean", "clean.txt"]) == 1
    assert (tmp_path / "clean.txt").read_text() == "a.png 0\na.png 2\n"
    assert_follows_umask("clean.txt", umask)


def test_write_clean_of_an_hdf5_list(umask, tmp_path):
    h5py = need("h5py")
    data = np.ones((6, 2), np.float32)
    data[4, 1] = np.nan
    with h5py.File("part.h5", "w") as f:
        f.create_dataset("data", data=data)
        f.create_dataset("label", data=np.zeros(6, np.float32))
    (tmp_path / "list.txt").write_text("part.h5\n")
    assert main(["scan", "list.txt", "--write-clean", "clean.txt"]) == 1
    assert_follows_umask("clean.txt", umask)
    assert_follows_umask("clean.txt.files", umask)


def test_log2csv_tables(umask, tmp_path):
    log = CaffeLog().solving().loss(0, "2.3").lr(0, "0.01").loss(10, "nan")
    log.write(tmp_path / "train.log")
    os.mkdir("out")
    assert main(["log2csv", "train.log", "out"]) == 0
    assert sorted(os.listdir("out")) == ["train.log.test.csv", "train.log.train.csv"]
    for name in os.listdir("out"):
        assert_follows_umask(os.path.join("out", name), umask)


def test_diagnose_plot(umask, tmp_path):
    need("matplotlib")
    log = CaffeLog().solving()
    for i in range(3):
        log.trace(scale=10.0**i).loss(i, "1.5" if i < 2 else "nan").lr(i, "0.01")
    log.write(tmp_path / "train.log")
    main(["diagnose", "train.log", "--plot", "trace.png"])
    assert_follows_umask("trace.png", umask)
