"""Random input to the prototxt readers: whatever the text or bytes, parse, lint and inject
either work or raise one of the project's errors (a one-line message), never anything else."""

import contextlib
import os
import tempfile

from needs import need

need("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from caffe_nantools.errors import NanToolsError  # noqa: E402
from caffe_nantools.inject import inject_text, remove_text  # noqa: E402
from caffe_nantools.lint import lint  # noqa: E402
from caffe_nantools.prototxt import decode, dump, parse  # noqa: E402

SETTINGS = settings(max_examples=300, deadline=None)

#: Characters prototxt is made of, so random text gets past the first token often.
PROTO_CHARS = st.sampled_from(list("abcdefgxyz_019.-+eEfF\"'\\{}[]<>:,;# \n\t\r"))
VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        [
            "0",
            "09",
            "0x1F",
            "017",
            "9" * 5000,
            "1e999",
            "-inf",
            "nan",
            "inf",
            "1.5f",
            ".5",
            "true",
            "FOO",
            "MAX",
            "TRAIN",
            "TEST",
            "LMDB",
            '"x"',
            "'y'",
            '"a\\nb"',
            '"\\x41\\101"',
            "[]",
            "[1, 2]",
            '["a", 3]',
            "{ }",
            "{ a: 1 }",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n'),
        max_size=8,
    ).map(lambda t: f'"{t}"'),
)
FIELDS = st.sampled_from(
    [
        "name",
        "type",
        "bottom",
        "top",
        "loss_weight",
        "phase",
        "min_level",
        "max_level",
        "stage",
        "not_stage",
        "kernel_size",
        "stride",
        "pad",
        "kernel_h",
        "stride_w",
        "dilation",
        "num_output",
        "dim",
        "input_dim",
        "input",
        "eps",
        "power",
        "scale",
        "mean_value",
        "crop_size",
        "global_pooling",
        "use_global_stats",
        "shuffle",
        "module",
        "param_str",
        "source",
        "backend",
        "batch_size",
        "ignore_label",
    ]
)
BLOCKS = st.sampled_from(
    [
        "layer",
        "layers",
        "include",
        "exclude",
        "pooling_param",
        "convolution_param",
        "batch_norm_param",
        "power_param",
        "transform_param",
        "data_param",
        "python_param",
        "input_param",
        "shape",
        "loss_param",
        "hdf5_data_param",
    ]
)
TYPES = st.sampled_from(
    [
        '"Pooling"',
        '"Convolution"',
        '"BatchNorm"',
        '"Python"',
        '"Data"',
        '"Input"',
        '"Log"',
        '"Power"',
        '"HDF5Data"',
        '"SoftmaxWithLoss"',
        '"ReLU"',
        "CONVOLUTION",
        '"Deconvolution"',
    ]
)


@st.composite
def fields(draw, depth=0):
    """Caffe's field names and blocks holding odd values."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 2 and draw(st.booleans()):
            parts.append(f"{draw(BLOCKS)} {{ {draw(fields(depth + 1))} }}")
        else:
            name = draw(FIELDS)
            parts.append(f"{name}: {draw(TYPES) if name == 'type' else draw(VALUES)}")
    return draw(st.sampled_from([" ", "\n", "\n  "])).join(parts)


@st.composite
def prototxt(draw):
    """A net: an input of odd dims, then layers of Caffe's types on blobs x and y, each with odd
    fields, blocks and rules."""
    dims = " ".join(f"dim: {draw(VALUES)}" for _ in range(draw(st.integers(0, 4))))
    layers = [f'layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}']
    for i in range(draw(st.integers(1, 4))):
        bottom, top = draw(st.sampled_from([("x", "x"), ("x", "y"), ("y", "y"), ("y", "x")]))
        layers.append(
            f'layer {{ name: "l{i}" type: {draw(TYPES)} bottom: "{bottom}" top: "{top}" {draw(fields())} }}'
        )
    return "\n".join(layers) + draw(st.sampled_from(["", "\n", f"\n{draw(fields())}"]))


@contextlib.contextmanager
def written(data: bytes):
    """A file holding ``data`` (hypothesis runs many examples in one test, so no tmp_path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "fuzz.prototxt")
        with open(path, "wb") as f:
            f.write(data)
        yield path


def only_our_errors(action):
    try:
        action()
    except NanToolsError as e:
        assert "\n" not in str(e).strip() or str(e).count("\n") < 2
    # anything else propagates and fails the test


@SETTINGS
@given(
    st.text(PROTO_CHARS, max_size=200)
    | st.text(max_size=100)
    | st.lists(VALUES, max_size=6).map(lambda values: "\n".join(f"field: {v}" for v in values))
)
def test_random_text_parses_back_byte_for_byte_or_is_a_parse_error(text):
    def action():
        doc = parse(text, "fuzz.prototxt")
        assert dump(doc) == text
        nodes = list(doc.children)
        while nodes:  # every value decodes, or is a positioned error
            node = nodes.pop()
            nodes += node.children
            if not node.is_message:
                [decode(v) for v in node.values]

    only_our_errors(action)


@SETTINGS
@given(st.binary(max_size=300) | st.text(PROTO_CHARS, max_size=300).map(str.encode))
def test_lint_of_random_bytes_raises_only_our_errors(data):
    with written(data) as path:
        only_our_errors(lambda: lint(path))
        only_our_errors(lambda: lint(None, path))


@SETTINGS
@given(prototxt())
def test_net_shaped_text_with_odd_values_is_linted_and_injected_or_refused(text):
    with written(text.encode()) as path:
        only_our_errors(lambda: lint(path))
        only_our_errors(lambda: lint(None, path))

    def round_trip():
        result = inject_text(text, "net.prototxt")
        assert remove_text(result.text, "net.prototxt")[0] == text

    only_our_errors(round_trip)
