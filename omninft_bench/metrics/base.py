"""Metric base classes.

A metric has two stages.  ``extract(clip)`` is the expensive, prompt-independent part (decode-
level signal processing or an encoder pass) and returns per-clip *features*, which
:class:`EvalContext` caches on disk by file content.  Scoring from features is cheap:

* :class:`PerSampleMetric`: ``value(features, text) -> float`` per clip; ``score(batch)``
  returns ``Tensor[B]`` and never reduces.  NaN marks a clip the metric cannot score (no audio,
  no prompt, too short); :meth:`PerSampleMetric.score_with_reasons` says why.
* :class:`DistributionMetric`: ``compute_features(generated, reference) -> float`` on the sets;
  ``compute(batch, reference)`` does both stages.

Because every value is computed clip by clip from that clip's features, a clip scores the same
alone or in any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from omninft_bench.media import AVClip
from omninft_bench.metrics.cache import Features

if TYPE_CHECKING:
    from omninft_bench.encoders import EncoderBackend
    from omninft_bench.metrics.context import EvalContext
    from omninft_bench.metrics.registry import MetricSpec

__all__ = ["DistributionMetric", "Metric", "NotEnoughSamplesError", "PerSampleMetric", "Unscorable"]


class Unscorable(Exception):
    """Raised by ``extract`` for a clip the metric cannot score; the message is the reason."""


class NotEnoughSamplesError(ValueError):
    """A distribution metric given fewer scorable clips than it needs."""


class Metric:
    """Common part of per-sample and distribution metrics.

    Class attributes: ``spec`` (set by ``@register``); ``version`` (bump it when ``extract``
    changes, so cached features are recomputed); ``requires`` (backend capabilities used, e.g.
    ``("frames", "audio")``); ``min_frames`` (shorter clips are unscorable).
    """

    spec: ClassVar[MetricSpec]
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ()
    min_frames: ClassVar[int] = 1

    def __init__(self, ctx: EvalContext | None = None):
        from omninft_bench.metrics.context import EvalContext

        self.ctx = ctx if ctx is not None else EvalContext()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.spec.name!r})"

    @property
    def name(self) -> str:
        return self.spec.name

    # ------------------------------------------------------------------------- backend

    @property
    def backend_name(self) -> str | None:
        return self.ctx.backend_name(self.spec)

    @property
    def backend(self) -> EncoderBackend:
        """The encoder backend, loaded on first access (and shared through the context)."""
        name = self.backend_name
        if name is None:
            raise RuntimeError(f"metric {self.spec.name!r} uses no encoder backend")
        return self.ctx.backend(name)

    def embed_frames(self, clip: AVClip, max_frames: int | None = None) -> torch.Tensor:
        """``[T', d]`` frame embeddings of ``clip`` (``max_frames`` uniformly sampled), memoized."""
        from omninft_bench.encoders.base import uniform_indices

        n = clip.num_frames if max_frames is None else min(max_frames, clip.num_frames)
        key = ("frames", self.backend_name, n)

        def compute() -> torch.Tensor:
            idx = uniform_indices(clip.num_frames, n)
            return self.backend.embed_frames(clip.video[idx])

        return self.ctx.memo(clip, key, compute)

    def embed_audio(self, clip: AVClip) -> torch.Tensor:
        """``[d]`` embedding of the whole audio track, memoized."""
        return self.ctx.memo(
            clip, ("audio", self.backend_name), lambda: self.backend.embed_audio(clip.audio, clip.sample_rate)
        )

    # ------------------------------------------------------------------------- features

    def extractor(self) -> str:
        """Name of the feature extractor; metrics that share features return the same name."""
        return self.spec.name

    def feature_key(self) -> str:
        """Cache key: extractor, its version and the backend's weights fingerprint."""
        key = f"{self.extractor()}:v{self.version}"
        if self.backend_name is not None:
            key += f":{self.ctx.fingerprint(self.backend_name)}"
        return key

    def missing(self, clip: AVClip) -> str | None:
        """Why ``clip`` lacks what the spec declares it needs (``None`` if nothing is missing)."""
        needs = self.spec.needs
        if "audio" in needs:
            if clip.audio is None:
                return "no audio track"
            if clip.audio.shape[-1] == 0:
                return "empty audio track"
        if "video" in needs and clip.num_frames < self.min_frames:
            return f"needs at least {self.min_frames} frames, clip has {clip.num_frames}"
        return None

    def extract(self, clip: AVClip) -> Features:
        """Per-clip features (the expensive, cacheable stage).  Raise :class:`Unscorable`."""
        raise NotImplementedError

    def extract_or_reason(self, clip: AVClip) -> Features | str:
        reason = self.missing(clip)
        if reason is not None:
            return reason
        try:
            return self.extract(clip)
        except Unscorable as exc:
            return str(exc)

    def features(self, clip: AVClip) -> Features | str:
        """Features of ``clip`` through the context's cache (``str`` = unscorable, with reason)."""
        return self.ctx.features(self, clip)


class PerSampleMetric(Metric):
    """One value per clip.  Subclasses implement ``extract`` and ``value``."""

    def text_for(self, prompt: str, meta: dict) -> str:
        """The text this metric compares against (the prompt; CLAP prefers ``audio_text``)."""
        return prompt

    def value(self, features: Features, text: str) -> float:
        """The clip's score from its features (cheap)."""
        raise NotImplementedError

    def value_or_reason(self, entry: Features | str, text: str) -> tuple[float, str | None]:
        """``(value, None)`` or ``(nan, reason)``, from a features entry."""
        if isinstance(entry, str):
            return math.nan, entry
        value = float(self.value(entry, text))
        if not math.isfinite(value):
            return math.nan, "score is not finite"
        return value, None

    def score_with_reasons(self, batch: Sequence[AVClip]) -> tuple[torch.Tensor, list[str | None]]:
        """``(values [B] float32, reasons)``; a NaN value comes with its reason."""
        values, reasons = [], []
        for clip in batch:
            text = self.text_for(clip.prompt, clip.meta)
            if "prompt" in self.spec.needs and not text.strip():
                value, reason = math.nan, "no prompt"
            else:
                value, reason = self.value_or_reason(self.features(clip), text)
            values.append(value)
            reasons.append(reason)
        return torch.tensor(values, dtype=torch.float32), reasons

    def score(self, batch: Sequence[AVClip]) -> torch.Tensor:
        """Per-clip scores, float32 ``[B]``; NaN where the clip cannot be scored.  Never reduces."""
        return self.score_with_reasons(batch)[0]


class DistributionMetric(Metric):
    """A value for a whole set against a reference set.  Subclasses implement ``extract`` and
    ``compute_features``."""

    min_samples: ClassVar[int] = 2

    def compute_features(self, generated: Sequence[Features], reference: Sequence[Features]) -> float:
        raise NotImplementedError

    def _check_sizes(self, n_gen: int, n_ref: int) -> None:
        if min(n_gen, n_ref) < self.min_samples:
            raise NotEnoughSamplesError(
                f"{self.spec.name} needs at least {self.min_samples} scorable clips per set, "
                f"got {n_gen} generated and {n_ref} reference"
            )

    def compute_from_entries(
        self, generated: Sequence[Features | str], reference: Sequence[Features | str]
    ) -> float:
        gen = [e for e in generated if not isinstance(e, str)]
        ref = [e for e in reference if not isinstance(e, str)]
        self._check_sizes(len(gen), len(ref))
        return float(self.compute_features(gen, ref))

    def compute(self, batch: Sequence[AVClip], reference: Sequence[AVClip] | None = None) -> float:
        """The metric of ``batch`` against ``reference`` (default: the context's reference set).

        Unscorable clips (e.g. without audio for FAD) are left out of both sets.
        """
        if reference is None:
            ref_entries: Sequence[Features | str] = self.ctx.reference_features(self)
        else:
            ref_entries = [self.features(c) for c in reference]
        return self.compute_from_entries([self.features(c) for c in batch], ref_entries)
