"""Weight-free optical flow helpers (OpenCV Farneback) shared by the AV-sync and VBench metrics."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ._common import as_video_uint8

__all__ = [
    "farneback_flow",
    "farneback_mean_magnitudes",
    "gray_frames",
    "interpolate_midframe",
    "warp_backward",
]

# JavisBench / Seeing-and-Hearing AV-Align: calcOpticalFlowFarneback(prev, next, None,
# pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0).
_FARNEBACK_AV_ALIGN = (0.5, 3, 15, 3, 5, 1.2, 0)
# Our default dense flow: the same, with one more pyramid level for larger motions. Farneback
# is preferred over DIS where flow magnitudes matter: on noisy, weakly textured regions DIS
# returns spurious vectors of 1-3 px (Farneback ~0.05 px), which would read as motion.
_FARNEBACK_DEFAULT = (0.5, 4, 15, 3, 5, 1.2, 0)


def farneback_flow(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """Dense Farneback flow [H, W, 2] (float32, pixels) from one uint8 gray frame to the
    next, defined on ``prev_gray``'s grid (pyramid 0.5 x 4 levels, window 15, 3 iterations,
    poly_n 5, sigma 1.2)."""
    return cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, *_FARNEBACK_DEFAULT)


def gray_frames(video: Any) -> np.ndarray:
    """uint8 [T, H, W] luma of an RGB uint8 [T, H, W, 3] video (OpenCV RGB2GRAY weights)."""
    frames = as_video_uint8(video)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def farneback_mean_magnitudes(video: Any) -> np.ndarray:
    """Per-frame mean Farneback flow magnitude, length T (AV-Align's flow trajectory).

    Entry i >= 1 is the mean magnitude of the flow from frame i-1 to frame i; entry 0
    duplicates entry 1 (as the reference). Grayscale input, AV-Align's Farneback parameters.
    A single-frame video gives [0.0].
    """
    gray = gray_frames(video)
    if gray.shape[0] < 2:
        return np.zeros(gray.shape[0])
    mags = []
    for prev, nxt in zip(gray[:-1], gray[1:], strict=True):
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, *_FARNEBACK_AV_ALIGN)
        mags.append(float(cv2.magnitude(flow[..., 0], flow[..., 1]).mean()))
    return np.asarray([mags[0], *mags], dtype=np.float64)


def _base_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs, ys


def warp_backward(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at x + flow(x) (bilinear, edges replicated): out(x) = image(x + flow(x)).

    ``image`` is [H, W] or [H, W, C] (any OpenCV dtype); ``flow`` is [H, W, 2] float32.
    """
    h, w = flow.shape[:2]
    xs, ys = _base_grid(h, w)
    return cv2.remap(
        image,
        xs + flow[..., 0],
        ys + flow[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def interpolate_midframe(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
    """Weight-free middle-frame interpolation between two uint8 RGB frames [H, W, 3].

    Bidirectional Farneback flows F_ab, F_ba are computed on grayscale; the flows from the
    middle instant back to each end are approximated linearly (Super-SloMo's t = 1/2 case),
    F_ma = (F_ba - F_ab) / 4 and F_mb = (F_ab - F_ba) / 4, each end is backward-warped to the
    middle and the two warps are averaged. Returns uint8 [H, W, 3].
    """
    ga = cv2.cvtColor(frame_a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(frame_b, cv2.COLOR_RGB2GRAY)
    f_ab = farneback_flow(ga, gb)
    f_ba = farneback_flow(gb, ga)
    f_ma = 0.25 * (f_ba - f_ab)
    f_mb = 0.25 * (f_ab - f_ba)
    wa = warp_backward(frame_a.astype(np.float32), f_ma)
    wb = warp_backward(frame_b.astype(np.float32), f_mb)
    return np.clip(np.rint(0.5 * (wa + wb)), 0, 255).astype(np.uint8)
