"""Helpers for tests and benchmarks of metrics: small deterministic audio-video clips.

``toy_clip(seed)`` draws a square that bounces off the frame edges (a visible event per bounce)
and a decaying tone burst at each bounce, optionally delayed by ``audio_offset_s``.  It needs no
other package module, so metric tests do not depend on the SynthAV generator's API.
"""

from __future__ import annotations

import numpy as np

from omninft_bench.media import AVClip

__all__ = ["toy_clip", "toy_clips"]

_WORDS = ("red", "blue", "green", "square", "ball", "drum", "beep", "bounces", "slides", "loud", "soft")


def toy_clip(
    seed: int,
    *,
    frames: int = 16,
    size: int = 32,
    fps: float = 8.0,
    sample_rate: int = 16000,
    audio: bool = True,
    audio_offset_s: float = 0.0,
    prompt: str | None = None,
) -> AVClip:
    """A ``frames x size x size`` clip with bounce events and matching tone bursts."""
    rng = np.random.default_rng(seed)
    color = rng.integers(64, 256, size=3).astype(np.uint8)
    background = rng.integers(0, 48, size=3).astype(np.uint8)
    side = max(3, size // 5)
    pos = rng.uniform(0, size - side, size=2)
    vel = rng.uniform(1.5, 3.5, size=2) * rng.choice([-1.0, 1.0], size=2)
    video = np.empty((frames, size, size, 3), np.uint8)
    bounces: list[float] = []
    for t in range(frames):
        video[t] = background
        y, x = (int(round(p)) for p in pos)
        video[t, y : y + side, x : x + side] = color
        pos = pos + vel
        for k in range(2):
            if pos[k] < 0 or pos[k] > size - side:
                vel[k] = -vel[k]
                pos[k] = np.clip(pos[k], 0, size - side)
                bounces.append((t + 1) / fps)
    clip_audio = None
    if audio:
        n = int(round(frames / fps * sample_rate))
        clip_audio = (0.01 * rng.standard_normal(n)).astype(np.float32)
        burst = int(0.08 * sample_rate)
        tone = 0.6 * np.sin(2 * np.pi * rng.uniform(300, 900) * np.arange(burst) / sample_rate)
        tone *= np.exp(-np.arange(burst) / (burst / 5))
        for when in bounces:
            start = int(round((when + audio_offset_s) * sample_rate))
            stop = min(n, start + burst)
            if 0 <= start < n:
                clip_audio[start:stop] += tone[: stop - start].astype(np.float32)
        clip_audio = np.clip(clip_audio, -1.0, 1.0)[None]
    if prompt is None:
        prompt = " ".join(rng.choice(_WORDS, size=4))
    return AVClip(
        video=video,
        fps=fps,
        audio=clip_audio,
        sample_rate=sample_rate if audio else None,
        prompt=prompt,
        meta={"seed": seed},
    )


def toy_clips(n: int, *, start: int = 0, **kwargs: object) -> list[AVClip]:
    """``n`` toy clips with seeds ``start .. start + n - 1``."""
    return [toy_clip(start + i, **kwargs) for i in range(n)]
