"""Cosine scores and the JavisScore window layout vs hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from omninft_bench.metrics.functional import (
    JavisWindow,
    av_score,
    avh_score,
    clip_score,
    javis_score,
    javis_windows,
)


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_clip_and_avh_scores_are_mean_frame_cosines():
    rng = np.random.default_rng(0)
    frames, text = rng.standard_normal((48, 16)), rng.standard_normal(16)
    expected = np.mean([_cos(f, text) for f in frames])
    assert clip_score(frames, text) == pytest.approx(expected, rel=1e-12)
    assert avh_score(frames, text) == pytest.approx(expected, rel=1e-12)
    # No x100, no clamp: anti-aligned embeddings give a negative score.
    assert clip_score(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([-1.0, 0.0])) == -0.5


def test_av_score_is_cosine():
    assert av_score([1.0, 2.0, 2.0], [2.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert av_score(np.zeros(4), np.ones(4)) == 0.0  # zero embedding: 0, not NaN


@pytest.mark.parametrize(
    ("num_frames", "fps", "expected_starts", "size"),
    [
        (30, 24.0, [0], 30),  # 1.25 s < 2 s: one window over the whole clip
        (48, 24.0, [0], 48),  # exactly 2 s
        (60, 24.0, [0, 12], 48),  # 2.5 s: the second start is exactly n - size
        (65, 24.0, [0, 12, 17], 48),  # last start clamped to n - size
        (120, 24.0, [0, 12, 24, 36, 48, 60, 72], 48),
        (100, 25.0, [0, 13, 26, 39, 50], 50),  # 12.5-frame stride rounds half up to 13
        (16, 8.0, [0], 16),  # 2 s at 8 fps
        (24, 8.0, [0, 4, 8], 16),
    ],
)
def test_javis_windows_layout(num_frames, fps, expected_starts, size):
    windows = javis_windows(num_frames, fps)
    starts = [w.frame_start for w in windows]
    assert starts == expected_starts
    for w in windows:
        assert isinstance(w, JavisWindow)
        assert w.frame_end - w.frame_start == size
        assert w.frame_end <= num_frames
        assert w.audio_start_s == pytest.approx(w.frame_start / fps)
        assert w.audio_end_s == pytest.approx(w.frame_end / fps)
    assert windows[-1].frame_end == num_frames


def test_javis_score_matches_hand_computation():
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((65, 8))
    windows = javis_windows(65, 24.0)
    audio = rng.standard_normal((len(windows), 8))
    sigmas = []
    for (start, end, _, _), a in zip(windows, audio, strict=True):
        sims = sorted(_cos(frames[j], a) for j in range(start, end))
        k = int(0.4 * (end - start))  # 19 of 48 frames
        sigmas.append(np.mean(sims[:k]))
    assert javis_score(frames, audio, windows) == pytest.approx(np.mean(sigmas), rel=1e-12)


def test_javis_score_short_windows_keep_at_least_one_frame():
    frames = np.array([[1.0, 0.0], [0.0, 1.0]])
    windows = javis_windows(2, 24.0)  # one 2-frame window; int(0.4 * 2) = 0 -> k = 1
    assert javis_score(frames, np.array([[1.0, 0.0]]), windows) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="window audio embeddings"):
        javis_score(frames, np.ones((2, 2)), windows)
