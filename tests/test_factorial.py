"""Factorial effects and t intervals against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from omninft_bench.factorial import (
    FACTORS,
    all_terms,
    cells,
    effect,
    effect_over_seeds,
    factorial_effects,
    missing_cells,
    t_interval,
    two_way_t_interval,
)

# 2^2 example (A, B):  (off,off)=10, (on,off)=14, (off,on)=12, (on,on)=20.
# A  = mean(14, 20) - mean(10, 12) = 17 - 11 = 6
# B  = mean(12, 20) - mean(10, 14) = 16 - 12 = 4
# AB = mean(10, 20) - mean(14, 12) = 15 - 13 = 2  (= 1/2 * [(20-12) - (14-10)])
TWO_BY_TWO = {(False, False): 10.0, (True, False): 14.0, (False, True): 12.0, (True, True): 20.0}


def test_two_by_two_by_hand():
    f = ("a", "b")
    assert effect(TWO_BY_TWO, ("a",), f) == pytest.approx(6.0)
    assert effect(TWO_BY_TWO, ("b",), f) == pytest.approx(4.0)
    assert effect(TWO_BY_TWO, ("a", "b"), f) == pytest.approx(2.0)
    assert effect(TWO_BY_TWO, ("b", "a"), f) == pytest.approx(2.0)


def test_additive_2x2x2_has_no_interactions():
    # y = r + 2 s + 4 w: main effects 1, 2, 4; every interaction 0.
    y = {c: 1.0 * c[0] + 2.0 * c[1] + 4.0 * c[2] for c in cells()}
    assert [effect(y, (f,)) for f in FACTORS] == pytest.approx([1.0, 2.0, 4.0])
    for term in all_terms(max_order=3)[3:]:
        assert effect(y, term) == pytest.approx(0.0)


def test_product_term_by_hand():
    # y = 1 only where routing and surgery are both on (2 of 8 cells).
    # routing: mean(y | r on) - mean(y | r off) = 2/4 - 0 = 0.5; same for surgery; reweighting 0.
    # routing x surgery: (2/8) * (+1 * 1 + +1 * 1) = 0.5 = 1/2 * [(1 - 0) - (0 - 0)].
    # routing x reweighting: the two nonzero cells have codes (+1)(-1) and (+1)(+1): sum 0.
    y = {c: float(c[0] and c[1]) for c in cells()}
    assert effect(y, ("routing",)) == pytest.approx(0.5)
    assert effect(y, ("surgery",)) == pytest.approx(0.5)
    assert effect(y, ("reweighting",)) == pytest.approx(0.0)
    assert effect(y, ("routing", "surgery")) == pytest.approx(0.5)
    assert effect(y, ("routing", "reweighting")) == pytest.approx(0.0)


def test_negative_effect_keeps_its_sign():
    y = {c: 5.0 - 0.25 * c[2] for c in cells()}
    est = effect_over_seeds({0: y, 1: y}, ("reweighting",))
    assert est.estimate.mean == pytest.approx(-0.25)
    assert est.sign == -1


def test_t_interval_by_hand():
    # [1, 2, 3]: mean 2, s = 1, se = 1/sqrt(3), t_{0.975, 2} = 4.302652729749464
    ci = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729749464 / math.sqrt(3)
    assert (ci.mean, ci.n) == (pytest.approx(2.0), 3)
    assert ci.ci_low == pytest.approx(2.0 - half)
    assert ci.ci_high == pytest.approx(2.0 + half)
    assert ci.half_width == pytest.approx(2.48413771, rel=1e-7)
    # two values: se = |a - b| / 2 and t_{0.975, 1} = 12.706204736174698
    ci2 = t_interval([1.5, 1.7])
    assert ci2.half_width == pytest.approx(12.706204736174698 * 0.1)


def test_t_interval_degenerate_cases():
    assert t_interval([]).mean is None
    one = t_interval([3.0, float("nan")])
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (3.0, None, None, 1)
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=1.5)


def test_effect_over_seeds_by_hand():
    # Seed offsets cancel within a seed; the routing effect is 0.28 on seed 0 and 0.32 on seed 1.
    by_seed = {
        seed: {c: 1.0 + 10.0 * seed + (0.28 if seed == 0 else 0.32) * c[0] for c in cells()}
        for seed in (0, 1)
    }
    est = effect_over_seeds(by_seed, ("routing",))
    assert est.per_seed == {0: pytest.approx(0.28), 1: pytest.approx(0.32)}
    assert est.estimate.mean == pytest.approx(0.30)
    # y[s, c] = a_s + b_s * routing: the residual of seed + cell is (b_s - 0.30)(routing - 1/2)
    # = +-0.01 in all 16 runs, so MSE = 16 * 1e-4 / 7 (df = (2 - 1)(8 - 1)) and
    # SE = 2 sqrt(MSE / 16); t_{0.975, 7} = 2.364624.
    mse = 16 * 1e-4 / 7
    assert est.df == 7
    assert est.estimate.half_width == pytest.approx(2.3646242510102993 * 2 * math.sqrt(mse / 16))
    assert est.excludes_zero is True


def test_effect_interval_matches_least_squares_with_seed_blocks():
    # Reference: ordinary least squares on [seed dummies | +-1 codes of every factorial term];
    # the effect is twice the term's coefficient, its SE twice the coefficient's SE.
    rng = np.random.default_rng(3)
    terms = all_terms(max_order=3)
    seeds = (0, 1, 2)
    by_seed = {s: {c: float(rng.normal(0.1 * s, 1.0) + 0.5 * c[0]) for c in cells()} for s in seeds}
    rows, y = [], []
    for s in seeds:
        for c in cells():
            codes = [math.prod(1.0 if c[FACTORS.index(f)] else -1.0 for f in t) for t in terms]
            rows.append([float(s == k) for k in seeds] + codes)
            y.append(by_seed[s][c])
    x, y = np.array(rows), np.array(y)
    beta, rss, *_ = np.linalg.lstsq(x, y, rcond=None)
    df = len(y) - x.shape[1]
    cov = float(rss[0]) / df * np.linalg.inv(x.T @ x)
    t = scipy_stats.t.ppf(0.975, df)
    for i, term in enumerate(terms):
        est = effect_over_seeds(by_seed, term)
        k = len(seeds) + i
        assert est.df == df == 14
        assert est.estimate.mean == pytest.approx(2 * beta[k])
        assert est.estimate.half_width == pytest.approx(t * 2 * math.sqrt(cov[k, k]))


def test_incomplete_factorial():
    y = {c: 1.0 for c in cells()}
    del y[(True, True, True)]
    assert missing_cells(y) == [(True, True, True)]
    with pytest.raises(ValueError, match="incomplete factorial"):
        effect(y, ("routing",))
    with pytest.raises(ValueError, match="must name factors"):
        effect({c: 1.0 for c in cells()}, ("routnig",))
    # a seed with a missing cell is left out rather than biasing the estimate
    full = {c: float(c[0]) for c in cells()}
    est = effect_over_seeds({0: full, 1: y}, ("routing",))
    assert list(est.per_seed) == [0] and est.estimate.n == 1 and est.excludes_zero is None


def test_factorial_effects_lists_main_then_interactions():
    y = {c: float(c[0]) for c in cells()}
    names = [e.name for e in factorial_effects({0: y})]
    assert names == [
        "routing", "surgery", "reweighting",
        "routing × surgery", "routing × reweighting", "surgery × reweighting",
    ]


def test_rounding_noise_is_reported_as_exact_zero():
    # 0.1 and 0.2 are not exact in binary: the raw contrasts below are ~1e-17, not 0.
    y = {c: 0.1 + 0.2 * c[0] + 0.7 * c[1] + 0.3 * c[2] for c in cells()}
    assert effect(y, ("routing", "surgery")) == 0.0
    assert effect(y, ("surgery", "reweighting")) == 0.0
    est = effect_over_seeds({0: y, 1: y}, ("routing", "reweighting"))
    assert est.estimate.mean == 0.0 and est.sign == 0 and est.estimate.half_width == 0.0
    ci = t_interval([0.3, 0.1 + 0.2])  # 0.1 + 0.2 != 0.3 in floating point
    assert ci.half_width == 0.0


def test_two_way_t_interval_by_hand():
    # rows (runs) [1, 2, 3] and [3, 4, 5]: row means 2, 4 (s^2 = 2), column means 2, 3, 4 (s^2 = 1)
    # V = 2/2 + 1/3 = 4/3 with min(2 - 1, 3 - 1) = 1 degree of freedom (t = 12.706)
    ci = two_way_t_interval([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    half = 12.706204736174698 * math.sqrt(4 / 3)
    assert ci.mean == pytest.approx(3.0) and ci.n == 2
    assert (ci.ci_low, ci.ci_high) == pytest.approx((3.0 - half, 3.0 + half))


def test_two_way_t_interval_limits_are_one_way_intervals():
    rng = np.random.default_rng(0)
    runs = rng.normal(0.0, 1.0, 6)
    prompts = rng.normal(0.0, 1.0, 40)
    # every prompt alike: the t interval over the runs (5 df)
    same_cols = two_way_t_interval(np.repeat(runs[:, None], 40, axis=1))
    assert (same_cols.ci_low, same_cols.ci_high) == pytest.approx((t_interval(runs).ci_low, t_interval(runs).ci_high))
    # every run alike: the prompts' spread, which an interval over runs misses (zero width there),
    # s(prompts) / sqrt(40) with min(6, 40) - 1 = 5 degrees of freedom
    same_rows = two_way_t_interval(np.repeat(prompts[None, :], 6, axis=0))
    assert t_interval(np.full(6, prompts.mean())).half_width == 0.0
    assert same_rows.half_width == pytest.approx(scipy_stats.t.ppf(0.975, 5) * prompts.std(ddof=1) / math.sqrt(40))
    # a column with a NaN is dropped; one row has no interval
    y = np.repeat(runs[:, None], 41, axis=1)
    y[2, 1] = np.nan
    assert two_way_t_interval(y).ci_low == pytest.approx(t_interval(runs).ci_low)
    assert two_way_t_interval([[1.0, 2.0]]).ci_low is None
    with pytest.raises(ValueError, match=r"\[R, P\] matrix"):
        two_way_t_interval([1.0, 2.0])
