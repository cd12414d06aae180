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

Uncertainty is taken over seeds, not over cells: the effect is computed within each seed (so that
anything shared by all cells of a seed cancels), then summarised as mean +- Student-t interval
over the seeds.  All functions are pure.

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
    "effect_over_seeds",
    "factorial_effects",
    "missing_cells",
    "t_interval",
    "term_name",
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


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> TInterval:
    """Mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n) over the finite ``values``.

    ``s`` is the sample standard deviation (ddof=1).  With fewer than two finite values the
    interval is ``None`` (one seed says nothing about seed-to-seed spread).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
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
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sd / math.sqrt(n)
    return TInterval(mean, mean - half, mean + half, n)


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


def effect_over_seeds(
    by_seed: Mapping[int, Mapping[Cell, float]],
    term: Sequence[str],
    factors: Sequence[str] = FACTORS,
    confidence: float = 0.95,
) -> EffectEstimate:
    """Effect per seed (seeds with an incomplete factorial are left out), then a t interval."""
    per_seed = {
        seed: effect(values, term, factors)
        for seed, values in sorted(by_seed.items())
        if not missing_cells(values, factors)
    }
    return EffectEstimate(tuple(term), t_interval(list(per_seed.values()), confidence), per_seed)


def factorial_effects(
    by_seed: Mapping[int, Mapping[Cell, float]],
    factors: Sequence[str] = FACTORS,
    max_order: int = 2,
    confidence: float = 0.95,
) -> list[EffectEstimate]:
    """Main effects and interactions up to ``max_order`` (see :func:`effect_over_seeds`)."""
    return [effect_over_seeds(by_seed, t, factors, confidence) for t in all_terms(factors, max_order)]
