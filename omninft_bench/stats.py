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

__all__ = ["Estimate", "bootstrap_mean", "bootstrap_statistic"]


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
