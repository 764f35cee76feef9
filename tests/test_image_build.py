"""The image's apt step (docker/apt-update) keeps building once Debian moves bullseye to its
archive: a mirror that does not serve the suite makes it switch to the archive's suites, with the
Release date check relaxed there only. apt is played by a small stand-in that serves the suites
of the mirrors it is told serve them, as apt-get update reports a mirror that does not: a missing
Release file is an error (exit 100), a host that does not answer only a warning (exit 0)."""

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "apt-update"

FAKE_APT_GET = textwrap.dedent("""\
    #!/bin/sh
    # apt-get update as a stand-in: serves the suites of the mirrors in $FAKE_SERVED, refuses an
    # archived mirror's expired Release files without Check-Valid-Until false. Lists fetched
    # before stay, as apt keeps them when a mirror does not answer.
    [ "$1" = update ] || exit 3
    echo update >>"$ROOT/calls"
    status=0
    while read -r deb url suite component; do
      [ -n "$url" ] || continue
      name=$(echo "${url#http://}" | tr / _)_dists_${suite}_${component}_binary-amd64_Packages
      case " $FAKE_SERVED " in
        *" $url "*)
          case " $FAKE_ARCHIVED " in
            *" $url "*)
              if ! grep -qs 'Check-Valid-Until "false"' "$ROOT"/apt.conf.d/*; then
                echo "E: Release file for $url/dists/$suite/InRelease is expired" >&2; status=100; continue
              fi ;;
          esac
          touch "$ROOT/lists/$name" ;;
        *)
          case $url in
            *unresolvable*) echo "W: Failed to fetch $url/dists/$suite/InRelease  Could not resolve host" >&2 ;;
            *) echo "E: The repository '$url $suite Release' does not have a Release file." >&2; status=100 ;;
          esac ;;
      esac
    done <"$ROOT/sources.list"
    exit $status
    """)

FAKE_APT_CONFIG = textwrap.dedent("""\
    #!/bin/sh
    echo "SOURCES='$ROOT/sources.list'"
    echo "PARTS='$ROOT/apt.conf.d/'"
    echo "LISTS='$ROOT/lists/'"
    echo "SOURCE_PARTS='$ROOT/sources.list.d/'"
    """)

ARCHIVE = "http://archive.example/debian"
ARCHIVE_SECURITY = "http://archive.example/debian-security"


@pytest.fixture
def apt(tmp_path):
    """Runs docker/apt-update with the stand-in apt; returns (exit status, stderr, sources, root)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("apt-get", FAKE_APT_GET), ("apt-config", FAKE_APT_CONFIG)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    root = tmp_path / "etc"
    for sub in ("apt.conf.d", "lists", "sources.list.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text("deb http://deb.debian.org/debian bullseye main\n")
    (root / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\n"
    )

    def run(mirror, served, archived=(ARCHIVE, ARCHIVE_SECURITY)):
        env = dict(
            os.environ,
            PATH=f"{bin_dir}:{os.environ['PATH']}",
            ROOT=str(root),
            DEBIAN_MIRROR=mirror,
            DEBIAN_SECURITY=mirror + "-security",
            DEBIAN_ARCHIVE=ARCHIVE,
            DEBIAN_ARCHIVE_SECURITY=ARCHIVE_SECURITY,
            FAKE_SERVED=" ".join(served),
            FAKE_ARCHIVED=" ".join(archived),
        )
        done = subprocess.run(
            ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stderr, (root / "sources.list").read_text().splitlines(), root

    return run


@pytest.mark.parametrize(
    "mirror", ["http://mirror.example/debian", "http://ftp.example.org/pub/debian"]
)
def test_a_mirror_that_serves_bullseye_is_used_as_it_is(apt, mirror):
    status, err, sources, root = apt(mirror, [mirror, mirror + "-security"])
    assert status == 0 and err == ""
    assert sources == [
        f"deb {mirror} bullseye main",
        f"deb {mirror} bullseye-updates main",
        f"deb {mirror}-security bullseye-security main",
    ]
    assert os.listdir(root / "apt.conf.d") == []  # the date check stays on
    assert (root / "calls").read_text() == "update\n"


@pytest.mark.parametrize(
    "mirror", ["http://mirror.example/debian", "http://unresolvable.example/debian"]
)
@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "older lists of another mirror"])
def test_a_mirror_without_bullseye_falls_back_to_the_archive(apt, tmp_path, mirror, stale):
    if stale:
        (
            tmp_path
            / "etc"
            / "lists"
            / "deb.debian.org_debian_dists_bullseye_main_binary-amd64_Packages"
        ).touch()
    status, err, sources, root = apt(mirror, [ARCHIVE, ARCHIVE_SECURITY])
    assert status == 0, err
    assert sources == [
        f"deb {ARCHIVE} bullseye main",
        f"deb {ARCHIVE_SECURITY} bullseye-security main",
    ]
    assert f"{mirror} does not serve bullseye; using Debian's archive {ARCHIVE}" in err
    assert (
        root / "apt.conf.d" / "99archived-suite"
    ).read_text() == 'Acquire::Check-Valid-Until "false";\n'
    assert not (root / "sources.list.d" / "debian.sources").exists()
    assert (root / "calls").read_text() == "update\nupdate\n"


def test_nothing_serving_bullseye_is_a_failure_that_says_what_to_set(apt):
    status, err, _, _ = apt("http://mirror.example/debian", [])
    assert status != 0
    assert err.strip().splitlines()[-1] == (
        "apt-update: neither http://mirror.example/debian nor the archive "
        f"{ARCHIVE} serves bullseye; set DEBIAN_MIRROR to a mirror that does"
    )


def test_the_dockerfile_runs_it_before_installing():
    dockerfile = (SCRIPT.parent / "Dockerfile").read_text()
    assert "COPY docker/apt-update" in dockerfile
    update = dockerfile.index("apt-update \\")
    assert update < dockerfile.index("apt-get install") and "apt-get update" not in dockerfile


FAKE_DOCKER = textwrap.dedent("""\
    #!/bin/sh
    # A Docker engine as a stand-in: builds print what apt and debconf print in a real build.
    case $1 in
      info) exit 0 ;;
      image) exit "$FAKE_HAS_IMAGE" ;;
      build)
        echo "STEP 1/9: FROM debian:bullseye-slim"
        echo "W: Download is performed unsandboxed as root as file '/var/cache/apt/archives/partial/x.deb'" >&2
        echo "debconf: delaying package configuration, since apt-utils is not installed" >&2
        echo "Successfully tagged caffe-nantools"
        exit "$FAKE_BUILD_STATUS" ;;
      run) shift; echo "ran: $*" ;;
      # A container of the image whose root is $FAKE_ROOT: created, copied from, removed.
      create) echo "created $2" >>"$FAKE_ROOT/containers"; echo c0ffee ;;
      cp) src=${2#c0ffee:}; [ -e "$FAKE_ROOT$src" ] || exit 1; cp -r "$FAKE_ROOT$src" "$3" ;;
      rm) echo "removed $2" >>"$FAKE_ROOT/containers" ;;
    esac
    """)


@pytest.fixture
def nantools(tmp_path):
    """docker/nantools from a copy of the docker folder, with the stand-in engine on PATH."""
    docker = tmp_path / "repo" / "docker"
    (docker / "certs").mkdir(parents=True)
    for name in ("engine.sh", "nantools"):
        (docker / name).write_text((SCRIPT.parent / name).read_text())
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)

    def run(has_image, build_status):
        env = dict(
            os.environ,
            PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
            TMPDIR=str(tmp_path),
            FAKE_HAS_IMAGE=str(0 if has_image else 1),
            FAKE_BUILD_STATUS=str(build_status),
        )
        env.pop("NANTOOLS_IMAGE", None)
        return subprocess.run(
            ["bash", str(docker / "nantools"), "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    return run


@pytest.mark.parametrize("has_image", [False, True])
def test_a_build_that_works_shows_one_progress_line_at_most(nantools, tmp_path, has_image):
    done = nantools(has_image, 0)
    assert done.returncode == 0, done.stderr
    progress = (
        []
        if has_image
        else ["caffe-nantools: building the image caffe-nantools (first time: a few minutes)"]
    )
    assert done.stderr.splitlines() == progress
    assert done.stdout.splitlines()[-1].endswith("caffe-nantools caffe-nantools demo")
    assert "W: Download" not in done.stdout + done.stderr and "STEP" not in done.stdout
    assert not list(tmp_path.glob("caffe-nantools-build.*"))  # no log left behind


def test_a_build_that_fails_shows_its_whole_log(nantools, tmp_path):
    done = nantools(False, 1)
    assert done.returncode == 2 and "ran:" not in done.stdout
    lines = done.stderr.splitlines()
    assert (
        "STEP 1/9: FROM debian:bullseye-slim" in lines
        and "debconf: delaying package configuration, since apt-utils is not installed" in lines
    )
    (log,) = tmp_path.glob("caffe-nantools-build.*")
    assert (
        lines[-1]
        == f"caffe-nantools: building the image caffe-nantools failed (the build's log is above, and in {log})"
    )


@pytest.fixture
def run_tests(tmp_path):
    """docker/run-tests in a copy of the repository with the stand-in engine, whose test image
    holds ``shots`` in /src/report-screenshots (None: no such folder)."""
    repo = tmp_path / "repo"
    (repo / "docker" / "certs").mkdir(parents=True)
    (repo / "tests").mkdir()
    for name in ("engine.sh", "run-tests"):
        (repo / "docker" / name).write_text((SCRIPT.parent / name).read_text())
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    root = tmp_path / "image"
    root.mkdir()

    def run(shots, build_status=0):
        if shots is not None:
            (root / "src" / "report-screenshots").mkdir(parents=True)
            for name in shots:
                (root / "src" / "report-screenshots" / name).write_bytes(b"\x89PNG" + name.encode())
        env = dict(
            os.environ,
            PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
            TMPDIR=str(tmp_path),
            FAKE_HAS_IMAGE="0",
            FAKE_BUILD_STATUS=str(build_status),
            FAKE_ROOT=str(root),
            NANTOOLS_CORPUS=str(tmp_path / "no-corpus"),
        )
        env.pop("NANTOOLS_IMAGE", None)
        done = subprocess.run(
            ["bash", str(repo / "docker" / "run-tests")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done, repo / "artifacts" / "report-screenshots", root / "containers"

    return run


@pytest.mark.parametrize("shots", [["blowup.html.png"], ["a.html.png", "b.md.png", "c.png"]])
def test_the_report_screenshots_leave_the_test_image_for_the_checkout(run_tests, shots):
    done, folder, containers = run_tests(shots)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(shots)
    assert (folder / shots[0]).read_bytes() == b"\x89PNG" + shots[0].encode()
    assert done.stderr.splitlines()[-1] == (
        f"caffe-nantools: report screenshots: {folder} ({len(shots)} files)"
    )
    # The container it copied them from is gone again.
    assert containers.read_text() == "created caffe-nantools-test\nremoved c0ffee\n"


@pytest.mark.parametrize("shots", [None, []])
def test_a_test_run_that_left_no_screenshot_fails(run_tests, shots):
    done, folder, containers = run_tests(shots)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "caffe-nantools: the browser tests left no screenshot in the test image's "
        "/src/report-screenshots"
    )
    assert "removed c0ffee" in containers.read_text()


def test_a_failed_test_run_leaves_no_screenshot_of_an_earlier_one(run_tests):
    done, folder, _ = run_tests(["old.png"])
    assert done.returncode == 0 and (folder / "old.png").exists()
    done, folder, _ = run_tests(None, build_status=1)
    assert done.returncode == 1 and not folder.exists()
