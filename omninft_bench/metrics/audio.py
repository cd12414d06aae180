"""Audio metrics: FAD (on CLAP embeddings) and per-sample audio realism."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omninft_bench.media import AVClip
from omninft_bench.metrics import functional as F
from omninft_bench.metrics.base import DistributionMetric
from omninft_bench.metrics.cache import Features
from omninft_bench.metrics.realism import RealismMetric
from omninft_bench.metrics.registry import DEFAULT_BACKEND, register

__all__ = ["AudioRealism", "FAD"]


@register(
    "fad", modality="audio", higher_is_better=False, kind="distribution", needs=["audio", "reference"], backend="clap"
)
class FAD(DistributionMetric):
    """Frechet audio distance between L2-normalized clip embeddings (FAD-CLAP by default).

    Features: one ``[d]`` CLAP audio embedding per clip (``clap`` backend, 48 kHz).  Formula:
    FD of the fitted Gaussians.  Departure: JavisBench computes FAD on AudioCLIP embeddings and
    reports FD x 10000; we report the plain FD on CLAP embeddings (fadtk's convention), which is
    on a different scale.  Clips without audio are left out of the set.
    """

    requires = ("audio",)

    def extract(self, clip: AVClip) -> Features:
        return torch.nn.functional.normalize(self.embed_audio(clip), dim=-1)

    def compute_features(self, generated: Sequence[Features], reference: Sequence[Features]) -> float:
        return F.frechet_distance(torch.stack(list(generated)), torch.stack(list(reference)))


@register(
    "audio_realism",
    modality="audio",
    higher_is_better=False,
    kind="per_sample",
    needs=["audio", "reference"],
    backend=DEFAULT_BACKEND,
)
class AudioRealism(RealismMetric):
    """Per-sample Frechet distance of a clip's audio-window embeddings to the reference Gaussian.

    Features: embeddings ``[W, d]`` of 1.0 s windows every 0.5 s (the default backend; a clip
    shorter than a window is one zero-padded window); reference statistics over all reference
    windows.  Formula: fadtk's per-file FD with shrinkage (``gaussian_individual_score``).
    """

    requires = ("audio",)
    window_s = 1.0
    stride_s = 0.5

    def extract(self, clip: AVClip) -> Features:
        duration = clip.audio.shape[-1] / clip.sample_rate
        starts = [0.0]
        while starts[-1] + self.stride_s + self.window_s <= duration + 1e-9:
            starts.append(starts[-1] + self.stride_s)
        windows = [(s, s + self.window_s) for s in starts]
        return self.backend.embed_audio_windows(clip.audio, clip.sample_rate, windows)
