"""Random bytes as a Datum and as an HDF5 list: the readers raise only caffe-nantools' own
errors (NanToolsError) or report findings, never anything else."""

import contextlib
import os
import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nantools.datum import decode_batch, parse_header
from caffe_nantools.errors import NanToolsError
from caffe_nantools.scan import scan
from caffe_nantools.scan.checks import Collector, DatumChecker, Expect
from caffe_nantools.scan.report import ScanReport
from datums import datum, varint
from needs import need

# Bytes that look like Datum fields now and then: tags of its fields, long varints, floats.
PIECES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [
            b"\x08",
            b"\x10",
            b"\x18",
            b"\x22",
            b"\x28",
            b"\x32",
            b"\x35",
            b"\x38",
            b"\x35\x00\x00\xc0\x7f",
        ]
    ),
    st.integers(min_value=0, max_value=2**64 - 1).map(varint),
)
RECORDS = st.lists(PIECES, max_size=12).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(RECORDS)
def test_a_random_record_is_a_datum_or_not_a_datum(record):
    with contextlib.suppress(NanToolsError):
        parse_header(record)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORDS, min_size=1, max_size=8), st.integers(0, 8), st.booleans())
def test_random_records_in_a_batch_are_findings(records, good, crop):
    records = (
        records + [datum(np.ones((1, 2, 2), np.float32), label=1)] * good
    )  # a template to match
    report = ScanReport()
    checker = DatumChecker(
        Collector(report, "s", "lmdb"), Expect(num_classes=3, crop_size=2 * crop, scale=1e38)
    )
    bad = checker.check([b"k%d" % i for i in range(len(records))], records, 0)
    batch = decode_batch(records)
    assert {row for row, _ in batch.broken} <= set(bad)
    assert report.summaries["s"].records == len(records)


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=300)
    | st.lists(
        st.sampled_from(["x.h5", ".", "/", "a b", "\x00", "list.txt", "\ufeffy.h5", ""]), max_size=5
    ).map(lambda names: "\n".join(names).encode("utf-8"))
)
def test_random_bytes_as_an_hdf5_list_are_an_error_or_findings(content):
    need("h5py")
    with tempfile.TemporaryDirectory() as folder:  # hypothesis runs many examples per fixture
        path = os.path.join(folder, "list.txt")
        with open(path, "wb") as f:
            f.write(content)
        try:
            report = scan(path, backend="hdf5")
        except NanToolsError:
            return
    assert report.return_code == 1  # nothing in it to read is a finding: an empty source
