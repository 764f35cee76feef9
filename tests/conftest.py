"""Shared fixtures. Tests that need pycaffe take the ``caffe`` fixture: without pycaffe they
are skipped, except under NANTOOLS_REQUIRE_CAFFE=1 (the Docker image's test stage), where
every skip is turned into a failure."""
import os

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

REQUIRE_CAFFE = os.environ.get("NANTOOLS_REQUIRE_CAFFE") == "1"


@pytest.fixture(scope="session")
def caffe():
    from caffe_nantools.pycaffe import CaffeUnavailableError, load_caffe

    try:
        module = load_caffe()
    except CaffeUnavailableError as e:
        pytest.skip(str(e))
    module.set_mode_cpu()
    return module


def pytest_collection_modifyitems(items):
    for item in items:
        if "caffe" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.caffe)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_CAFFE and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under NANTOOLS_REQUIRE_CAFFE=1: {reason}"
