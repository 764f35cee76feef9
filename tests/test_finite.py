"""finite.py: the fast all-finite check and the detailed counts, against numpy's own answer."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from caffe_nantools import finite
from caffe_nantools.finite import SHOWN_SAMPLES, finite_stats, finite_sum, is_finite

SHAPES = [(1,), (7,), (4, 3, 5, 5), (64, 1000)]
DTYPES = [np.float32, np.float64, np.float16]


def flat_positions(size):
    return sorted({0, size // 2, size - 1})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_arrays_pass(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    assert is_finite(x)
    assert finite_stats(x).ok


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_value_is_found_anywhere(shape, dtype, bad):
    for pos in flat_positions(int(np.prod(shape))):
        x = np.ones(shape, dtype)
        x.reshape(-1)[pos] = bad
        assert not is_finite(x), (pos, bad)
        stats = finite_stats(x)
        assert (stats.nan, stats.posinf, stats.neginf) == (
            int(np.isnan(bad)),
            int(bad == np.inf),
            int(bad == -np.inf),
        )
        assert stats.bad_samples == (np.unravel_index(pos, shape)[0],)


def test_inf_and_minus_inf_together_are_both_counted():
    x = np.zeros((3, 4), np.float32)
    x[0, 0], x[2, 1] = np.inf, -np.inf
    stats = finite_stats(x)
    assert not is_finite(x)
    assert (stats.nan, stats.posinf, stats.neginf, stats.count) == (0, 1, 1, 12)
    assert stats.bad_samples == (0, 2) and stats.n_bad_samples == 2


def test_finite_values_whose_sum_overflows_are_still_finite():
    x = np.full(1000, 3e38, np.float32)
    assert np.isinf(np.einsum("i->", x))
    assert is_finite(x)


def test_integer_and_bool_arrays_are_finite():
    assert is_finite(np.arange(10, dtype=np.uint8))
    assert is_finite(np.array([True, False]))
    assert finite_stats(np.arange(10, dtype=np.int32)).ok


def test_empty_and_scalar_arrays():
    assert is_finite(np.zeros((0, 3), np.float32))
    assert finite_stats(np.zeros((0, 3), np.float32)).count == 0
    assert not is_finite(np.array(np.nan, np.float32))
    assert finite_stats(np.array(np.nan)).bad_samples == (0,)


def test_non_contiguous_views_are_checked():
    x = np.ones((6, 6), np.float32)
    x[4, 1] = np.nan
    assert not is_finite(x[:, 1])
    assert is_finite(x[:, 2])


def test_max_abs_flags_large_finite_values_and_their_samples():
    x = np.zeros((5, 10), np.float32)
    x[1, 3] = 2e6
    x[3, 0] = -5e6
    assert is_finite(x)
    assert not is_finite(x, max_abs=1e6)
    assert is_finite(x, max_abs=1e7)
    stats = finite_stats(x, max_abs=1e6)
    assert stats.over_max_abs == 2 and stats.nonfinite == 0
    assert stats.bad_samples == (1, 3)
    assert not stats.ok


def test_max_abs_still_catches_nan_and_inf():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(8, np.float32)
        x[5] = bad
        assert not is_finite(x, max_abs=1.0)


def test_max_abs_applies_to_integers():
    assert not is_finite(np.array([0, -300], np.int16), max_abs=255)
    assert is_finite(np.array([0, 255], np.uint8), max_abs=255)


def test_bad_sample_list_is_capped_but_the_total_is_not():
    x = np.zeros((50, 2), np.float32)
    x[::2, 0] = np.nan
    stats = finite_stats(x)
    assert stats.bad_samples == tuple(range(0, 2 * SHOWN_SAMPLES, 2))
    assert stats.n_bad_samples == 25 and stats.n_samples == 50


def test_finite_range_ignores_bad_values_and_is_none_when_nothing_is_finite():
    x = np.array([np.nan, -2.0, 7.0, np.inf], np.float32)
    stats = finite_stats(x)
    assert (stats.finite_min, stats.finite_max) == (-2.0, 7.0)
    all_bad = finite_stats(np.full(3, np.nan))
    assert all_bad.finite_min is None and all_bad.finite_max is None


@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_matches_numpy_for_any_array(x):
    expected = bool(np.isfinite(x).all())
    assert is_finite(x) == expected
    stats = finite_stats(x)
    assert stats.ok == expected
    assert stats.nan == np.isnan(x).sum()
    assert stats.posinf == np.isposinf(x).sum()
    assert stats.neginf == np.isneginf(x).sum()


def test_the_column_sum_of_older_numpy_finds_every_bad_position(monkeypatch):
    # numpy < 1.23 sums large arrays through a 2-D view; the tail past the last full row counts too.
    monkeypatch.setattr(finite, "SUM_COLUMNS", 64)
    x = np.random.default_rng(0).standard_normal(64 * 20 + 5).astype(np.float32)
    assert finite_sum(x) == pytest.approx(float(x.sum(dtype=np.float64)), rel=1e-5, abs=1e-3)
    for pos in (0, 63, 64 * 19 + 63, 64 * 20, 64 * 20 + 4):
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[pos] = bad
            assert finite_sum(y) is None, (pos, bad)
    big = np.full(64 * 20, 3e38, np.float32)  # finite values whose column sums overflow
    assert finite_sum(big) == pytest.approx(64 * 20 * 3e38, rel=1e-6)
