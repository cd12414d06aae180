"""Embedding-cosine scores: CLIP score, ImageBind AV/AVH scores and JavisScore (with its window
layout). Inputs are precomputed embeddings of ONE clip; encoders live elsewhere."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ._common import as_matrix, as_vector, check_rate

__all__ = [
    "JavisWindow",
    "av_score",
    "avh_score",
    "clip_score",
    "cosine_rows",
    "javis_score",
    "javis_windows",
]

# Floor on the product of norms (torch CosineSimilarity(eps=1e-6), as JavisBench): a zero
# embedding gives cosine 0 instead of NaN.
_EPS = 1e-6


def cosine_rows(a: Any, b: Any) -> np.ndarray:
    """Cosine similarity of each row of ``a`` [T, d] with ``b`` ([d], broadcast) or with the
    matching row of ``b`` [T, d]. Returns float64 [T]."""
    am = as_matrix(a, "a")
    bm = as_matrix(b, "b")
    if bm.shape[1] != am.shape[1] or bm.shape[0] not in (1, am.shape[0]):
        raise ValueError(f"cannot pair rows of shapes {am.shape} and {bm.shape}")
    dots = (am * bm).sum(axis=1)
    norms = np.linalg.norm(am, axis=1) * np.linalg.norm(bm, axis=1)
    return dots / np.maximum(norms, _EPS)


def clip_score(frame_emb: Any, text_emb: Any) -> float:
    """CLIP score of one clip: mean over frames of cos(E_img(frame_t), E_txt(prompt)).

    Args:
        frame_emb: [T, d] image embeddings of the (sampled) frames; text_emb: [d].

    Source: JavisBench clip_score (CLIP ViT-B/32 on 48 frames). Unlike torchmetrics'
    CLIPScore there is no x100 scaling and no clamp at 0, as in JavisBench.
    """
    return float(cosine_rows(frame_emb, as_vector(text_emb, "text_emb")).mean())


def avh_score(frame_emb: Any, audio_emb: Any) -> float:
    """AVHScore: mean over all frames t of cos(E_v(frame_t), E_a(whole audio)).

    Args:
        frame_emb: [T, d] ImageBind vision embeddings; audio_emb: [d] embedding of the whole
            audio track.

    Source: JavisBench AVHScore (ImageBind), no scaling.
    """
    return float(cosine_rows(frame_emb, as_vector(audio_emb, "audio_emb")).mean())


def av_score(video_emb: Any, audio_emb: Any) -> float:
    """Cosine between one clip-level video embedding [d] and one audio embedding [d]
    (JavisBench ib_av; also ib_tv / ib_ta / clap_score with the matching embeddings)."""
    return float(
        cosine_rows(as_vector(video_emb, "video_emb"), as_vector(audio_emb, "audio_emb"))[0]
    )


class JavisWindow(NamedTuple):
    """One JavisScore window: frames [frame_start, frame_end) and audio [audio_start_s,
    audio_end_s) seconds."""

    frame_start: int
    frame_end: int
    audio_start_s: float
    audio_end_s: float


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def javis_windows(
    num_frames: int, fps: float, window_s: float = 2.0, stride_s: float = 0.5
) -> list[JavisWindow]:
    """Window layout of JavisScore for a clip of ``num_frames`` frames at ``fps``.

    Window length size = round(window_s * fps) frames and stride = round(stride_s * fps) frames
    (round half up, both >= 1). Starts are 0, stride, 2 stride, ... while start + size <= n;
    if the last window does not end at the last frame, one more window starting at n - size is
    added (the "last start clamped to n - size" rule). A clip with n <= size frames gives a
    single window over the whole clip. Audio bounds are start/fps and end/fps seconds.

    Source: JavisBench JavisScore (2.0 s windows, 1.5 s overlap). The exact rounding of
    window_s * fps to frames is not specified by the reference; round-half-up is our choice.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    fps = check_rate(fps, "fps")
    if window_s <= 0 or stride_s <= 0:
        raise ValueError("window_s and stride_s must be positive")
    size = max(1, _round_half_up(window_s * fps))
    stride = max(1, _round_half_up(stride_s * fps))
    if num_frames <= size:
        starts = [0]
        size = num_frames
    else:
        starts = list(range(0, num_frames - size + 1, stride))
        if starts[-1] != num_frames - size:
            starts.append(num_frames - size)
    return [JavisWindow(s, s + size, s / fps, (s + size) / fps) for s in starts]


def javis_score(
    frame_emb: Any,
    window_audio_emb: Any,
    windows: list[JavisWindow] | list[tuple[int, int, float, float]],
    *,
    topk_fraction: float = 0.4,
) -> float:
    """JavisScore of one clip.

    For window i with frames [s_i, e_i) (N = e_i - s_i frames) and its audio embedding a_i:
    s_ij = cos(frame_emb[j], a_i); sigma_i = mean of the k = int(topk_fraction * N) SMALLEST
    s_ij; score = mean_i sigma_i.

    Args:
        frame_emb: [T, d] per-frame ImageBind vision embeddings of the clip.
        window_audio_emb: [W, d] ImageBind audio embedding of each window's audio segment.
        windows: W windows as returned by ``javis_windows`` (frame bounds are used).
        topk_fraction: fraction of the lowest-similarity frames averaged (0.4 in JavisBench).

    Source: JavisBench JavisScore. Departure: k is guarded to be >= 1 (int(0.4 N) is 0 for
    windows of 1-2 frames, where the reference would average an empty set).
    """
    frames = as_matrix(frame_emb, "frame_emb")
    audio = as_matrix(window_audio_emb, "window_audio_emb")
    if audio.shape[0] != len(windows):
        raise ValueError(f"{audio.shape[0]} window audio embeddings for {len(windows)} windows")
    if not windows:
        raise ValueError("javis_score needs at least one window")
    if not 0 < topk_fraction <= 1:
        raise ValueError(f"topk_fraction must be in (0, 1], got {topk_fraction}")
    sigmas = []
    for (start, end, *_), a in zip(windows, audio, strict=True):
        if not 0 <= start < end <= frames.shape[0]:
            raise ValueError(f"window [{start}, {end}) outside the {frames.shape[0]} frames")
        sims = cosine_rows(frames[start:end], a)
        k = max(1, int(topk_fraction * sims.shape[0]))
        sigmas.append(np.sort(sims)[:k].mean())
    return float(np.mean(sigmas))
