"""The command line: --version, --help, and one-line errors instead of tracebacks."""

import subprocess
import sys

import pytest

from caffe_nantools import __version__
from caffe_nantools.cli import main
from caffe_nantools.scan import ScanError


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"caffe-nantools {__version__}\n"


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: caffe-nantools")
    assert "demo" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: caffe-nantools" in capsys.readouterr().out


def test_every_command_has_help_and_a_description():
    import argparse
    import re

    from caffe_nantools.cli import COMMANDS, build_parser

    listing = build_parser().format_help()
    for add in COMMANDS:
        commands = argparse.ArgumentParser().add_subparsers()
        add(commands)
        ((name, parser),) = commands.choices.items()
        assert parser.description, name
        assert re.search(rf"^ +{name} +\w", listing, re.M), name  # listed with its help


def test_demo_without_pycaffe_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "caffe", None)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caffe-nantools demo: error: this command needs pycaffe")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_python_dash_m_is_the_same_cli():
    out = subprocess.run(
        [sys.executable, "-m", "caffe_nantools", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == f"caffe-nantools {__version__}\n"


@pytest.mark.parametrize(
    "call, library, command_line",
    [
        (
            dict(mode="net"),
            "mode='net' needs a net prototxt",
            ["--mode", "net"],
        ),
        (
            dict(shard=(1, 3), workers=2),
            "shard=(1, 3) and workers=2 exclude each other",
            ["--shard", "1/3", "--workers", "2"],
        ),
        (
            dict(limit=5, workers=2),
            "limit=5 and workers=2 exclude each other",
            ["--limit", "5", "--workers", "2"],
        ),
    ],
)
def test_errors_name_arguments_in_the_callers_terms(tmp_path, capsys, call, library, command_line):
    # The library speaks of its arguments as Python does; the CLI of the same ones as its flags.
    from caffe_nantools.errors import NanToolsError
    from caffe_nantools.scan import scan

    source = tmp_path / "data.txt"
    source.write_text("a.png 0\n")
    with pytest.raises(NanToolsError) as info:
        scan(str(source), **call)
    assert library in str(info.value)
    assert main(["scan", str(source)] + command_line) == 2
    err = capsys.readouterr().err
    flags = library
    for name, value in call.items():
        shown = "/".join(map(str, value)) if isinstance(value, tuple) else value
        flags = flags.replace(f"{name}={value!r}", f"--{name} {shown}")
    assert flags in err and "=" not in err.split("error: ")[1]


@pytest.mark.parametrize("name", ["{backend}", "d{workers}{{x}}", "{backend=lmdb}", "{"])
def test_braces_in_a_path_are_the_paths_in_both_terms(tmp_path, capsys, name):
    from caffe_nantools.scan import ScanError, scan

    folder = tmp_path / name
    folder.mkdir()  # neither an LMDB nor a LevelDB: the message names it and the backends
    with pytest.raises(ScanError) as info:
        scan(str(folder))
    assert str(info.value).startswith(f"{folder}: a folder that is neither")
    assert str(info.value).endswith("say which: backend='lmdb' or backend='leveldb'")
    assert main(["scan", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"caffe-nantools scan: error: {folder}: a folder that is neither")
    assert err.endswith("say which: --backend lmdb or --backend leveldb\n")


def test_an_argument_the_command_has_no_option_for_is_said_as_python_says_it(capsys):
    # hunt writes a clean copy through scan(write_clean=...): hunt has no --write-clean.
    from caffe_nantools.cli import build_parser

    hunt = build_parser().parse_args(["hunt", "s.prototxt"])
    error = ScanError("{write_clean}: cannot write", arguments={"write_clean": "w/clean"})
    assert error.spelled(hunt.spelling) == "write_clean='w/clean': cannot write"
    scan = build_parser().parse_args(["scan", "x"])
    assert error.spelled(scan.spelling) == "--write-clean w/clean: cannot write"


def test_errors_name_options_not_given_and_switches_as_flags(tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text('layer { name: "d" type: "Input" top: "x" }\n')
    assert main(["scan", str(tmp_path / "net.prototxt"), "--mode", "net", "--workers", "2"]) == 2
    assert (
        "--mode net takes no --workers, --shard, --write-clean or --backend"
        in capsys.readouterr().err
    )
    assert main(["remove", str(tmp_path / "net.prototxt"), "x.prototxt", "-o", "y"]) == 2
    assert "--output y takes one input file; use --in-place for several" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "db", "--workers", "abc"],
        ["scan", "db", "--workers", "0"],
        ["inject", "net.prototxt", "--max-abs", "big", "--dry-run"],
    ],
)
def test_a_bad_number_for_an_option_is_said_in_the_users_terms(capsys, args):
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {args[2]}: '{args[3]}' is not a" in err and "_positive" not in err
