"""Rewards: a registered per-sample metric used as an RL reward.

A reward *is* the metric (it calls ``metric.score_with_reasons``), plus a direction transform and
the metric's modality tag, which the trainer uses to route advantages (``sync`` goes to both the
video and the audio branch).  A clip the metric cannot score is never a silent 0: it comes back
as NaN with ``valid=False`` and the reason, and the trainer excludes it.

>>> reward = MetricReward("av_offset")          # lower is better -> 1/(1+x)
>>> out = reward(batch)                         # RewardResult
>>> out.values, out.valid, reward.modality      # Tensor[B], BoolTensor[B], "sync"

Transforms (``transform=``):

* ``identity``: ``r = x``, the default for higher-is-better metrics.
* ``reciprocal``: ``r = 1 / (1 + max(x, 0))``, the default for lower-is-better metrics, as
  OmniNFT maps Synchformer DeSync ``d`` to ``1/(1+d)``; in (0, 1], 1 at a perfect score.
  Departure: OmniNFT substitutes ``d = 2.0`` when Synchformer fails; we flag the clip instead.
* ``negate``: ``r = -x``, for lower-is-better metrics without a natural zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from omninft_bench.media import AVClip
from omninft_bench.metrics import EvalContext, PerSampleMetric, build

__all__ = ["TRANSFORMS", "MetricReward", "RewardResult", "make_rewards"]


def _reciprocal(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + x.clamp_min(0.0))


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "reciprocal": _reciprocal,
    "negate": lambda x: -x,
}


@dataclass(frozen=True)
class RewardResult:
    """Rewards of one batch.

    ``values``: float32 ``[B]``, NaN where ``valid`` is False.  ``valid``: bool ``[B]``.
    ``reasons``: why each invalid clip could not be scored (``None`` for valid ones).
    """

    name: str
    modality: str
    values: torch.Tensor
    valid: torch.Tensor
    reasons: tuple[str | None, ...]

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_invalid(self) -> int:
        return int((~self.valid).sum())


class MetricReward:
    """Turn a per-sample metric (a name or an instance) into a reward callable.

    Args:
        metric: registered metric name or a :class:`PerSampleMetric`.
        ctx: the :class:`EvalContext` for a metric given by name (encoders, reference).
        transform: a key of :data:`TRANSFORMS`; default ``identity`` when higher is better,
            ``reciprocal`` when lower is better.  ``identity`` on a lower-is-better metric is an
            error (it would reward worse clips).
    """

    def __init__(
        self,
        metric: str | PerSampleMetric,
        ctx: EvalContext | None = None,
        *,
        transform: str | None = None,
    ):
        self.metric = build(metric, ctx) if isinstance(metric, str) else metric
        spec = self.metric.spec
        if spec.kind != "per_sample" or not isinstance(self.metric, PerSampleMetric):
            raise ValueError(
                f"metric {spec.name!r} is a {spec.kind} metric; a reward needs a per-sample metric"
            )
        transform = transform or ("identity" if spec.higher_is_better else "reciprocal")
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown reward transform {transform!r}; choose from {', '.join(TRANSFORMS)}")
        if transform == "identity" and not spec.higher_is_better:
            raise ValueError(
                f"metric {spec.name!r} is lower-is-better: transform 'identity' would reward worse clips "
                "(use 'reciprocal' or 'negate')"
            )
        self.transform = transform
        self._fn = TRANSFORMS[transform]

    @property
    def name(self) -> str:
        return self.metric.spec.name

    @property
    def modality(self) -> str:
        return self.metric.spec.modality

    def __repr__(self) -> str:
        return f"MetricReward({self.name!r}, modality={self.modality!r}, transform={self.transform!r})"

    def __call__(self, batch: Sequence[AVClip]) -> RewardResult:
        scores, reasons = self.metric.score_with_reasons(batch)
        valid = torch.isfinite(scores)
        values = torch.where(valid, self._fn(scores.float()), torch.full_like(scores, float("nan")))
        return RewardResult(self.name, self.modality, values.float(), valid, tuple(reasons))


def make_rewards(
    names: Iterable[str], ctx: EvalContext | None = None, *, transforms: dict[str, str] | None = None
) -> list[MetricReward]:
    """One :class:`MetricReward` per name, sharing one context (encoders load once)."""
    ctx = ctx if ctx is not None else EvalContext()
    transforms = transforms or {}
    return [MetricReward(name, ctx, transform=transforms.get(name)) for name in names]
