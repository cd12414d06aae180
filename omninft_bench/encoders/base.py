"""The encoder-backend interface: embed video frames, whole videos, audio and text.

A backend wraps one pretrained (or weight-free) model.  Metrics ask an :class:`EvalContext` for a
backend by name; the context builds it on first use and keeps it, so a heavy model loads once and
only when a metric that needs it actually runs.

Inputs are NumPy arrays or tensors in the layouts of :class:`omninft_bench.media.AVClip`:
video ``[T, H, W, 3]`` (uint8, or float in [0, 1]); audio ``[C, N]`` float in [-1, 1] (``[N]`` is
taken as mono) with its sample rate.  Outputs are float32 CPU tensors; they are *not* necessarily
L2-normalized (cosine-based metrics normalize).  A backend declares what it can embed in
``capabilities``; asking for anything else raises :class:`CapabilityError`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from omninft_bench.encoders.config import EncodersConfig

__all__ = [
    "CAPABILITIES",
    "CapabilityError",
    "EncoderBackend",
    "EncoderError",
    "MissingWeightsError",
    "UnknownBackendError",
    "as_audio",
    "as_video",
    "file_fingerprint",
    "in_hf_cache",
    "resize_center_crop",
    "uniform_indices",
]

#: What a backend may be able to embed: single frames (per-frame embeddings ``[T, d]``), a whole
#: video (one clip-level embedding ``[d]``, e.g. I3D), audio, text.
CAPABILITIES = ("frames", "video", "audio", "text")


class EncoderError(RuntimeError):
    """An encoder backend that cannot be built or cannot do what was asked."""


class MissingWeightsError(EncoderError):
    """A backend whose weights are not configured; names the config key to set."""

    def __init__(self, backend: str, key: str, what: str, detail: str = "", hint: str = ""):
        self.backend = backend
        self.key = key
        self.what = what
        self.detail = detail
        self.hint = hint
        extra = f" ({detail})" if detail else ""
        fix = f", or, {hint}" if hint else ""
        super().__init__(f"encoder backend {backend!r} has no usable weights{extra}: set {key}={what}{fix}")

    def with_hint(self, hint: str) -> MissingWeightsError:
        """The same error with a second fix appended (``..., or, {hint}``)."""
        return MissingWeightsError(self.backend, self.key, self.what, self.detail, hint)


class UnknownBackendError(EncoderError, KeyError):
    """A backend name that is not registered; suggests the closest names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CapabilityError(EncoderError):
    """A backend asked to embed a modality it does not handle."""


class EncoderBackend(abc.ABC):
    """Base class of every backend.  Subclasses set ``name`` and ``capabilities``.

    ``check_config`` validates the configuration *without* loading anything (it runs before an
    evaluation starts, so that a missing weight path fails in the first second, not after an hour).
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: EncodersConfig):
        self.config = config
        self.device = torch.device(config.device)

    @classmethod
    def check_config(cls, config: EncodersConfig) -> None:
        """Raise :class:`MissingWeightsError` if the config cannot work; never loads weights."""
        return None  # weight-free backends have nothing to check

    @classmethod
    @abc.abstractmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        """Identity of the model and weights, from the config alone (no loading); part of
        every feature-cache key built on this backend."""

    def supports(self, *capabilities: str) -> bool:
        return set(capabilities) <= self.capabilities

    def _unsupported(self, what: str) -> CapabilityError:
        have = ", ".join(sorted(self.capabilities)) or "nothing"
        return CapabilityError(f"encoder backend {self.name!r} cannot embed {what} (it embeds: {have})")

    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Per-frame embeddings: video ``[T, H, W, 3]`` -> ``[T, d]``."""
        raise self._unsupported("video frames")

    def embed_video(self, video: np.ndarray | torch.Tensor, fps: float) -> torch.Tensor:
        """One clip-level embedding: video ``[T, H, W, 3]`` -> ``[d]``."""
        raise self._unsupported("whole videos")

    def embed_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """One embedding of a whole audio signal: ``[C, N]`` -> ``[d]``."""
        raise self._unsupported("audio")

    def embed_audio_windows(
        self,
        audio: np.ndarray | torch.Tensor,
        sample_rate: int,
        windows: Sequence[tuple[float, float]],
    ) -> torch.Tensor:
        """One embedding per time window ``(start_s, end_s)``: -> ``[W, d]``.

        The default slices the signal and calls :meth:`embed_audio` on each slice; a window that
        runs past the end is zero-padded so every window has its nominal length.
        """
        if not self.supports("audio"):
            raise self._unsupported("audio")
        signal = as_audio(audio)
        out = []
        for start_s, end_s in windows:
            a, b = int(round(start_s * sample_rate)), int(round(end_s * sample_rate))
            piece = signal[:, max(a, 0) : b]
            if piece.shape[1] < b - a:
                piece = F.pad(piece, (0, (b - a) - piece.shape[1]))
            out.append(self.embed_audio(piece, sample_rate))
        return torch.stack(out)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Text embeddings: ``n`` strings -> ``[n, d]``."""
        raise self._unsupported("text")


# --------------------------------------------------------------------------- input helpers


def as_video(video: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 or float -> float32 tensor ``[T, 3, H, W]`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(video)) if not isinstance(video, torch.Tensor) else video
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"video must be [T, H, W, 3], got shape {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0)
    return x.permute(0, 3, 1, 2).contiguous()


def as_audio(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[C, N]`` or ``[N]`` -> float32 tensor ``[C, N]``."""
    x = torch.as_tensor(np.asarray(audio)) if not isinstance(audio, torch.Tensor) else audio
    x = x.float()
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"audio must be [C, N] or [N], got shape {tuple(x.shape)}")
    return x


def resize_center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``[T, 3, H, W]`` -> ``[T, 3, size, size]``: bicubic resize of the short side, center crop."""
    _, _, h, w = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    if (nh, nw) != (h, w):
        frames = F.interpolate(frames, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return frames[:, :, top : top + size, left : left + size].clamp(0.0, 1.0)


def uniform_indices(length: int, count: int) -> np.ndarray:
    """``count`` frame indices spread evenly over ``[0, length)``; all of them if fewer.

    With ``length < count`` the answer is simply ``arange(length)`` (no repetition), so that a
    short clip is not over-weighted.
    """
    if length <= count:
        return np.arange(length)
    return np.linspace(0, length - 1, count).round().astype(int)


def in_hf_cache(repo_id: str) -> bool:
    """Whether ``repo_id`` has a ``config.json`` in the local Hugging Face cache (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # not a valid repo id (e.g. a filesystem path that does not exist)
        return False


def file_fingerprint(path: str) -> str:
    """Path, size and mtime of a weights file or directory (for cache keys)."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{os.path.abspath(path)}:{st.st_size}:{int(st.st_mtime)}"
