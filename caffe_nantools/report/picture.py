"""``diagnose --plot``: the trace as a picture.

Two heatmaps side by side, log10 of mean |x| per layer (the user's layers, in net order)
against displayed iteration: forward top data and backward bottom diffs; non-finite cells (and
those >= 1e37) crossed out, the origin boxed. Under them the loss and the learning rate against
iteration. The panels are :mod:`caffe_nantools.report.plots`' (the HTML report draws them too).
"""

from __future__ import annotations

import os
from typing import List, Optional

from caffe_nantools.diagnose import Run
from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import FileError, writing
from caffe_nantools.report import plots
from caffe_nantools.report.trace import Trace


def plot_run(
    path: str, title: str, run: Optional[Run], trace: Trace, origin, marks: List[tuple]
) -> None:
    """Draw a diagnosed run into ``path`` (PNG, or any format matplotlib knows by suffix):
    ``run`` its kept trace, ``trace`` as the pictures show it, ``origin`` where the trace
    says the trouble began (boxed), ``marks`` the lines along the net (:func:`plots.marks`).

    Raises:
        NanToolsError: matplotlib is missing, or the file cannot be written.
    """
    plt = plots.pyplot()
    if plt is None:
        raise NanToolsError(
            "{plot:name} needs matplotlib: pip install 'caffe-nantools[plot]'",
            arguments={"plot": path},
        )
    # A loss panel with one point (or none) has nothing to show.
    series = run is not None and max(len(run.loss_series.items), len(run.lr_series.items)) > 1
    if len(trace.columns) <= 1:
        fig = _profile(plt, run, trace, series, marks)
    else:
        fig = _heatmaps(plt, run, trace, series, origin)
    fig.suptitle(title, fontsize=11)
    try:
        with writing() as out:
            # The format comes from the target's suffix: the temporary name has another one.
            fig.savefig(out.path(path), dpi=100, bbox_inches="tight", format=_format(path))
    except (OSError, ValueError) as e:
        raise FileError(
            f"{path}: cannot write the plot ({getattr(e, 'strerror', None) or e})"
        ) from None
    finally:
        plt.close(fig)


def _format(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    return suffix or "png"


def _heatmaps(plt, run: Run, trace: Trace, series: bool, origin):
    """A trace of several iterations: forward and backward heatmaps, layers against iterations."""
    rows = max(len(trace.layers), 1)
    height = min(max(4.0, 0.13 * rows + 3.0), 60.0)
    fig = plt.figure(figsize=(14, height), constrained_layout=True)
    grid = fig.add_gridspec(
        3 if series else 1, 2, height_ratios=[max(rows * 0.13, 2.5), 1.6, 1.2] if series else None
    )
    for side, (pick, _) in enumerate(plots.PASSES):
        plots.heatmap(fig, fig.add_subplot(grid[0, side]), trace, pick, origin)
    if series:
        _loss_and_rate(fig, grid, run)
    return fig


def _profile(plt, run: Run, trace: Trace, series: bool, marks: List[tuple]):
    """A trace of one iteration (an excerpt, or a blow-up inside the first pass): log10 mean |x|
    along the net, forward and backward."""
    layers = trace.layers
    fig = plt.figure(
        figsize=(
            max(10.0 if series else 8.0, min(0.25 * len(layers) + 4, 40.0)),
            8 if series else 4.5,
        ),
        constrained_layout=True,
    )
    grid = fig.add_gridspec(3 if series else 1, 1, height_ratios=[3, 1.6, 1.2] if series else None)
    ax = fig.add_subplot(grid[0, 0])
    plots.profile(ax, trace.columns[0] if trace.columns else None, layers, marks)
    ax.set_title("one iteration along the net", fontsize=10)
    if series:
        _loss_and_rate(fig, grid, run)
    return fig


def _loss_and_rate(fig, grid, run: Run) -> None:
    pinned = run.pinned.iteration if run.pinned is not None else None
    plots.series(
        fig.add_subplot(grid[1, :]), plots.loss_points(run), "loss", "tab:blue", pinned=pinned
    )
    plots.series(fig.add_subplot(grid[2, :]), run.lr_series.items, "lr", "tab:orange")
