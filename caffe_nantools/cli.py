"""The ``caffe-nantools`` command: option parsing and printing over the library functions.

Every subcommand calls one library function with the same options and renders its result.
Errors the library raises on purpose (NanToolsError) become one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from caffe_nantools import __version__
from caffe_nantools.errors import NanToolsError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _demo(args: argparse.Namespace) -> int:
    from caffe_nantools import demo

    result = demo.run()
    print(
        f"Planted a NaN in sample {result.nan_sample} and +inf in sample "
        f"{result.inf_sample} of blob 'data' (batch of {demo.BATCH}), then ran forward."
    )
    if result.error is None:
        print("The check layer raised nothing: this is a bug in caffe-nantools.")
        return EXIT_FINDINGS
    print(f"CheckFiniteLayer stopped the net:\n  {result.error}")
    if not result.caught:
        print("...but not with the planted samples: this is a bug in caffe-nantools.")
        return EXIT_FINDINGS
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caffe-nantools",
        description="Find out why Caffe training says loss = nan.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the check layer on a tiny net with a planted NaN (needs pycaffe)",
        description="Build a tiny net with CheckFiniteLayer after each blob, plant a NaN and "
        "an inf in two samples of the input, and show what the layer reports.",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.run(args)
    except NanToolsError as e:
        print(f"caffe-nantools {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("caffe-nantools: interrupted", file=sys.stderr)
        return 130
