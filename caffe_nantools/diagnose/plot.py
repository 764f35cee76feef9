"""``diagnose --plot``: the trace as a picture.

Two heatmaps side by side, log10 of mean |x| per layer (the user's layers, in net order)
against displayed iteration: forward top data and backward bottom diffs; non-finite cells (and
those >= 1e37) crossed out, the origin boxed. Under them the loss and the learning rate against
iteration. The panels are :mod:`caffe_nantools.report.plots`' (the HTML report draws them too).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import FileError, writing
from caffe_nantools.report import plots
from caffe_nantools.report.trace import Trace, trace_of

if TYPE_CHECKING:
    from caffe_nantools.diagnose import Diagnosis


def plot_run(diagnosis: "Diagnosis", path: str) -> None:
    """Draw the run's trace into ``path`` (PNG, or any format matplotlib knows by suffix).

    Raises:
        NanToolsError: matplotlib is missing, or the file cannot be written.
    """
    plt = plots.pyplot()
    if plt is None:
        raise NanToolsError(
            "{plot:name} needs matplotlib: pip install 'caffe-nantools[plot]'",
            arguments={"plot": path},
        )
    run = diagnosis.trace
    trace = trace_of(diagnosis)
    # A loss panel with one point (or none) has nothing to show.
    series = run is not None and max(len(run.loss_series.items), len(run.lr_series.items)) > 1
    if len(trace.columns) <= 1:
        fig = _profile(plt, diagnosis, trace, series)
    else:
        fig = _heatmaps(plt, diagnosis, trace, series)
    fig.suptitle(f"{diagnosis.log}: cause {diagnosis.cause}", fontsize=11)
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


def _heatmaps(plt, diagnosis: "Diagnosis", trace: Trace, series: bool):
    """A trace of several iterations: forward and backward heatmaps, layers against iterations."""
    rows = max(len(trace.layers), 1)
    height = min(max(4.0, 0.13 * rows + 3.0), 60.0)
    fig = plt.figure(figsize=(14, height), constrained_layout=True)
    grid = fig.add_gridspec(
        3 if series else 1, 2, height_ratios=[max(rows * 0.13, 2.5), 1.6, 1.2] if series else None
    )
    for side, (pick, _) in enumerate(plots.PASSES):
        plots.heatmap(fig, fig.add_subplot(grid[0, side]), trace, pick, diagnosis.origin)
    if series:
        _loss_and_rate(fig, grid, diagnosis)
    return fig


def _profile(plt, diagnosis: "Diagnosis", trace: Trace, series: bool):
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
    plots.profile(ax, trace.columns[0] if trace.columns else None, layers, marks(diagnosis))
    ax.set_title("one iteration along the net", fontsize=10)
    if series:
        _loss_and_rate(fig, grid, diagnosis)
    return fig


def marks(diagnosis: "Diagnosis") -> list:
    """The lines a profile draws: where the trouble began and where it showed."""
    found = (
        (diagnosis.began, "origin", "black"),
        (diagnosis.first_nonfinite, "first non-finite", "red"),
    )
    return [(w.layer, label, color) for w, label, color in found if w is not None and w.layer]


def _loss_and_rate(fig, grid, diagnosis: "Diagnosis") -> None:
    run = diagnosis.trace
    pinned = run.pinned.iteration if run.pinned is not None else None
    plots.series(fig.add_subplot(grid[1, :]), loss_points(run), "loss", "tab:blue", pinned=pinned)
    plots.series(fig.add_subplot(grid[2, :]), run.lr_series.items, "lr", "tab:orange")


def loss_points(run) -> list:
    """The sampled loss curve with the first non-finite loss in it (thinning may have dropped it)."""
    points = list(run.loss_series.items)
    first = run.first_bad_loss
    if first is not None and first.iteration is not None:
        if all(x != first.iteration for x, _ in points):
            points = sorted(points + [(first.iteration, first.value)], key=lambda p: p[0])
    return points
