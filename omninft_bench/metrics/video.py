"""Video-quality metrics: VBench's weight-free dimensions, consistency, realism, FVD/KVD."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from omninft_bench.media import AVClip
from omninft_bench.metrics import functional as F
from omninft_bench.metrics.base import DistributionMetric, PerSampleMetric
from omninft_bench.metrics.cache import Features
from omninft_bench.metrics.realism import RealismMetric
from omninft_bench.metrics.registry import DEFAULT_BACKEND, register

__all__ = [
    "BackgroundConsistency",
    "DynamicDegree",
    "FVD",
    "KVD",
    "MotionSmoothness",
    "SubjectConsistency",
    "TemporalFlickering",
    "VideoRealism",
]


def _scalar(x: float) -> torch.Tensor:
    return torch.tensor(float(x), dtype=torch.float64)


@register("temporal_flickering", modality="video", higher_is_better=True, kind="per_sample", needs=["video"])
class TemporalFlickering(PerSampleMetric):
    """VBench temporal flickering: (255 - mean |frame_t - frame_t+1|) / 255 on raw uint8 frames.

    Input: the clip's ``[T, H, W, 3]`` frames (T >= 2).  Departure: VBench applies it only to
    videos its RAFT-based filter calls static; we score every clip (pair with dynamic_degree).
    """

    min_frames = 2

    def extract(self, clip: AVClip) -> Features:
        return _scalar(F.temporal_flickering(clip.video_uint8()))

    def value(self, features: Features, text: str) -> float:
        return float(features)


@register("dynamic_degree", modality="video", higher_is_better=True, kind="per_sample", needs=["video"])
class DynamicDegree(PerSampleMetric):
    """VBench dynamic degree: 1 if enough frame pairs (at ~8 fps) have large optical flow, else 0.

    Input: ``[T, H, W, 3]`` frames and fps; the dataset mean is VBench's fraction of dynamic
    videos.  Departure: OpenCV Farneback flow instead of RAFT (see ``functional.dynamic_degree``).
    Features keep the continuous score (k-th largest pair magnitude / threshold) as well.
    """

    min_frames = 2

    def extract(self, clip: AVClip) -> Features:
        result = F.dynamic_degree(clip.video_uint8(), clip.fps)
        return torch.tensor([float(result.is_dynamic), result.score], dtype=torch.float64)

    def value(self, features: Features, text: str) -> float:
        return float(features[0])


@register("motion_smoothness", modality="video", higher_is_better=True, kind="per_sample", needs=["video"])
class MotionSmoothness(PerSampleMetric):
    """VBench motion smoothness: (255 - mean |odd frame - interpolated odd frame|) / 255.

    Input: ``[T, H, W, 3]`` frames (T >= 3).  Departure: a flow-based frame interpolator stands
    in for VBench's AMT network (see ``functional``).
    """

    min_frames = 3

    def extract(self, clip: AVClip) -> Features:
        return _scalar(F.motion_smoothness(clip.video_uint8()))

    def value(self, features: Features, text: str) -> float:
        return float(features)


@register(
    "subject_consistency", modality="video", higher_is_better=True, kind="per_sample", needs=["video"], backend="dino"
)
class SubjectConsistency(PerSampleMetric):
    """VBench subject consistency: mean over t>=1 of (max(0,cos(f_t-1,f_t)) + max(0,cos(f_0,f_t)))/2.

    Features ``f_t``: per-frame DINO CLS embeddings (``dino`` backend, ``[T, d]``).
    """

    requires = ("frames",)
    min_frames = 2

    def extract(self, clip: AVClip) -> Features:
        return self.embed_frames(clip)

    def value(self, features: Features, text: str) -> float:
        return F.subject_consistency(features)


@register(
    "background_consistency",
    modality="video",
    higher_is_better=True,
    kind="per_sample",
    needs=["video"],
    backend="open_clip",
)
class BackgroundConsistency(PerSampleMetric):
    """VBench background consistency: the subject-consistency formula on CLIP frame embeddings.

    Features: per-frame CLIP image embeddings (``open_clip`` backend, ``[T, d]``).
    """

    requires = ("frames",)
    min_frames = 2

    def extract(self, clip: AVClip) -> Features:
        return self.embed_frames(clip)

    def value(self, features: Features, text: str) -> float:
        return F.background_consistency(features)


@register(
    "video_realism",
    modality="video",
    higher_is_better=False,
    kind="per_sample",
    needs=["video", "reference"],
    backend=DEFAULT_BACKEND,
)
class VideoRealism(RealismMetric):
    """Per-sample Frechet distance of a clip's frame embeddings to the reference Gaussian.

    Features: up to 48 uniformly sampled frame embeddings ``[n, d]`` of the default backend;
    reference statistics: mean/covariance of all reference frames.  Formula: fadtk's
    "individual" FD with covariance shrinkage (``functional.gaussian_individual_score``).
    """

    requires = ("frames",)
    max_frames = 48

    def extract(self, clip: AVClip) -> Features:
        return self.embed_frames(clip, self.max_frames)


class _I3DDistribution(DistributionMetric):
    requires = ("video",)

    def extractor(self) -> str:
        return "i3d_logits"  # fvd and kvd share one I3D pass per clip

    def extract(self, clip: AVClip) -> Features:
        return self.backend.embed_video(clip.video, clip.fps)


@register(
    "fvd", modality="video", higher_is_better=False, kind="distribution", needs=["video", "reference"], backend="i3d"
)
class FVD(_I3DDistribution):
    """Frechet video distance between I3D logits (averaged over time) of generated and reference clips.

    Features: one ``[K]`` vector per clip from the ``i3d`` backend (JavisBench: 400-way logits,
    24 frames, 224 px).  Formula: FD of the fitted Gaussians (``functional.frechet_distance``).
    """

    def compute_features(self, generated: Sequence[Features], reference: Sequence[Features]) -> float:
        return F.frechet_distance(torch.stack(list(generated)), torch.stack(list(reference)))


@register(
    "kvd", modality="video", higher_is_better=False, kind="distribution", needs=["video", "reference"], backend="i3d"
)
class KVD(_I3DDistribution):
    """Kernel video distance: unbiased cubic-polynomial MMD^2 of I3D features on the full sets.

    Same features as ``fvd``; k(x, y) = (x.y/d + 1)^3 (JavisBench KVD: full sets, no subsets).
    """

    def compute_features(self, generated: Sequence[Features], reference: Sequence[Features]) -> float:
        return F.kernel_distance(torch.stack(list(generated)), torch.stack(list(reference))).mean
