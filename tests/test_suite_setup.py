"""The suite's own setup: told to test something, it tests that or stops."""

import os
import subprocess
import sys

import pytest

import caffe_nantools

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(caffe_nantools.__file__)))


@pytest.mark.parametrize("name", ["nowhere", "typo_corpus"])
def test_a_corpus_folder_named_but_missing_stops_the_suite(tmp_path, name):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            __file__,
        ],
        cwd=tmp_path,
        env=dict(os.environ, NANTOOLS_CORPUS=str(tmp_path / name), PYTHONPATH=PACKAGE_ROOT),
        capture_output=True,
        text=True,
    )
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"NANTOOLS_CORPUS={tmp_path / name}: no such folder" in run.stdout + run.stderr


HERE = os.path.dirname(os.path.abspath(__file__))
MISSING_AT_TOP = """
from needs import need
need("no_such_module_{n}")

def test_nothing():
    pass
"""
MISSING_IN_A_TEST = """
from needs import need

def test_first():
    pass

def test_needs_it():
    need("no_such_module_{n}")
"""


def run_suite(tmp_path, text, require="0"):
    (tmp_path / "test_given.py").write_text(text)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfEs",
            "-p",
            "no:cacheprovider",
            "-p",
            "conftest",
            "test_given.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([PACKAGE_ROOT, HERE]),
            NANTOOLS_REQUIRE_CAFFE=require,
        ),
    )


@pytest.mark.parametrize("text", [MISSING_AT_TOP, MISSING_IN_A_TEST], ids=["module", "test"])
@pytest.mark.parametrize("n", [1, 7])
def test_a_missing_optional_module_skips_but_fails_where_the_image_carries_it(tmp_path, text, n):
    skipped = run_suite(tmp_path, text.format(n=n))
    assert skipped.returncode in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    )  # a module skipped whole
    assert "1 skipped" in skipped.stdout and f"no_such_module_{n}" in skipped.stdout
    required = run_suite(tmp_path, text.format(n=n), require="1")
    assert required.returncode in (
        pytest.ExitCode.TESTS_FAILED,
        pytest.ExitCode.INTERRUPTED,
    )  # a module: at collection
    assert (
        "skipped where it is required" in required.stdout
        and f"no_such_module_{n}" in required.stdout
    )


def test_a_module_the_image_leaves_out_stays_a_skip_where_caffe_is_required(tmp_path):
    text = 'from needs import need\n\ndef test_dask():\n    need("no_such_module_dask", required=False)\n'
    run = run_suite(tmp_path, text, require="1")
    assert run.returncode == 0 and "1 skipped" in run.stdout
