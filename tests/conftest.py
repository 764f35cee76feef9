"""Shared fixtures. Tests that need pycaffe take the ``caffe`` fixture: without pycaffe they
are skipped, except under NANTOOLS_REQUIRE_CAFFE=1 (the Docker image's test stage), where such
a skip is a failure; so is a skip for a missing optional module (``needs.need``), which the
image carries. Likewise the corpus tests under NANTOOLS_REQUIRE_CORPUS=1. This holds for a
whole module skipped at its top as for one test."""

import os

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("GLOG_minloglevel", "2")
# How fast examples come is the machine's load, not the code's behaviour (the image runs a
# worker per core; speed targets live in benchmarks/), so neither fails a property test.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

from corpus import MISSING as NO_CORPUS, NAMED as NAMED_CORPUS  # noqa: E402
from needs import NO_MODULE  # noqa: E402

NO_CAFFE = "pycaffe unavailable: "
REQUIRED = [NO_CAFFE, NO_MODULE] * (os.environ.get("NANTOOLS_REQUIRE_CAFFE") == "1")
REQUIRED += [NO_CORPUS] * (os.environ.get("NANTOOLS_REQUIRE_CORPUS") == "1")


def pytest_configure(config):
    if NAMED_CORPUS and not os.path.isdir(NAMED_CORPUS):
        # A typo here would otherwise quietly test another corpus, or none.
        raise pytest.UsageError(
            f"NANTOOLS_CORPUS={NAMED_CORPUS}: no such folder; point it at the corpus or unset it"
        )


@pytest.fixture(scope="session")
def caffe():
    from caffe_nantools.pycaffe import CaffeUnavailableError, load_caffe

    try:
        module = load_caffe()
    except CaffeUnavailableError as e:
        pytest.skip(NO_CAFFE + str(e))
    module.set_mode_cpu()
    return module


@pytest.fixture
def here(tmp_path, monkeypatch):
    """The test's own folder as the current one (Caffe and hunt open relative paths from it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_collection_modifyitems(items):
    for item in items:
        if "caffe" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.caffe)


def fail_if_required(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if any(reason.startswith(("Skipped: " + r, r)) for r in REQUIRED):
            report.outcome = "failed"
            report.longrepr = f"skipped where it is required (NANTOOLS_REQUIRE_*=1): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_if_required(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    fail_if_required(outcome.get_result())
