"""The command line: --version, --help, and one-line errors instead of tracebacks."""

import subprocess
import sys

import pytest

from caffe_nantools import __version__
from caffe_nantools.cli import main


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


def test_every_command_has_help(capsys):
    from caffe_nantools.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert commands
    for name, sub in commands.items():
        assert sub.description, name


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
