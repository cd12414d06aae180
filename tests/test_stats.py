"""Bootstrap confidence intervals: point values, seeding, NaN handling, rough coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from omninft_bench.stats import Estimate, bootstrap_mean, bootstrap_statistic


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
