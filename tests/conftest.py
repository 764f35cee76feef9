"""Shared fixtures. Tests that need pycaffe take the ``caffe`` fixture: without pycaffe they
are skipped, except under NANTOOLS_REQUIRE_CAFFE=1 (the Docker image's test stage), where such
a skip is a failure. Likewise the corpus tests under NANTOOLS_REQUIRE_CORPUS=1."""
import os

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

from corpus import MISSING as NO_CORPUS  # noqa: E402

NO_CAFFE = "pycaffe unavailable: "
REQUIRED = [NO_CAFFE] * (os.environ.get("NANTOOLS_REQUIRE_CAFFE") == "1")
REQUIRED += [NO_CORPUS] * (os.environ.get("NANTOOLS_REQUIRE_CORPUS") == "1")


@pytest.fixture(scope="session")
def caffe():
    from caffe_nantools.pycaffe import CaffeUnavailableError, load_caffe

    try:
        module = load_caffe()
    except CaffeUnavailableError as e:
        pytest.skip(NO_CAFFE + str(e))
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
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if any(reason.startswith(("Skipped: " + r, r)) for r in REQUIRED):
            report.outcome = "failed"
            report.longrepr = f"skipped where it is required (NANTOOLS_REQUIRE_*=1): {reason}"
