"""The size of diagnose's --report on a long log (in the image: docker/run-benchmark
report_size): diagnose_speed's two generated 1 GB logs (one with debug_info, one plain), whose
values blow up and stay NaN for the last iterations, each diagnosed and written as HTML and as
Markdown. Targets: the HTML under 3 MB and the Markdown under GitHub's comment size, and every
non-finite loss and output value the log holds kept in the page's curves (counted here from the
log's lines by a reading of its own), whatever the log's size.
"""

import argparse
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT]

from diagnose_speed import write_log  # noqa: E402
from targets import Targets, add_check_option  # noqa: E402

from caffe_nantools import report  # noqa: E402
from caffe_nantools.diagnose import diagnose  # noqa: E402
from caffe_nantools.report.page import page_of  # noqa: E402

#: The largest HTML report of any log, in MB.
HTML_MB = 3.0
#: GitHub's comment size, in characters.
COMMENT = 65536
_VALUE = re.compile(r"(?:Iteration (\d+) .*, loss|Train net output #\d+: (\w+)) = (\S+)")


def non_finite(path: str) -> dict:
    """The stretches of consecutive non-finite values of the displayed loss (``loss``) and of
    each train output (``output:NAME``) of ``path``: (first iteration, last iteration, count)."""
    found, iteration, index = {}, None, {}
    with open(path) as f:
        for line in f:
            m = _VALUE.search(line)
            if m is None:
                continue
            if m.group(1) is not None:
                iteration = int(m.group(1))
            curve = "loss" if m.group(1) is not None else f"output:{m.group(2)}"
            k = index[curve] = index.get(curve, -1) + 1
            if m.group(3).lstrip("+-") not in ("nan", "inf"):
                continue
            stretches = found.setdefault(curve, [])
            if stretches and stretches[-1][3] == k - 1:  # the value before was non-finite too
                first, _, count, _ = stretches[-1]
                stretches[-1] = (first, iteration, count + 1, k)
            else:
                stretches.append((iteration, iteration, 1, k))
    return {name: [s[:3] for s in stretches] for name, stretches in found.items()}


def kept(page) -> dict:
    """The stretches of non-finite values the page's curves hold, as ``non_finite`` names
    them."""
    curves = {"loss": page.curves.loss}
    curves.update({f"output:{o.name}": o for o in page.curves.outputs if o.phase == "train"})
    return {
        name: [(s.first[0], s.last[0], s.count) for s in c.bad]
        for name, c in curves.items()
        if c.bad
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=1024)
    add_check_option(parser)
    args = parser.parse_args()
    targets = Targets()
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("debug_info", "plain"):
            log = os.path.join(folder, f"{kind}.log")
            write_log(log, args.megabytes, debug_info=kind == "debug_info")
            size = os.path.getsize(log) / 2**20
            start = time.perf_counter()
            result = diagnose(log, keep_trace=True)
            html = report.write_html(result, os.path.join(folder, f"{kind}.html"))
            seconds = time.perf_counter() - start
            md = report.write_markdown(result, os.path.join(folder, f"{kind}.md"))
            html_mb = os.path.getsize(html) / 2**20
            with open(md) as f:
                md_chars = len(f.read())
            targets.check(
                f"{size:7.0f} MB {kind} log: HTML report {html_mb:.2f} MB (target <= {HTML_MB}), "
                f"written in {seconds:.0f} s",
                html_mb <= HTML_MB,
            )
            targets.check(
                f"{size:7.0f} MB {kind} log: Markdown report {md_chars} characters "
                f"(target < {COMMENT})",
                md_chars < COMMENT,
            )
            bad = non_finite(log)
            shown = kept(page_of(result))
            count = sum(s[2] for stretches in bad.values() for s in stretches)
            targets.check(
                f"{size:7.0f} MB {kind} log: non-finite values in the log {count}, in the "
                f"page's curves {sum(s[2] for v in shown.values() for s in v)} "
                "(target: every one, in the same stretches)",
                shown == bad and count > 0,
            )
            os.remove(log)
    targets.exit(args)


if __name__ == "__main__":
    main()
