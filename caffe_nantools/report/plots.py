"""The pictures of a trace, drawn with matplotlib into axes the caller lays out: ``diagnose
--plot`` puts them on one page, the HTML report draws each as its own inline SVG.

Made to be read at a glance: the user's layers only, every iteration drawn labelled (or, past
what fits, evenly spaced ones and always the failing one), a constant rate drawn as the
constant it is (not on an axis of 0.00096 to 0.00104).
"""

from __future__ import annotations

import io
import math
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from caffe_nantools.diagnose import SATURATED_SOFTMAX_LOSS, Column, is_bad
from caffe_nantools.report.trace import Trace

#: Past this many rows only every k-th layer is named on the axis.
LABELLED_ROWS = 60
#: Past this many columns only evenly spaced iterations (and the failing one) are named.
LABELLED_COLUMNS = 30
PASSES = (
    ("forward", "forward: top data, log10 mean |x|"),
    ("backward", "backward: bottom diff, log10 mean |x|"),
)
BAD_MARK = "red x: nan, inf or >= 1e37"


def pyplot():
    """matplotlib's pyplot on the Agg backend, or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def svg(fig) -> str:
    """``fig`` as an ``<svg>`` element to put inline in a page: text as text (searchable, no
    font embedded), no XML prolog."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "nantools"}):
        fig.savefig(out, format="svg", bbox_inches="tight")
    text = out.getvalue()
    # The metadata block names the date made and RDF vocabularies: nothing a reader sees.
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    return text[text.index("<svg") :]


def heatmap(fig, ax, trace: Trace, pick: str, origin=None) -> None:
    """log10 mean |x| per layer (rows, net order) and displayed iteration (columns) of one
    pass; non-finite cells crossed out, the failing column's label in red, the origin boxed."""
    layers, columns = trace.layers, trace.columns
    rows = max(len(layers), 1)
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
        ax.scatter(xs, ys, marker="x", color="red", s=max(4, min(40, 2000 / rows)), linewidths=1)
    if origin is not None and origin.layer in layers and origin.pass_ in _passes_of(pick):
        j = next(
            (k for k, c in enumerate(columns) if c.iteration == origin.iteration),
            len(columns) - 1,
        )
        i = layers.index(origin.layer)
        ax.add_patch(_box(j, i))
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
    ax.set_title(f"{dict(PASSES)[pick]} ({BAD_MARK})", fontsize=10)
    step = max(1, math.ceil(rows / LABELLED_ROWS))
    ax.set_yticks(range(0, len(layers), step))
    ax.set_yticklabels(layers[::step], fontsize=max(5, min(9, 600 // rows)))
    _iteration_ticks(ax, trace)


def _passes_of(pick: str) -> Tuple[str, ...]:
    return ("forward", "update") if pick == "forward" else ("backward",)


def _box(j: int, i: int):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2)


def _iteration_ticks(ax, trace: Trace) -> None:
    count = len(trace.columns)
    if count <= LABELLED_COLUMNS:
        ticks = list(range(count))
    else:
        ticks = sorted(set(np.linspace(0, count - 1, LABELLED_COLUMNS // 2).astype(int).tolist()))
    if trace.failing is not None and trace.failing not in ticks:
        # The failing column is named even where a neighbour's label has to go.
        ticks = [t for t in ticks if abs(t - trace.failing) > count / LABELLED_COLUMNS]
        ticks = sorted(ticks + [trace.failing])
    labels = trace.labels
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[k] for k in ticks], fontsize=7, rotation=90 if count > 12 else 0)
    for tick, k in zip(ax.get_xticklabels(), ticks):
        if k == trace.failing:
            tick.set_color("red")
            tick.set_fontweight("bold")
    ax.set_xlabel("iteration (displayed; red: the first non-finite value)")


def profile(ax, column: Optional[Column], layers: List[str], marks: Sequence[tuple]) -> None:
    """One iteration along the net: log10 mean |x| per layer, forward and backward, where a jump
    by orders of magnitude shows at a glance; ``marks`` are (layer, label, colour) lines."""
    xs = np.arange(len(layers))
    top = 0.0
    for pick, color in (("forward", "tab:blue"), ("backward", "tab:green")):
        values = getattr(column, pick) if column is not None else {}
        known = [(i, values[layer]) for i, layer in enumerate(layers) if layer in values]
        good = [(i, math.log10(v)) for i, v in known if not is_bad(v) and v > 0]
        if good:
            ax.plot(*zip(*good), marker="o", markersize=3, color=color, label=f"{pick}")
            top = max(top, max(y for _, y in good) + 1)
        bad = [i for i, v in known if is_bad(v)]
        if bad:
            ax.scatter(
                bad,
                [top] * len(bad),
                marker="x",
                color="red",
                zorder=3,
                label=f"{pick}: nan, inf or >= 1e37",
            )
    for layer, label, color in marks:
        if layer in layers:
            ax.axvline(layers.index(layer), color=color, linestyle=":", linewidth=1)
            ax.annotate(
                label,
                (layers.index(layer), 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
            )
    ax.set_xticks(xs)
    ax.set_xticklabels(layers, rotation=90, fontsize=max(5, min(9, 600 // max(len(layers), 1))))
    ax.set_ylabel("log10 mean |x|")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _value_axis(ax, finite: np.ndarray) -> None:
    """A log scale where the values span two decades; a constant drawn as one (from 0)."""
    if finite.size and (finite > 0).all() and finite.max() > 100 * finite.min():
        ax.set_yscale("log")
    elif finite.size:
        low, high = float(finite.min()), float(finite.max())
        if high - low <= 1e-6 * max(abs(high), 1e-30):
            # A constant: from 0 to above it, so the axis says "this value", not its noise.
            ax.set_ylim(min(0.0, low * 1.5), max(0.0, high * 1.5) or 1.0)
        ax.ticklabel_format(axis="y", useOffset=False, style="sci", scilimits=(-3, 4))


def series(
    ax,
    points,
    name: str,
    color: str,
    *,
    pinned: Optional[float] = None,
    spans: Sequence[Tuple[float, float]] = (),
) -> None:
    """A loss, output or rate against iteration: each non-finite point a red x on the axis's
    floor, and each of ``spans`` (iterations whose values are all non-finite) a red bar there;
    a loss pinned at 87.3365 marked; a log scale where values span two decades; a constant
    drawn as one (its axis from 0)."""
    if not points:
        ax.text(0.5, 0.5, f"no {name} in the log", ha="center", transform=ax.transAxes)
        return
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    good = np.isfinite(ys)
    ax.plot(
        xs[good],
        ys[good],
        color=color,
        label=name,
        linewidth=1,
        marker="." if len(xs) < 60 else None,
    )
    finite = ys[good]
    _value_axis(ax, finite)
    if not good.all():
        floor = finite.min() if finite.size else 0.0
        ax.scatter(
            xs[~good],
            np.full((~good).sum(), floor),
            marker="x",
            color="red",
            s=40,
            zorder=3,
            label=f"{name} nan/inf (first at {_iteration(xs[~good][0])})",
        )
        for start, end in spans:
            ax.hlines(floor, start, end, color="red", linewidth=3, zorder=3)
    if pinned is not None:
        ax.axvline(pinned, color="purple", linestyle="--", linewidth=1)
        ax.annotate(
            f"{SATURATED_SOFTMAX_LOSS} plateau from {_iteration(pinned)}",
            (pinned, 1),
            xycoords=("data", "axes fraction"),
            va="top",
            fontsize=8,
            color="purple",
        )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole numbers
    ax.set_ylabel(name, color=color)
    ax.set_xlabel("iteration")
    ax.legend(loc="best", fontsize=7)


def _iteration(x: float) -> str:
    return str(int(x))


def marks(began, first) -> List[Tuple[str, str, str]]:
    """The lines a profile draws: where the trouble began (``began``, a diagnosis' Blame) and
    where it showed (``first``, its FirstNonfinite); (layer, label, colour)."""
    found = ((began, "origin", "black"), (first, "first non-finite", "red"))
    return [(w.layer, label, color) for w, label, color in found if w is not None and w.layer]


def loss_points(run) -> list:
    """The sampled loss curve with the first non-finite loss in it (thinning may have dropped it)."""
    points = list(run.loss_series.items)
    first = run.first_bad_loss
    if (
        first is not None
        and first.iteration is not None
        and all(x != first.iteration for x, _ in points)
    ):
        points = sorted(points + [(first.iteration, first.value)], key=lambda p: p[0])
    return points
