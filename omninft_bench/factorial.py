"""Effects in the 2^k factorial ablation (routing x surgery x reweighting), with t intervals.

A *cell* is one combination of switches, keyed by a tuple of bools in :data:`FACTORS` order,
e.g. ``(True, False, True)`` = routing on, surgery off, reweighting on.  One seed of the ablation
gives one value per cell; seeds are the replicates.

Effects use the standard +-1 contrast coding (Yates; Montgomery, *Design and Analysis of
Experiments*, ch. 6): code each switch c = +1 (on) / -1 (off); the effect of a term (one factor,
or a product of factors for an interaction) is

    effect = (2 / N) * sum over the N cells of (product of the term's codes) * y

* main effect of A = mean(y | A on) - mean(y | A off);
* two-way interaction AB = mean(y | c_A c_B = +1) - mean(y | c_A c_B = -1)
  = 1/2 * [(effect of A with B on) - (effect of A with B off)].

Uncertainty comes from the seeds (the replicates), analysed as a randomized complete block design
with the seed as the block (Montgomery ch. 7: a replicated 2^k run in blocks).  The effect is
the contrast over every cell of every seed (the mean of the per-seed effects), and its standard
error comes from the residual of the additive model y[seed, cell] = seed effect + cell effect,

    MSE = sum (y[s, c] - mean_c y[s, .] - mean_s y[., c] + mean y)^2 / ((r - 1)(2^k - 1)),
    SE(effect) = 2 sqrt(MSE / (r 2^k)),    CI = effect +- t_{(r-1)(2^k-1)} SE,

with r complete seeds.  The seed x cell interaction is the error: every effect shares it, which
assumes the effects vary from seed to seed by similar amounts.  Blocking by seed is right both
when the cells of a seed share their prompts and noise (common random numbers: whatever the
seed shares cancels) and when every run draws its own (then the block costs r - 1 degrees of
freedom and nothing else).  With 2 seeds the error has 7 degrees of freedom (t = 2.36), where
a t interval over the two per-seed effects alone would have 1 (t = 12.7).  All functions are pure.

Floating-point noise: a contrast, mean or standard deviation smaller than ``REL_EPS`` times the
largest magnitude it was computed from is reported as exactly 0, so that a report never states
"lowers by 6.9e-18" for an effect that is zero up to rounding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = [
    "FACTORS",
    "REL_EPS",
    "Cell",
    "EffectEstimate",
    "TInterval",
    "all_terms",
    "cells",
    "effect",
    "blocked_error",
    "effect_over_seeds",
    "factorial_effects",
    "missing_cells",
    "t_interval",
    "term_name",
    "two_way_t_interval",
]

#: The ablation switches, in the order used for cell keys.
FACTORS: tuple[str, ...] = ("routing", "surgery", "reweighting")

Cell = tuple[bool, ...]

#: Relative size below which a result is rounding noise (see the module docstring).
REL_EPS = 1e-12


def _snap(x: float, scale: float) -> float:
    return 0.0 if abs(x) <= REL_EPS * scale else x


@dataclass(frozen=True)
class TInterval:
    """Mean of ``n`` replicates with a two-sided Student-t interval; ``None`` when n < 2."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2.0

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True)
class EffectEstimate:
    """One factorial term (``("routing",)`` or ``("routing", "surgery")``) over seeds."""

    term: tuple[str, ...]
    estimate: TInterval
    per_seed: dict[int, float]
    df: int = 0  # degrees of freedom of the interval's error term (0 = no interval)

    @property
    def name(self) -> str:
        return term_name(self.term)

    @property
    def order(self) -> int:
        return len(self.term)

    @property
    def sign(self) -> int:
        """+1, -1 or 0 (exactly zero or not computable)."""
        m = self.estimate.mean
        if m is None or m == 0:
            return 0
        return 1 if m > 0 else -1

    @property
    def excludes_zero(self) -> bool | None:
        """Whether the CI lies entirely on one side of 0; ``None`` without a CI (one seed)."""
        lo, hi = self.estimate.ci_low, self.estimate.ci_high
        if lo is None or hi is None:
            return None
        return lo > 0 or hi < 0


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _t_quantile(confidence: float, df: float) -> float:
    """The two-sided ``confidence`` quantile t_{(1+confidence)/2, df}."""
    return float(stats.t.ppf((1.0 + confidence) / 2.0, df))


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> TInterval:
    """Mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n) over the finite ``values``.

    ``s`` is the sample standard deviation (ddof=1).  With fewer than two finite values the
    interval is ``None`` (one seed says nothing about seed-to-seed spread).
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return TInterval(None, None, None, 0)
    scale = float(np.abs(x).max())
    mean = _snap(float(x.mean()), scale)
    if n == 1:
        return TInterval(mean, None, None, 1)
    sd = _snap(float(x.std(ddof=1)), scale)
    half = _t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return TInterval(mean, mean - half, mean + half, n)


def two_way_t_interval(values: Sequence[Sequence[float]] | np.ndarray, confidence: float = 0.95) -> TInterval:
    """Mean of an ``[R, P]`` matrix whose rows and columns are both random draws, with a t interval.

    Rows are independent replicates (training runs), columns the evaluation prompts every row
    shares.  Under the two-way random-effects model y_ij = m + a_i + b_j + e_ij the grand mean
    has variance var(a)/R + var(b)/P + var(e)/(RP).  It is estimated by

        V = s^2(row means) / R + s^2(column means) / P,

    which is never negative and exceeds an unbiased estimate by var(e)/(RP) (conservative).
    The degrees of freedom are min(R - 1, P - 1), the conservative end of Satterthwaite's range:
    his approximation leans on the better-estimated term, so with two replicates and many prompts
    it would give ~20 df to a variance whose run part rests on one, and the interval could come
    out narrower than the t interval over the runs alone.  With identical columns this is that
    t interval over the row means (R - 1 df); an interval over the rows alone treats the columns
    (the prompts the evaluation drew) as fixed.

    Columns with a non-finite entry are dropped.  Fewer than two rows give no interval (one run
    says nothing about run-to-run spread); one column gives the t interval over the rows.
    """
    _check_confidence(confidence)
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"two_way_t_interval needs an [R, P] matrix, got shape {y.shape}")
    y = y[:, np.isfinite(y).all(axis=0)]
    rows, cols = y.shape
    if rows == 0 or cols == 0:
        return TInterval(None, None, None, rows)
    scale = float(np.abs(y).max())
    mean = _snap(float(y.mean()), scale)
    if rows < 2:
        return TInterval(mean, None, None, rows)
    if cols < 2:
        ci = t_interval(y[:, 0], confidence)
        return TInterval(mean, ci.ci_low, ci.ci_high, rows)
    a = float(y.mean(axis=1).var(ddof=1)) / rows
    b = float(y.mean(axis=0).var(ddof=1)) / cols
    v = a + b
    if v <= REL_EPS * scale**2:
        return TInterval(mean, mean, mean, rows)
    df = min(rows, cols) - 1
    half = _t_quantile(confidence, df) * math.sqrt(v)
    return TInterval(mean, mean - half, mean + half, rows)


def cells(factors: Sequence[str] = FACTORS) -> list[Cell]:
    """Every cell of the full factorial, all-off first."""
    return [tuple(bits) for bits in itertools.product((False, True), repeat=len(factors))]


def all_terms(factors: Sequence[str] = FACTORS, max_order: int = 2) -> list[tuple[str, ...]]:
    """Main effects first, then two-way interactions, ... up to ``max_order``."""
    return [t for k in range(1, max_order + 1) for t in itertools.combinations(factors, k)]


def term_name(term: Sequence[str]) -> str:
    return " × ".join(term)


def missing_cells(values: Mapping[Cell, float], factors: Sequence[str] = FACTORS) -> list[Cell]:
    """Cells of the full factorial with no finite value."""
    return [
        c for c in cells(factors)
        if c not in values or values[c] is None or not math.isfinite(values[c])
    ]


def effect(values: Mapping[Cell, float], term: Sequence[str], factors: Sequence[str] = FACTORS) -> float:
    """Contrast-coded effect of ``term`` within one replicate (see the module docstring).

    ``values`` maps every cell to its value; a missing cell is an error naming it.
    """
    unknown = [f for f in term if f not in factors]
    if unknown or not term:
        raise ValueError(f"term {tuple(term)!r} must name factors from {tuple(factors)}")
    missing = missing_cells(values, factors)
    if missing:
        raise ValueError(f"incomplete factorial: no value for cells {missing} (factors {tuple(factors)})")
    idx = [factors.index(f) for f in term]
    all_cells = cells(factors)
    terms = []
    for c in all_cells:
        code = 1.0
        for i in idx:
            code *= 1.0 if c[i] else -1.0
        terms.append(code * float(values[c]))
    scale = max(abs(float(values[c])) for c in all_cells)
    return _snap(2.0 * math.fsum(terms) / len(all_cells), scale)


def blocked_error(by_seed: Mapping[int, Mapping[Cell, float]], factors: Sequence[str] = FACTORS) -> tuple[float, int]:
    """Residual mean square of the blocked factorial (seed x cell interaction) and its degrees of
    freedom, ``(nan, 0)`` with fewer than two seeds.  Every seed must have every cell."""
    seeds = sorted(by_seed)
    all_cells = cells(factors)
    y = np.array([[float(by_seed[s][c]) for c in all_cells] for s in seeds], dtype=np.float64)
    r, m = y.shape
    if r < 2:
        return math.nan, 0
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    df = (r - 1) * (m - 1)
    mse = float((resid**2).sum()) / df
    scale = float(np.abs(y).max()) ** 2
    return (0.0 if mse <= REL_EPS * scale else mse), df


def effect_over_seeds(
    by_seed: Mapping[int, Mapping[Cell, float]],
    term: Sequence[str],
    factors: Sequence[str] = FACTORS,
    confidence: float = 0.95,
) -> EffectEstimate:
    """Effect per seed and its blocked-design t interval (see the module docstring); seeds with
    an incomplete factorial are left out.  One complete seed gives the effect without an interval."""
    _check_confidence(confidence)
    complete = {seed: values for seed, values in sorted(by_seed.items()) if not missing_cells(values, factors)}
    per_seed = {seed: effect(values, term, factors) for seed, values in complete.items()}
    r = len(per_seed)
    if r == 0:
        return EffectEstimate(tuple(term), TInterval(None, None, None, 0), per_seed)
    scale = max(abs(float(v)) for values in complete.values() for v in values.values())
    mean = _snap(math.fsum(per_seed.values()) / r, scale)
    if r == 1:
        return EffectEstimate(tuple(term), TInterval(mean, None, None, 1), per_seed)
    mse, df = blocked_error(complete, factors)
    se = 2.0 * math.sqrt(mse / (r * len(cells(factors))))
    half = _t_quantile(confidence, df) * se
    return EffectEstimate(tuple(term), TInterval(mean, mean - half, mean + half, r), per_seed, df)


def factorial_effects(
    by_seed: Mapping[int, Mapping[Cell, float]],
    factors: Sequence[str] = FACTORS,
    max_order: int = 2,
    confidence: float = 0.95,
) -> list[EffectEstimate]:
    """Main effects and interactions up to ``max_order`` (see :func:`effect_over_seeds`)."""
    return [effect_over_seeds(by_seed, t, factors, confidence) for t in all_terms(factors, max_order)]
