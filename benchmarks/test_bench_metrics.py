"""Benchmarks of the functional metrics (pytest-benchmark; CPU).

Run:  HF_HUB_OFFLINE=1 .venv/bin/python -m pytest benchmarks/test_bench_metrics.py \
          --benchmark-columns=min,mean,rounds --benchmark-group-by=group

- frechet_distance: d = 2048, N = 10,000 per set, ours vs the pytorch-fid path (np.cov +
  scipy.linalg.sqrtm with an eps*I retry); same group, and the values must agree to 1e-6.
- av_align / av_offset: clips per second on a 2 s 32x32 8 fps clip and a 5 s 224x224 24 fps
  clip (extra_info["clips_per_s"]).
Timings are reported, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from omninft_bench.metrics.functional import av_align, av_offset, frechet_distance

FD_N, FD_D = 10_000, 2048


@pytest.fixture(scope="module")
def fd_features():
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((FD_D, FD_D)).astype(np.float32) / np.sqrt(FD_D)
    x = rng.standard_normal((FD_N, FD_D), dtype=np.float32) @ mix
    y = (rng.standard_normal((FD_N, FD_D), dtype=np.float32) * 1.1 + 0.05) @ mix
    return x, y


def scipy_sqrtm_fd(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
    """The reference path (pytorch-fid / clean-fid)."""
    mu1, mu2 = x.mean(0, dtype=np.float64), y.mean(0, dtype=np.float64)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(np.real(covmean)))


@pytest.mark.benchmark(group="frechet_distance d=2048 N=10000")
def test_bench_fd_ours(benchmark, fd_features):
    value = benchmark.pedantic(frechet_distance, args=fd_features, rounds=3, iterations=1)
    benchmark.extra_info["fd"] = value
    assert np.isfinite(value) and value > 0


@pytest.mark.benchmark(group="frechet_distance d=2048 N=10000")
def test_bench_fd_scipy_sqrtm(benchmark, fd_features):
    reference = benchmark.pedantic(scipy_sqrtm_fd, args=fd_features, rounds=2, iterations=1)
    benchmark.extra_info["fd"] = reference
    ours = frechet_distance(*fd_features)
    assert ours == pytest.approx(reference, rel=1e-6)


def synthetic_clip(seconds: float, size: int, fps: int, sr: int = 16000, seed: int = 0):
    """A textured disc that moves and changes direction at random times, with a click at each
    change, over noise: enough events for both sync metrics to do real work."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pos = np.array([size / 2, size / 2], dtype=np.float32)
    vel = rng.uniform(-1, 1, 2).astype(np.float32) * size / 20
    video = np.empty((n, size, size, 3), dtype=np.uint8)
    audio = 0.01 * rng.standard_normal(int(seconds * sr)).astype(np.float32)
    click = np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr)).astype(np.float32)
    for i in range(n):
        if rng.random() < 0.15:  # direction change -> knock
            vel = rng.uniform(-1, 1, 2).astype(np.float32) * size / 20
            start = int(i / fps * sr)
            audio[start : start + click.size] += click[: audio.size - start]
        pos = np.clip(pos + vel, size * 0.2, size * 0.8)
        disc = (np.hypot(xx - pos[0], yy - pos[1]) < size / 8)[..., None]
        frame = np.where(disc, 220.0, 40.0 + 0.3 * xx[..., None]) + rng.normal(
            0, 2, (size, size, 3)
        )
        video[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return video, fps, audio, sr


CLIPS = {"2s_32px_8fps": (2.0, 32, 8), "5s_224px_24fps": (5.0, 224, 24)}


@pytest.mark.benchmark(group="av_align")
@pytest.mark.parametrize("clip", list(CLIPS))
def test_bench_av_align(benchmark, clip):
    video, fps, audio, sr = synthetic_clip(*CLIPS[clip])
    benchmark.pedantic(av_align, args=(video, fps, audio, sr), rounds=3, iterations=1)
    benchmark.extra_info["clips_per_s"] = 1.0 / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="av_offset")
@pytest.mark.parametrize("clip", list(CLIPS))
def test_bench_av_offset(benchmark, clip):
    video, fps, audio, sr = synthetic_clip(*CLIPS[clip])
    benchmark.pedantic(av_offset, args=(video, fps, audio, sr), rounds=3, iterations=1)
    benchmark.extra_info["clips_per_s"] = 1.0 / benchmark.stats.stats.mean
