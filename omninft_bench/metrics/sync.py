"""Audio-video synchrony and correspondence metrics (modality ``sync``)."""

from __future__ import annotations

import torch

from omninft_bench.media import AVClip
from omninft_bench.metrics import functional as F
from omninft_bench.metrics.base import PerSampleMetric, Unscorable
from omninft_bench.metrics.cache import Features
from omninft_bench.metrics.registry import DEFAULT_BACKEND, register

__all__ = ["AVAlign", "AVHScore", "AVOffsetMetric", "AVScore", "JavisScore"]


@register("av_align", modality="sync", higher_is_better=True, kind="per_sample", needs=["video", "audio"])
class AVAlign(PerSampleMetric):
    """JavisBench AV-Align: IoU of audio onset peaks and optical-flow peaks (+-1 frame), weight-free.

    Input: uint8 frames ``[T, H, W, 3]`` with fps, mono audio with its rate.  Gameable by
    producing few, aligned peaks (see ``functional.av_align``).
    """

    min_frames = 3

    def extract(self, clip: AVClip) -> Features:
        return torch.tensor(F.av_align(clip.video_uint8(), clip.fps, clip.audio_mono(), clip.sample_rate), dtype=torch.float64)

    def value(self, features: Features, text: str) -> float:
        return float(features)


@register("av_offset", modality="sync", higher_is_better=False, kind="per_sample", needs=["video", "audio"])
class AVOffsetMetric(PerSampleMetric):
    """|AV offset| in seconds, estimated weight-free by envelope cross-correlation (DeSync stand-in).

    Input: frames with fps, audio with its rate; search range +-1 s.  Features keep the signed
    offset (positive = audio lags) and its confidence; the score is the absolute offset, the
    analogue of JavisBench's DeSync (which needs Synchformer weights).

    Clips without an audio onset or without a visual event have no offset to measure: they are
    unscorable (NaN with a reason), not perfectly in sync.  Scoring them 0 s, as the functional
    core's (0.0, 0.0) would, made eventless clips the best possible reward, and RL runs learned
    to produce them (the sync reward went to 1 while text-audio alignment collapsed).
    """

    min_frames = 3
    max_offset_s = 1.0
    version = 2  # v1 scored eventless clips 0 s

    def extract(self, clip: AVClip) -> Features:
        est = F.av_offset(clip.video_uint8(), clip.fps, clip.audio, clip.sample_rate, max_offset_s=self.max_offset_s)
        if est.confidence <= 0.0:
            raise Unscorable("no audio onset or no visual event to align (offset undefined)")
        return torch.tensor([est.offset_s, est.confidence], dtype=torch.float64)

    def value(self, features: Features, text: str) -> float:
        return abs(float(features[0]))


class _JointEmbeddingMetric(PerSampleMetric):
    """Metrics on one joint audio-visual embedding space (ImageBind in JavisBench; here the
    configured default backend, ``encoders.default``)."""

    requires = ("frames", "audio")


@register(
    "av_score",
    modality="sync",
    higher_is_better=True,
    kind="per_sample",
    needs=["video", "audio"],
    backend=DEFAULT_BACKEND,
)
class AVScore(_JointEmbeddingMetric):
    """JavisBench ib_av: cos(E_v(video), E_a(audio)) of clip-level embeddings.

    The video embedding is the backend's clip embedding when it has one, else the mean of its
    frame embeddings (up to 48 uniformly sampled frames).
    """

    def extract(self, clip: AVClip) -> Features:
        if self.backend.supports("video"):
            video = self.ctx.memo(clip, ("video", self.backend_name), lambda: self.backend.embed_video(clip.video, clip.fps))
        else:
            video = self.embed_frames(clip, 48).mean(0)
        return {"video": video, "audio": self.embed_audio(clip)}

    def value(self, features: Features, text: str) -> float:
        return F.av_score(features["video"], features["audio"])


@register(
    "avh_score",
    modality="sync",
    higher_is_better=True,
    kind="per_sample",
    needs=["video", "audio"],
    backend=DEFAULT_BACKEND,
)
class AVHScore(_JointEmbeddingMetric):
    """JavisBench AVHScore: mean over all frames t of cos(E_v(frame_t), E_a(whole audio))."""

    def extract(self, clip: AVClip) -> Features:
        return {"frames": self.embed_frames(clip), "audio": self.embed_audio(clip)}

    def value(self, features: Features, text: str) -> float:
        return F.avh_score(features["frames"], features["audio"])


@register(
    "javis_score",
    modality="sync",
    higher_is_better=True,
    kind="per_sample",
    needs=["video", "audio"],
    backend=DEFAULT_BACKEND,
)
class JavisScore(_JointEmbeddingMetric):
    """JavisBench JavisScore: per 2 s window (stride 0.5 s), mean of the 40% lowest
    frame-to-window-audio cosines; averaged over windows (``functional.javis_score``)."""

    def extract(self, clip: AVClip) -> Features:
        windows = F.javis_windows(clip.num_frames, clip.fps)
        bounds = [(w.audio_start_s, w.audio_end_s) for w in windows]
        window_audio = self.backend.embed_audio_windows(clip.audio, clip.sample_rate, bounds)
        frames_idx = torch.tensor([[w.frame_start, w.frame_end] for w in windows], dtype=torch.int64)
        return {"frames": self.embed_frames(clip), "window_audio": window_audio, "windows": frames_idx}

    def value(self, features: Features, text: str) -> float:
        windows = [(int(s), int(e)) for s, e in features["windows"].tolist()]
        return F.javis_score(features["frames"], features["window_audio"], windows)
