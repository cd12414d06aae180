"""Bootstrap confidence intervals: point values, seeding, NaN handling, rough coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from omninft_bench.stats import (
    Estimate,
    bootstrap_mean,
    bootstrap_statistic,
    two_way_bootstrap_mean,
)


def test_mean_and_interval_bracket_the_sample_mean():
    x = np.random.default_rng(0).normal(2.0, 1.0, size=200)
    est = bootstrap_mean(x, seed=0)
    assert est.value == pytest.approx(x.mean())
    assert est.ci_low < est.value < est.ci_high
    assert est.n == 200


def test_width_matches_the_normal_approximation():
    x = np.random.default_rng(1).normal(0.0, 1.0, size=400)
    est = bootstrap_mean(x, n_resamples=4000, seed=0)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert (est.ci_high - est.ci_low) / 2 == pytest.approx(half, rel=0.1)


def test_seeded_and_deterministic():
    x = np.random.default_rng(2).uniform(size=50)
    assert bootstrap_mean(x, seed=3) == bootstrap_mean(x, seed=3)
    assert bootstrap_mean(x, seed=3).ci_low != bootstrap_mean(x, seed=4).ci_low


def test_nan_is_dropped_and_not_counted():
    est = bootstrap_mean([1.0, float("nan"), 3.0], seed=0)
    assert est.value == 2.0 and est.n == 2


def test_empty_and_single():
    assert bootstrap_mean([float("nan")]) == Estimate(None, None, None, 0)
    assert bootstrap_mean([]) == Estimate(None, None, None, 0)
    one = bootstrap_mean([0.7])
    assert one.value == one.ci_low == one.ci_high == pytest.approx(0.7) and one.n == 1


def test_more_data_gives_a_narrower_interval():
    rng = np.random.default_rng(5)
    small, large = bootstrap_mean(rng.normal(size=20)), bootstrap_mean(rng.normal(size=2000))
    assert large.ci_high - large.ci_low < small.ci_high - small.ci_low


def test_statistic_on_index_sets():
    x = np.random.default_rng(6).exponential(size=101)
    est = bootstrap_statistic(x.size, lambda idx: float(np.median(x[idx])), n_resamples=300, seed=0)
    assert est.value == pytest.approx(float(np.median(x)))
    assert est.ci_low <= est.value <= est.ci_high and est.n == 101
    again = bootstrap_statistic(x.size, lambda idx: float(np.median(x[idx])), n_resamples=300, seed=0)
    assert again == est


def test_statistic_not_finite_gives_none():
    est = bootstrap_statistic(5, lambda idx: float("nan"))
    assert est.value is None and est.n == 5
    assert bootstrap_statistic(0, lambda idx: 1.0) == Estimate(None, None, None, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean([1.0], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_statistic(3, lambda idx: 1.0, confidence=1.5)


def test_as_dict_is_json_ready():
    assert bootstrap_mean([1.0, 2.0], seed=0).as_dict().keys() == {"value", "ci_low", "ci_high", "n"}


def _two_way_variance(y: np.ndarray) -> float:
    """Reference: the exact variance of the row-and-column resampled mean of a complete matrix,
    mean(a^2)/R + mean(b^2)/P + mean(g^2)/(RP) for y = m + a_i + b_j + g_ij."""
    rows, cols = y.shape
    a = y.mean(axis=1) - y.mean()
    b = y.mean(axis=0) - y.mean()
    g = y - y.mean() - a[:, None] - b[None, :]
    return float((a**2).mean() / rows + (b**2).mean() / cols + (g**2).mean() / (rows * cols))


def test_two_way_bootstrap_matches_the_exact_resampling_variance():
    rng = np.random.default_rng(0)
    # 6 runs x 40 prompts: run effects, prompt effects 3x larger, and noise
    y = 0.2 + rng.normal(0, 0.01, (6, 1)) + rng.normal(0, 0.03, (1, 40)) + rng.normal(0, 0.02, (6, 40))
    est = two_way_bootstrap_mean(y, n_resamples=20000, confidence=0.95)
    assert est.value == pytest.approx(y.mean()) and est.n == 6
    sd = math.sqrt(_two_way_variance(y))
    # a percentile interval of a near-normal statistic: half-width ~ 1.96 sd (Monte Carlo: 3 %)
    assert (est.ci_high - est.ci_low) / 2 == pytest.approx(1.959964 * sd, rel=0.03)


def test_two_way_bootstrap_counts_the_prompts():
    # Identical rows: resampling runs alone would give a zero-width interval; the prompts do not.
    rng = np.random.default_rng(1)
    y = np.tile(rng.normal(0.0, 0.05, 64), (8, 1))
    est = two_way_bootstrap_mean(y, n_resamples=4000)
    col = bootstrap_mean(y[0], n_resamples=4000)
    assert est.ci_high - est.ci_low == pytest.approx(col.ci_high - col.ci_low, rel=0.1)
    # one prompt: only the runs are resampled
    one = two_way_bootstrap_mean(y[:, :1] + np.arange(8.0)[:, None], n_resamples=4000)
    assert one.value == pytest.approx(y[0, 0] + 3.5) and one.ci_low < one.value < one.ci_high


def test_two_way_bootstrap_skips_nan_and_validates():
    y = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, np.nan]])
    est = two_way_bootstrap_mean(y, n_resamples=500)
    assert est.value == pytest.approx(2.0) and est.ci_low >= 1.0 and est.ci_high <= 3.0
    assert two_way_bootstrap_mean(np.full((2, 2), np.nan)).value is None
    assert two_way_bootstrap_mean(y, seed=3) == two_way_bootstrap_mean(y, seed=3)
    with pytest.raises(ValueError, match=r"\[R, P\] matrix"):
        two_way_bootstrap_mean([1.0, 2.0])
