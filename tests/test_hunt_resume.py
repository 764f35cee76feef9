"""What hunt makes of a snapshot to start from, before any training: the state's iteration and
weights file read from its bytes, which data layers can be put back where the run was and which
cannot (and why), and the iterations left of max_iter."""

import pytest

from caffe_nantools.errors import NanToolsError
from caffe_nantools.hunt.inputs import read_inputs
from caffe_nantools.solverstate import read_header


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def state_bytes(iteration, weights, *, complete=True):
    """A SolverState as Caffe writes it: iter=1, learned_net=2, current_step=4."""
    name = weights.encode()
    buf = b"\x08" + varint(iteration) + b"\x12" + varint(len(name)) + name
    return buf + (b"\x20\x00" if complete else b"")


NET = """\
layer { name: "images" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        data_param { source: "train_lmdb" backend: LMDB batch_size: 8 } }
layer { name: "rows" type: "HDF5Data" top: "extra" include { phase: TRAIN }
        hdf5_data_param { source: "list.txt" batch_size: 8 shuffle: true } }
layer { name: "feeder" type: "Python" top: "more" include { phase: TRAIN }
        python_param { module: "feed" layer: "Feed" } }
layer { name: "test_in" type: "Data" top: "data" top: "label" include { phase: TEST }
        data_param { source: "test_lmdb" backend: LMDB batch_size: 8 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
"""


@pytest.fixture
def case(here):
    (here / "net.prototxt").write_text(NET)
    (here / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 5000\niter_size: 2\n'
    )
    (here / "w.caffemodel").write_bytes(b"")
    return here


def test_the_state_says_where_the_run_was_and_which_layers_can_be_put_back(case):
    (case / "s.solverstate").write_bytes(state_bytes(4321, "w.caffemodel"))
    inputs = read_inputs("solver.prototxt", "")
    inputs.resume_from("s.solverstate")
    resume = inputs.resume
    assert resume.iteration == 4321 and resume.state == str(case / "s.solverstate")
    # Each batch of an iteration is read iter_size times.
    assert resume.layers == ["images"] and resume.batches == 4321 * 2
    assert [name for name, _ in resume.unmatched] == ["rows", "feeder"]
    assert "shuffles its source" in dict(resume.unmatched)["rows"]
    assert "a Python layer" in dict(resume.unmatched)["feeder"]
    assert inputs.default_iters() == 5000 - 4321 and "advanced by 8642 batches" in resume.words()


def test_past_max_iter_hunt_trains_its_own_default(case):
    (case / "s.solverstate").write_bytes(state_bytes(6000, "w.caffemodel"))
    inputs = read_inputs("solver.prototxt", "")
    inputs.resume_from("s.solverstate")
    assert inputs.default_iters() == 100


@pytest.mark.parametrize(
    "content, words",
    [
        (state_bytes(10, "w.caffemodel", complete=False), "not a complete solver state"),
        (b"\xff\xff\xff", "not a solver state Caffe wrote"),
        (state_bytes(10, "gone.caffemodel"), "its weights 'gone.caffemodel' are not found"),
    ],
)
def test_a_state_hunt_cannot_start_from_is_one_line(case, content, words):
    (case / "s.solverstate").write_bytes(content)
    inputs = read_inputs("solver.prototxt", "")
    with pytest.raises(NanToolsError) as e:
        inputs.resume_from("s.solverstate")
    assert words in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith("s.solverstate: ")


def test_the_header_is_read_without_caffe(tmp_path):
    path = tmp_path / "x.solverstate"
    path.write_bytes(state_bytes(300, "snap_iter_300.caffemodel"))
    header = read_header(str(path))
    assert (header.iteration, header.learned_net, header.complete) == (
        300,
        "snap_iter_300.caffemodel",
        True,
    )
