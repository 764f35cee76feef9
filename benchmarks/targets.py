"""The targets of a benchmark run: each measure is printed beside its target, a missed one is
marked, and the run exits 1 when one was missed, so that a script or CI cannot read a slow
run as a pass. ``--no-check`` keeps exit 0 for exploratory runs (another machine, other sizes).
"""

import argparse
import sys
from typing import List

# "Flat" memory: the peak on the larger data (10 to 20 times as much) within this of the smaller.
FLAT = 1.5


class Targets:
    def __init__(self) -> None:
        self.missed: List[str] = []

    def check(self, line: str, met: bool) -> None:
        """Print ``line``, which states the measure and its target, marked when it was missed."""
        print(line if met else f"{line}  <-- TARGET MISSED", flush=True)
        if not met:
            self.missed.append(line)

    def exit(self, args: argparse.Namespace) -> None:
        """Exit 1 when a target was missed, unless ``--no-check``; with a line that says so."""
        if self.missed:
            print(
                f"\n{len(self.missed)} target(s) missed"
                + (" (--no-check: exit 0)" if args.no_check else ""),
                file=sys.stderr,
            )
        sys.exit(1 if self.missed and not args.no_check else 0)


def add_check_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="exit 0 even when a target is missed (exploratory runs); by default a miss exits 1",
    )
