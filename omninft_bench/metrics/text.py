"""Text-conditioned metrics: CLIP score (text-video) and CLAP score (text-audio)."""

from __future__ import annotations

from omninft_bench.media import AVClip
from omninft_bench.metrics import functional as F
from omninft_bench.metrics.base import PerSampleMetric
from omninft_bench.metrics.cache import Features
from omninft_bench.metrics.registry import register

__all__ = ["ClapScore", "ClipScore"]


@register(
    "clip_score",
    modality="text_video",
    higher_is_better=True,
    kind="per_sample",
    needs=["video", "prompt"],
    backend="open_clip",
)
class ClipScore(PerSampleMetric):
    """JavisBench CLIP score: mean over 48 uniformly sampled frames of cos(E_img(frame), E_txt(prompt)).

    Features: ``[min(T, 48), d]`` frame embeddings (``open_clip`` backend, ViT-B/32 in
    JavisBench).  No x100 scaling and no clamp at 0 (as JavisBench; unlike torchmetrics).
    """

    requires = ("frames", "text")
    num_frames = 48

    def extract(self, clip: AVClip) -> Features:
        return self.embed_frames(clip, self.num_frames)

    def value(self, features: Features, text: str) -> float:
        return F.clip_score(features, self.ctx.text_embedding(self.backend_name, text))


@register(
    "clap_score",
    modality="text_audio",
    higher_is_better=True,
    kind="per_sample",
    needs=["audio", "prompt"],
    backend="clap",
)
class ClapScore(PerSampleMetric):
    """JavisBench CLAP score: cos(E_audio(audio), E_text(audio prompt)) with LAION CLAP at 48 kHz.

    Features: one ``[d]`` audio embedding (``clap`` backend).  The text is the row's
    ``audio_text`` when the prompt file has one (JavisBench), else the prompt.
    """

    requires = ("audio", "text")

    def text_for(self, prompt: str, meta: dict) -> str:
        return str(meta.get("audio_text") or "") or prompt

    def extract(self, clip: AVClip) -> Features:
        return self.embed_audio(clip)

    def value(self, features: Features, text: str) -> float:
        return F.av_score(features, self.ctx.text_embedding(self.backend_name, text))
