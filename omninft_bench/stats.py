"""Aggregation of metric values: means with seeded percentile-bootstrap confidence intervals.

Metrics never reduce (a per-sample metric returns one value per clip); the reduction and its
uncertainty live here so that ``evaluate``, the trainer and the report agree on one definition.
All functions are pure: the same inputs and seed give the same interval on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Estimate", "bootstrap_mean", "bootstrap_statistic", "two_way_bootstrap_mean"]


@dataclass(frozen=True)
class Estimate:
    """A point value with a confidence interval; ``None`` fields mean "not computable"."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _interval(stats: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Mean of the finite entries of ``values`` with a percentile-bootstrap CI.

    NaN (a clip the metric could not score) is dropped, and ``n`` counts what is left.  With no
    finite value everything is ``None``; with one value the interval collapses onto it.
    """
    _check(n_resamples, confidence)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Estimate(None, None, None, 0)
    rng = np.random.default_rng(seed)
    # Resample in chunks so that a large evaluation does not allocate n_resamples x n at once.
    means = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    low, high = _interval(means, confidence)
    return Estimate(float(x.mean()), low, high, n)


def bootstrap_statistic(
    n: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Bootstrap a set-level statistic (FVD, FAD, ...) over ``n`` items.

    ``statistic(indices)`` computes the value on the items at ``indices`` (an int array; the full
    set is ``np.arange(n)``).  Resamples are drawn with replacement with a seeded generator.  A
    resample whose statistic is not finite is left out of the interval.
    """
    _check(n_resamples, confidence)
    if n <= 0:
        return Estimate(None, None, None, 0)
    value = _none_if_nan(statistic(np.arange(n)))
    if value is None:
        return Estimate(None, None, None, n)
    rng = np.random.default_rng(seed)
    stats = np.array(
        [statistic(rng.integers(0, n, size=n)) for _ in range(n_resamples)], dtype=np.float64
    )
    low, high = _interval(stats, confidence)
    return Estimate(value, low, high, n)


def two_way_bootstrap_mean(
    values: Sequence[Sequence[float]] | np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Mean of an ``[R, P]`` matrix with a CI that resamples its rows and its columns.

    Rows are independent replicates (training runs), columns the evaluation prompts they all
    share.  Each resample draws R rows and P columns with replacement, independently (the
    two-way or "pigeonhole" bootstrap, Owen 2007), so the interval covers both how the runs
    vary and which prompts the evaluation happened to draw; a row bootstrap alone would treat
    the prompts as fixed.  For a complete matrix, writing y_ij = m + a_i + b_j + g_ij (effects
    summing to zero), the resampled means have variance mean(a^2)/R + mean(b^2)/P + mean(g^2)/(RP):
    the interaction enters on top of what the row and column terms already carry, so the
    interval is slightly conservative.

    NaN entries (a clip a metric could not score) are left out of each resample's mean; ``n``
    is R.  With one row or one column that side is not resampled (it has no spread to draw).
    """
    _check(n_resamples, confidence)
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"two_way_bootstrap_mean needs an [R, P] matrix, got shape {y.shape}")
    rows, cols = y.shape
    if rows == 0 or cols == 0 or not np.isfinite(y).any():
        return Estimate(None, None, None, rows)
    value = float(np.nanmean(y))
    rng = np.random.default_rng(seed)
    finite = np.isfinite(y)
    filled = np.where(finite, y, 0.0)
    means = np.empty(n_resamples, dtype=np.float64)
    for b in range(n_resamples):
        r = rng.integers(0, rows, size=rows) if rows > 1 else np.zeros(1, dtype=np.int64)
        c = rng.integers(0, cols, size=cols) if cols > 1 else np.zeros(1, dtype=np.int64)
        # counts-weighted sums: the mean over the resampled grid without building it
        wr = np.bincount(r, minlength=rows).astype(np.float64)
        wc = np.bincount(c, minlength=cols).astype(np.float64)
        total = wr @ filled @ wc
        count = wr @ finite.astype(np.float64) @ wc
        means[b] = total / count if count > 0 else np.nan
    low, high = _interval(means, confidence)
    return Estimate(value, low, high, rows)

