"""Exact checks of numpy arrays for NaN and infinity, cheap when everything is finite.

Pure numpy, shared by the check layer (inside Caffe) and the data scanner.

The all-finite case is the hot path: :func:`is_finite` costs one plain reduction over the
array. A sum is finite exactly when no element is NaN or infinite, unless finite values
overflow it; only then, or when something really is non-finite, does the slower exact
:func:`finite_stats` run. ``np.einsum("i->", x)`` is numpy's cheapest full reduction for
float32: it is vectorized without the pairwise blocking of ``x.sum()`` and, unlike
``np.isfinite(x).all()``, allocates no temporary (measured in benchmarks/check_cost.py).
numpy 1.19's einsum (Debian 11's, the Caffe image's) does not vectorize the float32 sum: with
numpy older than 1.23 (the first measured vectorized), a large array is summed as the columns
of a 2-D view (``np.add.reduce(axis=0)`` adds whole rows at a time), 1.5x faster there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from caffe_nantools.jsontext import fields_dict

#: How many bad sample indices a report lists; the total is always given.
SHOWN_SAMPLES = 10

_ALL = ["->"] + ["abcdefghijklmnopqrstuvwxyz"[:n] + "->" for n in range(1, 27)]

#: Width of the 2-D view a large contiguous array is summed through, or 0 to sum with einsum.
#: Measured on 1M float32 in cache: numpy 1.19 einsum 31 GB/s, columns of 2048 48 GB/s;
#: numpy 1.23 to 2.4 einsum 80-90 GB/s, columns 40-75 GB/s.
SUM_COLUMNS = 2048 if np.lib.NumpyVersion(np.__version__) < "1.23.0" else 0
_MIN_ROWS = 16  # below it the extra calls cost more than the faster loop saves


def _sum32(x: np.ndarray) -> float:
    """The float sum of ``x`` by numpy's fastest plain reduction (NaN/inf propagate)."""
    if not x.flags.c_contiguous:
        return float(np.einsum(_ALL[x.ndim], x))
    flat = x.reshape(-1)
    rows = flat.size // SUM_COLUMNS if SUM_COLUMNS else 0
    if rows < _MIN_ROWS:
        return float(np.einsum("i->", flat))
    cut = rows * SUM_COLUMNS
    with np.errstate(over="ignore", invalid="ignore"):  # einsum does not warn either
        columns = np.add.reduce(flat[:cut].reshape(rows, SUM_COLUMNS), axis=0)
    return float(np.einsum("i->", columns, dtype=np.float64)) + float(np.einsum("i->", flat[cut:]))


def finite_sum(x: np.ndarray) -> Optional[float]:
    """The sum of a float array if every element is finite, else None, in one reduction.

    The hot path: an empty array sums to 0, which is finite; a strided view is summed as it
    is (flattening it would copy it first). Only a sum that overflowed while every element is
    finite is summed again, in float64.
    """
    total = _sum32(x)
    if math.isfinite(total):
        return total
    if np.isfinite(x).all():
        return float(np.sum(x, dtype=np.float64))
    return None


def is_finite(x: np.ndarray, max_abs: Optional[float] = None) -> bool:
    """Tell whether every element of ``x`` is finite (and, given ``max_abs``, within it).

    Args:
        x: any numpy array; integer and bool arrays are always finite.
        max_abs: when given, an element with ``|x| > max_abs`` also makes the answer False.
            This costs a max and a min pass instead of one sum.

    Returns:
        True when all elements pass. False answers are exact too: call :func:`finite_stats`
        to learn what failed.
    """
    if x.dtype.kind == "f" and max_abs is None:
        return finite_sum(x) is not None
    if x.size == 0:
        return True
    if x.dtype.kind != "f":
        return max_abs is None or max(abs(int(x.max())), abs(int(x.min()))) <= max_abs
    # max and min both propagate NaN, and NaN fails every comparison.
    return bool(x.max() <= max_abs and -x.min() <= max_abs)


def counts_text(nan: int, posinf: int, neginf: int, count: int) -> str:
    """The counts as every message of the package gives them."""
    return f"{nan} NaN, {posinf} +inf, {neginf} -inf in {count} values"


@dataclass(frozen=True)
class FiniteStats:
    """What is wrong with an array, in numbers.

    ``bad_samples`` are the first :data:`SHOWN_SAMPLES` indices along the first axis (the batch
    axis of a Caffe blob) whose slice holds a non-finite value or one beyond ``max_abs``;
    ``n_bad_samples`` counts them all. ``finite_min``/``finite_max`` are None when no element is
    finite.
    """

    count: int
    nan: int
    posinf: int
    neginf: int
    over_max_abs: int
    n_samples: int
    bad_samples: Tuple[int, ...]
    n_bad_samples: int
    finite_min: Optional[float]
    finite_max: Optional[float]

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf

    @property
    def counts(self) -> str:
        """``1 NaN, 0 +inf, 0 -inf in 384 values``."""
        return counts_text(self.nan, self.posinf, self.neginf, self.count)

    @property
    def ok(self) -> bool:
        return self.nonfinite == 0 and self.over_max_abs == 0

    def to_dict(self) -> dict:
        return fields_dict(self, convert={"bad_samples": list})


def finite_stats(x: np.ndarray, max_abs: Optional[float] = None) -> FiniteStats:
    """Count NaN, +inf, -inf (and values beyond ``max_abs``) in ``x`` and locate the samples.

    This is the slow, detailed path: several passes and boolean temporaries. Call it after
    :func:`is_finite` said False.
    """
    n_samples = x.shape[0] if x.ndim else 1
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    finite = np.isfinite(x)
    nan = int(np.count_nonzero(np.isnan(x)))
    posinf = int(np.count_nonzero(np.isposinf(x)))
    n_finite = int(np.count_nonzero(finite))
    neginf = x.size - n_finite - nan - posinf
    bad = ~finite
    over = 0
    if max_abs is not None:
        beyond = np.abs(x, where=finite, out=np.zeros(x.shape, x.dtype)) > max_abs
        over = int(np.count_nonzero(beyond))
        bad |= beyond
    if n_finite:
        values = x[finite]
        lo, hi = float(values.min()), float(values.max())
    else:
        lo = hi = None
    per_sample = bad.reshape(n_samples, -1).any(axis=1) if x.size else np.zeros(0, bool)
    rows = np.flatnonzero(per_sample)
    return FiniteStats(
        count=int(x.size),
        nan=nan,
        posinf=posinf,
        neginf=int(neginf),
        over_max_abs=over,
        n_samples=int(n_samples),
        bad_samples=tuple(int(i) for i in rows[:SHOWN_SAMPLES]),
        n_bad_samples=int(rows.size),
        finite_min=lo,
        finite_max=hi,
    )
