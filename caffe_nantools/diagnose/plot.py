"""``diagnose --plot``: the trace as a picture.

Two heatmaps side by side, log10 of mean |x| per layer (rows in net order) against displayed
iteration: forward top data and backward bottom diffs; non-finite cells (and those >= 1e37)
crossed out, the origin boxed. Under them the loss and the learning rate against iteration.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Dict, List, Optional

import numpy as np

from caffe_nantools.diagnose.reading import Column
from caffe_nantools.diagnose.trace import is_bad
from caffe_nantools.errors import NanToolsError
from caffe_nantools.files import FileError, writing

if TYPE_CHECKING:
    from caffe_nantools.diagnose import Diagnosis

#: Past this many rows only every k-th layer is named on the axis.
LABELLED_ROWS = 60


def plot_run(diagnosis: "Diagnosis", path: str) -> None:
    """Draw the run's trace into ``path`` (PNG, or any format matplotlib knows by suffix).

    Raises:
        NanToolsError: matplotlib is missing, or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NanToolsError(
            "{plot:name} needs matplotlib: pip install 'caffe-nantools[plot]'",
            arguments={"plot": path},
        ) from None
    run = diagnosis.trace
    columns = _columns(diagnosis)
    layers = list(run.layers) if run is not None else []
    # A loss panel with one point (or none) has nothing to show.
    series = run is not None and max(len(run.loss_series.items), len(run.lr_series.items)) > 1
    if len(columns) <= 1:
        fig = _profile(plt, diagnosis, columns[0] if columns else None, layers, series)
    else:
        fig = _heatmaps(plt, diagnosis, columns, layers, series)
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


def _heatmaps(plt, diagnosis: "Diagnosis", columns: List[Column], layers: List[str], series: bool):
    """A trace of several iterations: forward and backward heatmaps, layers against iterations."""
    origin = diagnosis.origin
    rows = max(len(layers), 1)
    height = min(max(4.0, 0.13 * rows + 3.0), 60.0)
    fig = plt.figure(figsize=(14, height), constrained_layout=True)
    grid = fig.add_gridspec(
        2 if series else 1, 2, height_ratios=[max(rows * 0.13, 2.5), 2.0] if series else None
    )
    for side, (title, pick) in enumerate(
        (
            ("forward: top data, log10 mean |x|", "forward"),
            ("backward: bottom diff, log10 mean |x|", "backward"),
        )
    ):
        ax = fig.add_subplot(grid[0, side])
        values = np.full((rows, max(len(columns), 1)), np.nan)
        bad_cells = []
        for j, column in enumerate(columns):
            for i, layer in enumerate(layers):
                v = getattr(column, pick).get(layer)
                if v is None:
                    continue
                if is_bad(v):
                    bad_cells.append((j, i))
                elif v > 0:
                    values[i, j] = math.log10(v)
        image = ax.imshow(
            np.ma.masked_invalid(values), aspect="auto", interpolation="nearest", cmap="viridis"
        )
        fig.colorbar(image, ax=ax, fraction=0.04)
        if bad_cells:
            xs, ys = zip(*bad_cells)
            ax.scatter(
                xs, ys, marker="x", color="red", s=max(4, min(40, 2000 / rows)), linewidths=1
            )
        if (
            origin is not None
            and origin.layer in layers
            and origin.pass_ in (pick, "update" if pick == "forward" else "")
        ):
            j = next(
                (k for k, c in enumerate(columns) if c.iteration == origin.iteration),
                len(columns) - 1,
            )
            i = layers.index(origin.layer)
            ax.add_patch(
                plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2)
            )
            ax.annotate(
                f"origin: {origin.layer}",
                (j, i),
                xytext=(-15, -15),
                textcoords="offset points",
                ha="right",
                fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85},
                arrowprops={"arrowstyle": "->"},
            )
        ax.set_title(title + " (red x: nan, inf or >= 1e37)", fontsize=10)
        step = max(1, math.ceil(rows / LABELLED_ROWS))
        ax.set_yticks(range(0, len(layers), step))
        ax.set_yticklabels(layers[::step], fontsize=max(5, min(9, 600 // rows)))
        ticks = list(range(0, len(columns), max(1, len(columns) // 10)))
        ax.set_xticks(ticks)
        ax.set_xticklabels([_label(columns[k].iteration) for k in ticks], fontsize=7)
        ax.set_xlabel("iteration (displayed)")
    if series:
        _loss_and_rate(fig.add_subplot(grid[1, :]), diagnosis.trace)
    return fig


def _profile(
    plt, diagnosis: "Diagnosis", column: Optional[Column], layers: List[str], series: bool
):
    """A trace of one iteration (an excerpt, or a blow-up inside the first pass): log10 mean |x|
    along the net, forward and backward, where a jump by orders of magnitude shows at a glance."""
    fig = plt.figure(
        figsize=(max(8.0, min(0.25 * len(layers) + 4, 40.0)), 7 if series else 4.5),
        constrained_layout=True,
    )
    grid = fig.add_gridspec(2 if series else 1, 1, height_ratios=[3, 2] if series else None)
    ax = fig.add_subplot(grid[0, 0])
    xs = np.arange(len(layers))
    for pick, color in (("forward", "tab:blue"), ("backward", "tab:green")):
        values = getattr(column, pick) if column is not None else {}
        known = [(i, values[layer]) for i, layer in enumerate(layers) if layer in values]
        good = [(i, math.log10(v)) for i, v in known if not is_bad(v) and v > 0]
        if good:
            ax.plot(
                *zip(*good), marker="o", markersize=3, color=color, label=f"{pick} (log10 mean |x|)"
            )
        bad = [i for i, v in known if is_bad(v)]
        if bad:
            top = max((y for _, y in good), default=0.0) + 1
            ax.scatter(
                bad,
                [top] * len(bad),
                marker="x",
                color="red",
                zorder=3,
                label=f"{pick}: nan, inf or >= 1e37" if pick == "forward" else None,
            )
    marks = (
        (diagnosis.began, "origin", "black"),
        (diagnosis.first_nonfinite, "first non-finite", "red"),
    )
    for where, label, color in marks:
        layer = where.layer if where is not None else None
        if layer in layers:
            ax.axvline(layers.index(layer), color=color, linestyle=":", linewidth=1)
            ax.annotate(
                label,
                (layers.index(layer), ax.get_ylim()[1]),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
            )
    ax.set_xticks(xs)
    ax.set_xticklabels(layers, rotation=90, fontsize=max(5, min(9, 600 // max(len(layers), 1))))
    ax.set_ylabel("log10 mean |x|")
    ax.set_title("one iteration along the net", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    if series:
        _loss_and_rate(fig.add_subplot(grid[1, 0]), diagnosis.trace)
    return fig


def _loss_and_rate(ax, run) -> None:
    _series(ax, run.loss_series.items, "loss", "tab:blue")
    ax.set_xlabel("iteration")
    _series(ax.twinx(), run.lr_series.items, "lr", "tab:orange")


def _columns(diagnosis: "Diagnosis") -> List[Column]:
    """The sampled columns plus every parsed block around the origin, in iteration order."""
    run = diagnosis.trace
    if run is None:
        return []
    by_iteration: Dict[Optional[int], Column] = {
        c.iteration: c for c in run.columns.items if c is not None
    }
    for block in run.window + ([run.suspect] if run.suspect is not None else []):
        by_iteration[block.iteration] = Column.of(block)
    drawn = [c for c in by_iteration.values() if c.forward or c.backward]
    return sorted(drawn, key=lambda c: math.inf if c.iteration is None else c.iteration)


def _label(iteration: Optional[int]) -> str:
    return "?" if iteration is None else str(iteration)


def _series(ax, points, name: str, color: str) -> None:
    from matplotlib.ticker import LogLocator

    if not points:
        return
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    good = np.isfinite(ys)
    ax.plot(xs[good], ys[good], color=color, label=name, linewidth=1)
    if good.any() and (ys[good] > 0).all() and ys[good].max() > 100 * ys[good].min():
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(numticks=6))
    if not good.all():
        low = ys[good].min() if good.any() else 0.0
        ax.scatter(
            xs[~good],
            np.full((~good).sum(), low),
            marker="x",
            color="red",
            zorder=3,
            label=f"{name} nan/inf",
        )
    ax.set_ylabel(name, color=color)
    ax.legend(loc="upper left" if name == "loss" else "upper right", fontsize=7)
