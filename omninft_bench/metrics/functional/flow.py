"""Weight-free optical flow helpers (OpenCV Farneback and DIS) shared by the AV-sync and VBench
metrics."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ._common import as_video_uint8

__all__ = [
    "dis_flows",
    "farneback_mean_magnitudes",
    "gray_frames",
    "interpolate_midframe",
    "warp_backward",
]

# JavisBench / Seeing-and-Hearing AV-Align: calcOpticalFlowFarneback(prev, next, None,
# pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0).
_FARNEBACK_AV_ALIGN = (0.5, 3, 15, 3, 5, 1.2, 0)


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


def dis_flows(gray: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """DIS optical flow between consecutive frames of a uint8 [T, H, W] grayscale stack.

    Returns float32 [T-1, H, W, 2]; entry i is the flow from frame i to frame i+1, defined on
    frame i's pixel grid (dx, dy in pixels).
    """
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    if gray.ndim != 3:
        raise ValueError(f"expected [T, H, W] grayscale frames, got shape {gray.shape}")
    dis = cv2.DISOpticalFlow_create(preset)
    flows = np.empty((max(gray.shape[0] - 1, 0), *gray.shape[1:], 2), dtype=np.float32)
    for i in range(gray.shape[0] - 1):
        flows[i] = dis.calc(gray[i], gray[i + 1], None)
    return flows


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


def interpolate_midframe(
    frame_a: np.ndarray, frame_b: np.ndarray, dis: cv2.DISOpticalFlow | None = None
) -> np.ndarray:
    """Weight-free middle-frame interpolation between two uint8 RGB frames [H, W, 3].

    Bidirectional DIS flows F_ab, F_ba are computed on grayscale; the flows from the middle
    instant back to each end are approximated linearly (Super-SloMo's t = 1/2 case),
    F_ma = (F_ba - F_ab) / 4 and F_mb = (F_ab - F_ba) / 4, each end is backward-warped to the
    middle and the two warps are averaged. Returns uint8 [H, W, 3].
    """
    if dis is None:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ga = cv2.cvtColor(frame_a, cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(frame_b, cv2.COLOR_RGB2GRAY)
    f_ab = dis.calc(ga, gb, None)
    f_ba = dis.calc(gb, ga, None)
    f_ma = 0.25 * (f_ba - f_ab)
    f_mb = 0.25 * (f_ab - f_ba)
    wa = warp_backward(frame_a.astype(np.float32), f_ma)
    wb = warp_backward(frame_b.astype(np.float32), f_mb)
    return np.clip(np.rint(0.5 * (wa + wb)), 0, 255).astype(np.uint8)
