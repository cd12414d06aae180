"""Input coercion shared by the functional metrics (private)."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor or nested sequence) as a numpy array of ``dtype``."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def as_matrix(x: Any, name: str) -> np.ndarray:
    """Coerce to a float64 [N, d] matrix; a 1-D input is one row."""
    arr = to_numpy(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def as_vector(x: Any, name: str) -> np.ndarray:
    """Coerce to a float64 [d] vector (a [1, d] input is accepted)."""
    arr = to_numpy(x)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be [d], got shape {tuple(arr.shape)}")
    return arr


def as_video_uint8(video: Any, name: str = "video", min_frames: int = 1) -> np.ndarray:
    """Coerce to a C-contiguous uint8 [T, H, W, 3] array.

    Float input is read as the project's float convention (values in [0, 1]) and rounded to
    uint8, so metrics defined on raw 8-bit pixels (VBench) see the same values either way.
    """
    if hasattr(video, "detach") and hasattr(video, "cpu"):
        video = video.detach().cpu().numpy()
    arr = np.asarray(video)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be [T, H, W, 3], got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_frames:
        raise ValueError(f"{name} needs at least {min_frames} frames, got {arr.shape[0]}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {arr.dtype}")
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def as_audio_channels(audio: Any, name: str = "audio") -> np.ndarray:
    """Coerce to float32 [C, N]; a 1-D input is one channel."""
    arr = to_numpy(audio, np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [N] or [C, N], got shape {tuple(arr.shape)}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} is empty")
    return arr


def check_rate(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value
