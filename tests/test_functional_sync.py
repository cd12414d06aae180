"""AV-Align parity with a direct reference implementation, and planted-offset recovery of the
weight-free AV offset estimator on synthetic percussive clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from omninft_bench.metrics.functional import (
    AVOffset,
    av_align,
    av_align_from_peaks,
    av_offset,
    onset_detect,
    video_flow_peaks,
)

# --------------------------------------------------------------------------- clip synthesizer


def _bounce_schedule(duration: float, rng: np.random.Generator, g: float, floor: float):
    """Ballistic segments of a ball bouncing with gravity and random restitution (y grows
    downward). Returns (segments [(t0, y0, v0, t1)], impact times)."""
    segments, impacts = [], []
    t, y0, v0 = rng.uniform(0.0, 0.15), floor - rng.uniform(18.0, 36.0), 0.0
    while t < duration + 0.5:
        a, b, c = 0.5 * g, v0, y0 - floor
        dt = (-b + np.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
        segments.append((t, y0, v0, t + dt))
        t += dt
        impacts.append(t)
        y0, v0 = floor, -np.sqrt(2.0 * g * rng.uniform(8.0, 36.0))  # random bounce height
    return segments, [x for x in impacts if x < duration]


def _ball_height(segments, t: float, g: float) -> float:
    for t0, y0, v0, t1 in segments:
        if t0 <= t <= t1:
            d = t - t0
            return y0 + v0 * d + 0.5 * g * d * d
    return segments[0][1]


def make_av_clip(
    fps: float,
    sr: int,
    offset_s: float,
    *,
    duration: float = 3.5,
    channels: int = 1,
    seed: int = 0,
    size: int = 64,
):
    """A real-world-like percussive clip: a ball bouncing with gravity (knock at each floor
    impact) and a square that flashes (beep at each flash), over a textured background with
    sensor noise; the audio has background noise and a sustained hum. Every sound is placed at
    its visual event time + offset_s (positive = audio lags). Returns
    (video uint8 [T, size, size, 3], audio [N] or [C, N], impact times, flash times)."""
    rng = np.random.default_rng(seed)
    floor = size - 10.0
    gravity = 320.0  # px / s^2
    segments, impacts = _bounce_schedule(duration, rng, g=gravity, floor=floor)
    flashes: list[float] = []
    for _ in range(200):  # up to 3 flashes, 0.2 s away from every other event
        if len(flashes) == 3:
            break
        tf = rng.uniform(0.2, duration - 0.3)
        if all(abs(tf - x) > 0.2 for x in impacts + flashes):
            flashes.append(tf)

    n_frames = int(round(duration * fps))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    texture = (rng.random((size // 8, size // 8)) * 60 + 40).astype(np.float32)
    background = cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC)
    background = np.repeat(background[..., None], 3, axis=2)
    x0, vx = rng.uniform(14.0, 22.0), rng.uniform(4.0, 8.0)
    ball_rgb = np.array([230.0, 60.0, 40.0], dtype=np.float32)
    video = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    for i in range(n_frames):
        t = i / fps  # frame i shows the scene at time i / fps
        dist = np.hypot(xx - (x0 + vx * t), yy - _ball_height(segments, t, gravity))
        alpha = np.clip(5.0 - dist, 0.0, 1.0)[..., None]  # anti-aliased disc, radius ~4.5 px
        img = background * (1.0 - alpha) + alpha * ball_rgb
        img[int(floor) + 5 :] = 90.0
        if any(tf <= t < tf + 0.1 for tf in flashes):
            img[4:14, size - 18 : size - 6] = 250.0
        img += rng.normal(0.0, 2.0, img.shape)
        video[i] = np.clip(img, 0, 255).astype(np.uint8)

    n = int(round(duration * sr))
    ts = np.arange(n) / sr
    audio = np.empty((channels, n), dtype=np.float32)
    for c in range(channels):
        audio[c] = 0.01 * rng.standard_normal(n) + 0.05 * np.sin(2 * np.pi * 120.0 * ts + c)

    def add(t0: float, sound: np.ndarray) -> None:
        i0 = int(round(t0 * sr))
        lo, hi = max(i0, 0), min(i0 + sound.size, n)
        if lo < hi:
            for c in range(channels):
                audio[c, lo:hi] += (0.8 + 0.2 * c) * sound[lo - i0 : hi - i0]

    kt = np.arange(int(0.12 * sr)) / sr
    for ti in impacts:
        knock = 0.6 * rng.standard_normal(kt.size) + 0.8 * np.sin(2 * np.pi * 180.0 * kt)
        add(ti + offset_s, knock * np.exp(-kt / 0.025))
    bt = np.arange(int(0.08 * sr)) / sr
    for tf in flashes:
        ramp = np.minimum(1.0, np.minimum(bt / 0.003, (bt[-1] - bt) / 0.01))  # no end click
        add(tf + offset_s, 0.3 * np.sin(2 * np.pi * 1500.0 * bt) * ramp * np.exp(-bt / 0.05))
    return video, (audio if channels > 1 else audio[0]), impacts, flashes


def test_synthesizer_events_are_visible_and_audible():
    video, audio, impacts, flashes = make_av_clip(25, 16000, 0.0, seed=3)
    assert video.shape == (88, 64, 64, 3) and audio.shape == (56000,)
    assert len(impacts) >= 3 and len(flashes) == 3
    onsets = onset_detect(audio, 16000, analysis_sr=16000, n_fft=400, hop_length=160)
    for t in impacts + flashes:
        assert np.min(np.abs(onsets - t)) < 0.03


# ------------------------------------------------------------------------------- AV-Align


def _reference_iou(audio_peaks, video_peaks, fps):
    """The reference loop (JavisBench / Seeing-and-Hearing), with the +1e-6 of reference.md."""
    inter = 0
    for a in audio_peaks:
        for v in video_peaks:
            if v - 1 / fps < a < v + 1 / fps:
                inter += 1
                break
    return inter / (len(audio_peaks) + len(video_peaks) - inter + 1e-6)


def _reference_video_peaks(video, fps):
    def mean_flow(a, b):
        ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0]

    traj = [mean_flow(video[0], video[1])] + [
        mean_flow(video[i - 1], video[i]) for i in range(1, len(video))
    ]
    peaks = [i / fps for i in range(1, len(traj) - 1) if traj[i - 1] < traj[i] > traj[i + 1]]
    return traj, peaks


@pytest.mark.parametrize(
    ("audio_peaks", "video_peaks", "fps"),
    [
        ([0.1, 0.5, 1.0], [0.12, 0.9, 1.5], 25.0),
        ([0.5], [0.5 + 1 / 24], 24.0),  # exactly one frame apart: not a match (strict)
        ([0.5], [0.5 + 0.99 / 24], 24.0),
        ([0.1, 0.11, 0.12], [0.1], 30.0),  # several audio peaks may match one video peak
        ([], [0.2, 0.4], 30.0),
        ([], [], 30.0),
        (list(np.linspace(0.0, 3.0, 17)), list(np.linspace(0.01, 3.0, 23)), 8.0),
    ],
)
def test_av_align_from_peaks_matches_reference_loop(audio_peaks, video_peaks, fps):
    ours = av_align_from_peaks(audio_peaks, video_peaks, fps)
    assert ours == pytest.approx(_reference_iou(audio_peaks, video_peaks, fps), abs=1e-12)


def test_video_flow_peaks_match_reference_farneback_loop():
    video, _, _, _ = make_av_clip(24, 16000, 0.0, seed=1, duration=1.5)
    traj, peaks = video_flow_peaks(video, 24)
    ref_traj, ref_peaks = _reference_video_peaks(video, 24)
    np.testing.assert_allclose(traj, ref_traj, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(peaks, ref_peaks)


def test_av_align_matches_reference_on_synthetic_clip():
    video, audio, _, _ = make_av_clip(25, 22050, 0.0, seed=2, duration=2.0)
    _, ref_video_peaks = _reference_video_peaks(video, 25)
    expected = _reference_iou(onset_detect(audio, 22050), ref_video_peaks, 25)
    score = av_align(video, 25, audio, 22050)
    assert score == pytest.approx(expected, abs=1e-12)
    assert 0.0 < score <= 1.0
    # Shifting the audio by far more than a frame loses the alignment.
    _, late_audio, _, _ = make_av_clip(25, 22050, 0.4, seed=2, duration=2.0)
    assert av_align(video, 25, late_audio, 22050) < score


def test_av_align_accepts_stereo_and_float_video():
    video, audio, _, _ = make_av_clip(24, 16000, 0.0, seed=4, duration=1.0, channels=2)
    as_float = video.astype(np.float32) / 255.0
    assert av_align(as_float, 24, audio, 16000) == pytest.approx(
        av_align(video, 24, audio.mean(axis=0), 16000)
    )


# ------------------------------------------------------------------------------ AV offset

PLANTED = (-0.5, -0.2, 0.0, 0.13, 0.4)


@pytest.mark.parametrize("fps", [24, 25, 30])
@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_av_offset_recovers_planted_offsets(fps, sr):
    for k, planted in enumerate(PLANTED):
        channels = 1 + (k + fps + sr // 1000) % 2  # mono and stereo across the grid
        seed = 1000 * fps + sr // 100 + k
        video, audio, _, _ = make_av_clip(fps, sr, planted, channels=channels, seed=seed)
        est = av_offset(video, fps, audio, sr)
        assert isinstance(est, AVOffset)
        assert abs(est.offset_s - planted) <= 1.0 / fps, (planted, channels, est)
        assert 0.0 < est.confidence <= 1.0


def test_av_offset_stereo_and_mono_agree_and_sign_convention():
    video, audio, _, _ = make_av_clip(25, 44100, 0.3, channels=2, seed=7)
    stereo = av_offset(video, 25, audio, 44100)
    mono = av_offset(video, 25, audio[0], 44100)
    assert stereo.offset_s > 0.2 and mono.offset_s > 0.2  # audio lags -> positive
    assert abs(stereo.offset_s - mono.offset_s) <= 1 / 25


def test_av_offset_without_events_has_zero_confidence():
    still = np.full((30, 32, 32, 3), 128, dtype=np.uint8)
    silence = np.zeros(16000, dtype=np.float32)
    assert av_offset(still, 30, silence, 16000) == AVOffset(0.0, 0.0)
