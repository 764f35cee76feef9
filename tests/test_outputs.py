"""Outputs: all or nothing, never over an input, through links, with the user's modes; inputs
that are not files refused at once. Each command's outputs go through files.writing."""

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import caffe_nantools
from caffe_nantools.cli import main
from caffe_nantools.files import FileError, read_text, writing
from caffe_logs import CaffeLog
from datums import datum
from nets import PHASED_NET
from needs import need

SOLVER = 'net: "train_val.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\ndisplay: 10\n'
LOG = textwrap.dedent("""\
    I0101 00:00:00.000000  1 solver.cpp:218] Iteration 0 (0 iter/s, 0s/10 iters), loss = 2.3
    I0101 00:00:00.000000  1 solver.cpp:237]     Train net output #0: loss = 2.3 (* 1 = 2.3 loss)
    I0101 00:00:01.000000  1 solver.cpp:218] Iteration 10 (10 iter/s, 1s/10 iters), loss = nan
    I0101 00:00:01.000000  1 solver.cpp:237]     Train net output #0: loss = nan (* 1 = nan loss)
    """)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train_val.prototxt").write_text(PHASED_NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    (tmp_path / "train.log").write_text(LOG)
    return tmp_path


def snapshot(folder):
    """Every file below ``folder`` with its bytes, mode, and whether it is a link."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            data = Path(path).read_bytes() if stat.S_ISREG(info.st_mode) else None
            found[os.path.relpath(path, folder)] = (
                data,
                stat.S_IMODE(info.st_mode),
                os.path.islink(path),
            )
    return found


def cli(args, cwd, **options):
    """The CLI in a child process, importing this checkout's package."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(caffe_nantools.__file__)))
    return subprocess.run(
        [sys.executable] + args,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        **options,
    )


def run_failing(args, capsys, *words):
    """Run the CLI, expect exit 2 with one line on stderr holding ``words``."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_writing_moves_nothing_into_place_when_the_block_fails(tmp_path):
    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(ZeroDivisionError), writing() as out:
        out.text(str(tmp_path / "kept.txt"), "new")
        out.text(str(tmp_path / "fresh.txt"), "new")
        os.makedirs(out.path(str(tmp_path / "store"), new=True))
        raise ZeroDivisionError("the block fails")
    assert os.listdir(tmp_path) == ["kept.txt"] and (tmp_path / "kept.txt").read_text() == "old"


def test_writing_moves_every_output_into_place_together(tmp_path):
    with writing() as out:
        out.text(str(tmp_path / "a.txt"), "a")
        store = out.path(str(tmp_path / "store"), new=True)
        os.makedirs(store)
        Path(store, "data").write_text("x")
        assert sorted(os.listdir(tmp_path))[0].startswith(".")  # only temporary names so far
        assert not (tmp_path / "a.txt").exists()
    assert (
        sorted(os.listdir(tmp_path)) == ["a.txt", "store"]
        and (tmp_path / "store" / "data").read_text() == "x"
    )


# An output that names an input, for every command that writes: refused before anything is written.
@pytest.mark.parametrize(
    "args, words",
    [
        (
            [
                "inject",
                "train_val.prototxt",
                "-o",
                "checked.prototxt",
                "--solver",
                "solver.prototxt",
                "--solver-out",
                "train_val.prototxt",
            ],
            ["--solver-out", "is the input NET"],
        ),
        (
            [
                "inject",
                "train_val.prototxt",
                "-o",
                "solver.prototxt",
                "--solver",
                "solver.prototxt",
                "--solver-out",
                "s2.prototxt",
            ],
            ["--output", "is the input --solver"],
        ),
        (
            [
                "inject",
                "train_val.prototxt",
                "-o",
                "same.prototxt",
                "--solver",
                "solver.prototxt",
                "--solver-out",
                "same.prototxt",
            ],
            ["are one file"],
        ),
        (
            [
                "inject",
                "train_val.prototxt",
                "-o",
                "link-to-net",
                "--solver",
                "solver.prototxt",
                "--solver-out",
                "s2.prototxt",
            ],
            ["--output link-to-net is the input NET"],
        ),
        (["inject", "train_val.prototxt", "-o", "hard-link-to-net"], ["is the input NET"]),
        (["remove", "train_val.prototxt", "-o", "link-to-net"], ["is the input FILE"]),
        (["diagnose", "train.log", "--plot", "train.log"], ["--plot train.log is the input LOG"]),
        (
            ["diagnose", "train.log", "--net", "train_val.prototxt", "--plot", "link-to-net"],
            ["is the input --net"],
        ),
        (["log2csv", "train.log", "out", "--force"], ["is the input LOG"]),
    ],
)
def test_an_output_never_overwrites_an_input(folder, capsys, args, words):
    os.symlink("train_val.prototxt", folder / "link-to-net")
    os.link(folder / "train_val.prototxt", folder / "hard-link-to-net")
    (folder / "out").mkdir()
    os.symlink(os.path.join("..", "train.log"), folder / "out" / "train.log.train.csv")
    before = snapshot(folder)
    run_failing(args, capsys, *words)
    assert snapshot(folder) == before


def test_a_failing_second_output_leaves_the_first_unwritten(folder, capsys):
    run_failing(
        [
            "inject",
            "train_val.prototxt",
            "-o",
            "checked.prototxt",
            "--solver",
            "solver.prototxt",
            "--solver-out",
            "nodir/solver.prototxt",
        ],
        capsys,
        "nodir/solver.prototxt",
        "no such folder",
    )
    assert not (folder / "checked.prototxt").exists()


def test_remove_in_place_with_one_read_only_file_changes_none(folder, capsys):
    assert main(["inject", "train_val.prototxt", "-o", "a.prototxt"]) == 0
    assert main(["inject", "train_val.prototxt", "-o", "b.prototxt"]) == 0
    os.chmod(folder / "b.prototxt", 0o444)
    capsys.readouterr()
    before = snapshot(folder)
    run_failing(
        ["remove", "a.prototxt", "b.prototxt", "--in-place"], capsys, "b.prototxt", "read-only"
    )
    assert snapshot(folder) == before


def test_in_place_through_a_symlink_edits_the_target_and_keeps_the_link(folder):
    real = folder / "models"
    real.mkdir()
    (real / "net.prototxt").write_text(PHASED_NET)
    os.symlink(os.path.join("models", "net.prototxt"), folder / "net.prototxt")
    assert main(["inject", "net.prototxt", "--in-place", "--blobs", "data"]) == 0
    assert os.path.islink(folder / "net.prototxt")
    assert "nancheck/data" in (real / "net.prototxt").read_text()
    assert (folder / "net.prototxt.orig").read_text() == PHASED_NET
    assert main(["remove", "net.prototxt", "--in-place"]) == 0
    assert (
        os.path.islink(folder / "net.prototxt")
        and (real / "net.prototxt").read_text() == PHASED_NET
    )


def test_new_files_follow_the_umask_and_in_place_keeps_the_mode(folder):
    old = os.umask(0o022)
    try:
        assert main(["inject", "train_val.prototxt", "-o", "checked.prototxt"]) == 0
        assert stat.S_IMODE(os.stat(folder / "checked.prototxt").st_mode) == 0o644
        os.chmod(folder / "solver.prototxt", 0o640)
        assert (
            main(["inject", "train_val.prototxt", "--in-place", "--solver", "solver.prototxt"]) == 0
        )
        assert stat.S_IMODE(os.stat(folder / "solver.prototxt").st_mode) == 0o640
        assert stat.S_IMODE(os.stat(folder / "solver.prototxt.orig").st_mode) == 0o640
    finally:
        os.umask(old)


def test_remove_in_place_keeps_the_original_and_an_older_orig_is_never_replaced(folder, capsys):
    assert main(["inject", "train_val.prototxt", "--in-place"]) == 0
    checked = (folder / "train_val.prototxt").read_text()
    assert (folder / "train_val.prototxt.orig").read_text() == PHASED_NET
    os.unlink(folder / "train_val.prototxt.orig")
    capsys.readouterr()
    assert main(["remove", "train_val.prototxt", "--in-place"]) == 0
    assert "kept the original as train_val.prototxt.orig" in capsys.readouterr().err
    assert (folder / "train_val.prototxt.orig").read_text() == checked
    assert main(["inject", "train_val.prototxt", "--in-place"]) == 0
    assert (folder / "train_val.prototxt.orig").read_text() == checked  # the older original stays


def test_a_failed_in_place_edit_leaves_no_backup(folder, capsys):
    os.chmod(folder / "solver.prototxt", 0o444)
    run_failing(
        ["inject", "train_val.prototxt", "--in-place", "--solver", "solver.prototxt"],
        capsys,
        "read-only",
    )
    assert sorted(os.listdir(folder)) == ["solver.prototxt", "train.log", "train_val.prototxt"]


@pytest.mark.parametrize(
    "args",
    [
        ["diagnose", "train.log", "--solver", "train_val.prototxt"],
        ["inject", "train_val.prototxt", "--solver", "train_val.prototxt", "--dry-run"],
    ],
)
def test_a_net_given_as_the_solver_is_refused(folder, capsys, args):
    # Read as a solver it has every setting missing: "no lr_policy" would be blamed.
    before = snapshot(folder)
    run_failing(args, capsys, "train_val.prototxt:", "a net (layer", "not a solver")
    assert snapshot(folder) == before


@pytest.mark.parametrize("name", ["README.md", "index.html"])
def test_a_report_replaces_only_a_report_it_wrote(folder, capsys, name):
    (folder / name).write_text("my notes\n")
    run_failing(["diagnose", "train.log", "--report", name], capsys, "no report caffe-nantools")
    assert (folder / name).read_text() == "my notes\n"
    (folder / name).unlink()
    for _ in range(2):  # the second run replaces the first run's report
        assert main(["diagnose", "train.log", "--report", name]) in (0, 1)
    assert "caffe-nantools diagnose" in (folder / name).read_text()


def test_diagnose_plot_into_a_folder_is_an_error_before_reading(folder, capsys):
    run_failing(["diagnose", "train.log", "--plot", "."], capsys, "is a folder")
    assert sorted(os.listdir(folder)) == ["solver.prototxt", "train.log", "train_val.prototxt"]


@pytest.mark.parametrize(
    "args",
    [
        ["lint", "{fifo}"],
        ["inject", "{fifo}", "-o", "out.prototxt"],
        ["remove", "{fifo}", "--in-place"],
        ["diagnose", "{fifo}"],
        ["diagnose", "train.log", "--net", "{fifo}"],
        ["log2csv", "{fifo}", "out"],
        ["scan", "{fifo}"],
        ["scan", "{fifo}", "--backend", "imagelist"],
        ["merge", "{fifo}"],
    ],
)
def test_a_fifo_as_input_is_refused_at_once(folder, args):
    os.mkfifo(folder / "pipe")
    args = [a.format(fifo="pipe") for a in args]
    run = cli(["-m", "caffe_nantools"] + args, folder)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "pipe" in run.stderr and "not a regular file" in run.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["inject", "train_val.prototxt", "-o", "pipe.prototxt"],
        ["diagnose", "train.log", "--report", "pipe.md"],
        ["diagnose", "train.log", "--plot", "pipe.png"],
    ],
)
def test_a_fifo_or_device_as_output_is_refused_never_replaced(folder, args):
    # An output is written beside its target and moved into place: a device would be replaced.
    pipe = folder / args[-1]
    os.mkfifo(pipe)
    run = cli(["-m", "caffe_nantools"] + args, folder)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert f"{args[-1]}: is not a regular file" in run.stderr
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_utf16_file_is_named_as_such(folder, capsys, encoding):
    (folder / "wide.prototxt").write_bytes(PHASED_NET.encode(encoding))
    (folder / "wide.log").write_bytes(LOG.encode(encoding))
    run_failing(["lint", "wide.prototxt"], capsys, "wide.prototxt", "UTF-", "save it as UTF-8")
    run_failing(["diagnose", "wide.log"], capsys, "wide.log", "UTF-", "save it as UTF-8")


@pytest.mark.parametrize(
    "head",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\n\x05LeNet\x12\x9a\x01\n\x05mnist\x12\x04Data"],
    ids=["png", "caffemodel"],
)
def test_a_binary_file_given_as_a_prototxt_is_named_as_such(folder, capsys, head):
    (folder / "weights.prototxt").write_bytes(head + bytes(range(256)))
    run_failing(["lint", "weights.prototxt"], capsys, "weights.prototxt: a binary file")


def test_a_log_in_terminal_colours_is_text(folder):
    (folder / "colour.log").write_text(LOG.replace("Iteration", "\x1b[32mIteration", 1))
    assert main(["diagnose", "colour.log"]) in (0, 1)


def test_a_utf8_byte_order_mark_is_read_and_kept(folder, capsys):
    (folder / "bom.prototxt").write_bytes(b"\xef\xbb\xbf" + PHASED_NET.encode())
    assert main(["inject", "bom.prototxt", "-o", "checked.prototxt"]) == 0
    assert (folder / "checked.prototxt").read_bytes().startswith(b"\xef\xbb\xbf")
    assert main(["remove", "checked.prototxt", "-o", "back.prototxt"]) == 0
    assert (folder / "back.prototxt").read_bytes() == (folder / "bom.prototxt").read_bytes()


def test_read_text_refuses_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(FileError, match="is a folder"):
        read_text(str(tmp_path))
    with pytest.raises(FileError, match="no such file"):
        read_text(str(tmp_path / "missing"))


def test_diagnose_json_stays_valid_json_with_infinite_values(folder, capsys):
    log = CaffeLog().solving()
    for i, loss in enumerate(
        ["1e-320", "1e5", "1e30", "nan"]
    ):  # from a denormal: inf orders of growth
        log.loss(i, loss)
    log.write(folder / "grew.log")
    assert main(["diagnose", "grew.log", "--json"]) == 1

    def refuse(token):
        raise AssertionError(f"bare {token} in the JSON")

    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert report["blowup"]["orders"] == "inf" and report["cause"] == "exploding_gradients"


# --write-clean: nothing at OUT unless the copy is complete.
def float_store(path, n=3000, bad=(5, 2000)):
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for i in range(n):
            x = np.full((3, 4, 4), i, np.float32)
            if i in bad:
                x[0, 0, 0] = np.nan
            txn.put(f"{i:08d}".encode(), datum(x, label=i % 3))
    env.close()


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


# The child stops itself at a planted point: after the first write batch of the clean copy.
# It starts as a shell in a terminal starts a command (no signal blocked, Ctrl-C's default): a
# suite started in the background (``pytest &``) has SIGINT ignored, and the child inherits it.
INTERRUPTED = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
signal.signal(signal.SIGINT, signal.default_int_handler)
from caffe_nantools.scan import stores
from caffe_nantools.cli import main
put_all = stores._put_all
def planted(items, open_batch):
    def first_then_stop():
        for n, item in enumerate(items):
            if n == stores.BATCH:
                os.kill(os.getpid(), signal.{signal})
            yield item
    return put_all(first_then_stop(), open_batch)
stores._put_all = planted
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_during_write_clean_leaves_nothing_at_out(tmp_path, signame, code):
    need("lmdb")
    float_store(tmp_path / "train_lmdb")
    run = cli(
        [
            "-c",
            INTERRUPTED.format(signal=signame),
            "scan",
            "train_lmdb",
            "--write-clean",
            "clean_lmdb",
        ],
        tmp_path,
    )
    assert run.returncode == code, run.stderr
    assert run.stderr.count("\n") == 1 and "no output was left half-written" in run.stderr
    assert not (tmp_path / "clean_lmdb").exists() and leftovers(tmp_path) == []


def test_a_full_disk_during_write_clean_removes_the_partial_copy(tmp_path):
    """The child's file size limit stands in for a full disk (a tmpfs cannot be mounted
    everywhere): the write fails part way, the partial copy goes."""
    need("lmdb")
    float_store(tmp_path / "train_lmdb")
    limited = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10)); "
        "from caffe_nantools.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    run = cli(["-c", limited, "scan", "train_lmdb", "--write-clean", "clean_lmdb"], tmp_path)
    assert run.returncode == 2, run.stderr
    assert (
        run.stderr.count("\n") == 1
        and "nothing was written" in run.stderr
        and "clean_lmdb" in run.stderr
    )
    assert not (tmp_path / "clean_lmdb").exists() and leftovers(tmp_path) == []


def test_a_full_tmpfs_during_write_clean_removes_the_partial_copy(tmp_path):
    need("lmdb")
    float_store(tmp_path / "train_lmdb")
    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(small)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mount.stderr.strip() or 'mount failed'}); the RLIMIT test stands in"
        )
    try:
        run = cli(
            ["-m", "caffe_nantools", "scan", "train_lmdb", "--write-clean", "small/clean_lmdb"],
            tmp_path,
        )
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and "nothing was written" in run.stderr
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize(
    "where, words",
    [
        ("nodir/clean_lmdb", ["no such folder"]),
        ("ro/clean_lmdb", ["read-only"]),
        ("train_lmdb", ["already exists"]),
    ],
)
def test_write_clean_into_a_place_it_cannot_write_is_refused_before_the_scan(
    tmp_path, monkeypatch, capsys, where, words
):
    need("lmdb")
    monkeypatch.chdir(tmp_path)
    float_store(tmp_path / "train_lmdb", n=10)
    (tmp_path / "ro").mkdir(mode=0o555)
    from caffe_nantools.scan import scanner

    def no_scan(*args, **kwargs):
        raise AssertionError("scanned before the output was checked")

    monkeypatch.setattr(scanner, "scan_source", no_scan)
    run_failing(["scan", "train_lmdb", "--write-clean", where], capsys, *words)
    assert (
        sorted(os.listdir(tmp_path)) == ["ro", "train_lmdb"] and os.listdir(tmp_path / "ro") == []
    )


def test_counts_of_thousands_of_digits_in_a_log_are_no_iteration(folder, capsys):
    huge = "9" * 5000
    log = (
        LOG
        + f"I0101 00:00:02.000000  1 solver.cpp:218] Iteration {huge} (1 iter/s, 1s/10 iters), loss = 1\n"
        f"I0101 00:00:02.000000  1 sgd_solver.cpp:105] Iteration {huge}, lr = 0.1\n"
    )
    (folder / "huge.log").write_text(log)
    assert main(["diagnose", "huge.log"]) == 1
    assert "iteration 10" in capsys.readouterr().out
    assert main(["log2csv", "huge.log", "out"]) == 0


def test_write_clean_of_a_net_whose_hdf5_list_is_missing_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "gone.txt" batch_size: 2 } }\n'
    )
    run_failing(
        ["scan", "net.prototxt", "--write-clean", "clean"], capsys, "gone.txt", "no such file"
    )


def test_a_backup_path_taken_by_a_folder_stops_the_in_place_edit(folder, capsys):
    (folder / "train_val.prototxt.orig").mkdir()
    run_failing(
        ["inject", "train_val.prototxt", "--in-place"],
        capsys,
        "train_val.prototxt.orig",
        "not a file",
    )
    assert (folder / "train_val.prototxt").read_text() == PHASED_NET


def test_an_empty_output_path_is_refused(folder, capsys):
    run_failing(["inject", "train_val.prototxt", "-o", ""], capsys)
    run_failing(["diagnose", "train.log", "--plot", ""], capsys, "empty")


@given(
    st.lists(st.sampled_from(["layer {\n", "}\n", '  top: "a"\n', "\n"]), max_size=30),
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["layer {  # added\n", "}\n", "\n"])),
        max_size=10,
    ),
)
def test_the_diff_of_an_edit_that_adds_or_removes_lines_shows_just_those(lines, insertions):
    from caffe_nantools.files import FileEdit

    edited = list(lines)
    for at, line in sorted(insertions, reverse=True):
        edited.insert(min(at, len(edited)), line)
    for before, after, sign in ((lines, edited, "+"), (edited, lines, "-")):
        diff = FileEdit("f", "".join(before), "".join(after)).diff()
        changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
        assert len(changed) == len(insertions) and all(line.startswith(sign) for line in changed)
