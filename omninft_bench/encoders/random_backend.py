"""``random``: a weight-free, seeded random-projection encoder for all four modalities.

Not a perceptual model.  It maps frames (8x8 average-pooled pixels), audio (log band energies
of a 16 kHz spectrogram) and text (hashed character trigrams) through fixed Gaussian
projections into one ``dim``-wide space.  Uses: a chance-level baseline for embedding metrics,
and a test double that makes every metric runnable with no weights and no network.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from omninft_bench.encoders.base import EncoderBackend, as_audio, as_video
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import register_backend

__all__ = ["RandomBackend"]

_POOL = 8
_BANDS = 32
_BUCKETS = 256
_AUDIO_RATE = 16000
_N_FFT = 512


@register_backend
class RandomBackend(EncoderBackend):
    name = "random"
    capabilities = frozenset({"frames", "video", "audio", "text"})

    def __init__(self, config: EncodersConfig):
        super().__init__(config)
        cfg = config.random
        if cfg.dim < 1:
            raise ValueError(f"encoders.random.dim must be >= 1, got {cfg.dim}")
        self.dim, self.seed = cfg.dim, cfg.seed
        gen = torch.Generator().manual_seed(cfg.seed)
        self._pv = torch.randn(3 * _POOL * _POOL, cfg.dim, generator=gen) / (3 * _POOL * _POOL) ** 0.5
        self._pa = torch.randn(_BANDS, cfg.dim, generator=gen) / _BANDS**0.5
        self._pt = torch.randn(_BUCKETS, cfg.dim, generator=gen) / _BUCKETS**0.5

    @classmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        return f"random:{config.random.dim}:{config.random.seed}"

    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(as_video(video), _POOL).flatten(1) - 0.5
        return x @ self._pv

    def embed_video(self, video: np.ndarray | torch.Tensor, fps: float) -> torch.Tensor:
        return self.embed_frames(video).mean(0)

    def embed_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        mono = as_audio(audio).mean(0)
        if sample_rate != _AUDIO_RATE:
            mono = torchaudio.functional.resample(mono, sample_rate, _AUDIO_RATE)
        if mono.numel() < _N_FFT:
            mono = F.pad(mono, (0, _N_FFT - mono.numel()))
        spec = torch.stft(mono, _N_FFT, hop_length=_N_FFT // 2, window=torch.hann_window(_N_FFT), return_complex=True)
        power = spec.abs().pow(2).mean(1)  # [freq]
        bands = F.adaptive_avg_pool1d(power[None, None], _BANDS)[0, 0]
        feats = torch.log10(bands + 1e-8)
        return (feats - feats.mean()) @ self._pa

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        counts = torch.zeros(len(texts), _BUCKETS)
        for i, text in enumerate(texts):
            padded = f"  {text.lower()} "
            for j in range(len(padded) - 2):
                counts[i, zlib.crc32(padded[j : j + 3].encode()) % _BUCKETS] += 1.0
        counts = counts / counts.sum(1, keepdim=True).clamp_min(1.0)
        return (counts - 1.0 / _BUCKETS) @ self._pt
