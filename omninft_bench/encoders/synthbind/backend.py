"""``synthbind``: the in-house joint text/video/audio encoder, with weights shipped in the package.

Adapts any media to the model's native window (2 s, 16 frames of 32x32 at 8 fps, 16 kHz mono):

* frames are resized (short side) and center-cropped to 32x32; ``embed_video`` first resamples
  the clip to 8 fps (nearest frame), ``embed_frames`` takes the frames as given (it has no fps;
  SynthBind assumes consecutive frames at 8 fps);
* audio is averaged to mono and resampled to 16 kHz; a signal up to 2 s long is zero-padded at
  the end, so sample 0 stays at time 0 (the towers share absolute time within a window);
* longer inputs are cut into consecutive 2 s windows (the last one aligned to the end); clip and
  audio embeddings are the normalized mean over windows, per-frame embeddings come from the
  window that holds the frame.

Every output is L2-normalized float32 on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from omninft_bench.encoders.base import (
    EncoderBackend,
    MissingWeightsError,
    as_audio,
    as_video,
    file_fingerprint,
    resize_center_crop,
)
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import register_backend
from omninft_bench.encoders.synthbind.model import (
    CONFIG_FILE,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    SynthBind,
    load_synthbind,
)

__all__ = ["SynthBindBackend", "weights_path"]


def weights_path(config: EncodersConfig) -> Path:
    """The weights file the config points at (the shipped one when ``encoders.synthbind.path`` is empty)."""
    path = Path(config.synthbind.path) if config.synthbind.path else WEIGHTS_DIR
    return path / WEIGHTS_FILE if path.is_dir() else path


def _starts(length: int, size: int) -> list[int]:
    """Window starts covering ``[0, length)``: 0, size, 2 size, ...; the last aligned to the end."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, size))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


@register_backend
class SynthBindBackend(EncoderBackend):
    """SynthBind (see ``omninft_bench/encoders/synthbind/MODEL_CARD.md``)."""

    name = "synthbind"
    capabilities = frozenset({"frames", "video", "audio", "text"})

    @classmethod
    def check_config(cls, config: EncodersConfig) -> None:
        weights = weights_path(config)
        what = "FILE (a synthbind.safetensors written by omninft_bench.encoders.synthbind.train)"
        if not weights.is_file():
            raise MissingWeightsError(cls.name, "encoders.synthbind.path", what, f"{weights} does not exist")
        config_file = weights.parent / CONFIG_FILE if weights.name == WEIGHTS_FILE else weights.with_suffix(".json")
        if not config_file.is_file():
            raise MissingWeightsError(cls.name, "encoders.synthbind.path", what, f"no {config_file.name} beside it")

    @classmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        return f"synthbind:{file_fingerprint(str(weights_path(config)))}"

    def __init__(self, config: EncodersConfig, model: SynthBind | None = None):
        super().__init__(config)
        self.model = model if model is not None else load_synthbind(weights_path(config), self.device)
        self.model.eval()
        spec = self.model.spec
        self.fps, self.rate, self.size = spec.fps, spec.sample_rate, spec.frame_size
        self.steps, self.window = spec.steps, spec.window_samples

    @classmethod
    def from_model(cls, model: SynthBind) -> SynthBindBackend:
        """A backend around an in-memory model (training, tests); skips loading weights."""
        return cls(EncodersConfig(), model=model)

    # ------------------------------------------------------------------------- video

    def _frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = as_video(video)
        if x.shape[-2:] != (self.size, self.size):
            x = resize_center_crop(x, self.size)
        return x

    @torch.inference_mode()
    def _encode_windows(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[T, 3, S, S]`` -> (per-frame ``[T, d]``, per-window clip embeddings ``[W, d]``)."""
        t = frames.shape[0]
        starts = _starts(t, self.steps)
        size = min(t, self.steps)
        chunks = torch.stack([frames[s : s + size] for s in starts]).to(self.device)
        per_frame, clip = self.model.encode_video(chunks)
        out = torch.empty(t, per_frame.shape[-1], device=per_frame.device)
        for s, emb in zip(reversed(starts), reversed(per_frame), strict=True):
            out[s : s + size] = emb  # earlier windows win where the last, end-aligned one overlaps
        return out.float().cpu(), clip.float().cpu()

    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[T, H, W, 3]`` -> ``[T, d]``; frames are taken as consecutive at 8 fps."""
        return self._encode_windows(self._frames(video))[0]

    def embed_video(self, video: np.ndarray | torch.Tensor, fps: float) -> torch.Tensor:
        """``[T, H, W, 3]`` at ``fps`` -> ``[d]`` (resampled to 8 fps, mean over 2 s windows)."""
        frames = self._frames(video)
        if abs(fps - self.fps) > 1e-6:
            n_out = max(1, int(round(frames.shape[0] * self.fps / fps)))
            idx = np.minimum(np.floor(np.arange(n_out) * fps / self.fps + 1e-6).astype(int), frames.shape[0] - 1)
            frames = frames[torch.from_numpy(idx)]
        return F.normalize(self._encode_windows(frames)[1].mean(0), dim=-1)

    # ------------------------------------------------------------------------- audio

    def _mono(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        mono = as_audio(audio).mean(0)
        if sample_rate != self.rate:
            mono = torchaudio.functional.resample(mono, int(sample_rate), self.rate)
        return mono

    @torch.inference_mode()
    def _encode_signals(self, signals: Sequence[torch.Tensor]) -> torch.Tensor:
        """One embedding per mono 16 kHz signal (each cut into 2 s windows): ``[n, d]``."""
        pieces, owner = [], []
        for i, mono in enumerate(signals):
            for s in _starts(mono.numel(), self.window):
                piece = mono[s : s + self.window]
                pieces.append(F.pad(piece, (0, self.window - piece.numel())))
                owner.append(i)
        emb = self.model.encode_audio(torch.stack(pieces).to(self.device)).float().cpu()
        index = torch.tensor(owner)
        summed = torch.zeros(len(signals), emb.shape[1]).index_add_(0, index, emb)
        return F.normalize(summed, dim=-1)

    def embed_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``[C, N]`` -> ``[d]``."""
        return self._encode_signals([self._mono(audio, sample_rate)])[0]

    def embed_audio_windows(
        self,
        audio: np.ndarray | torch.Tensor,
        sample_rate: int,
        windows: Sequence[tuple[float, float]],
    ) -> torch.Tensor:
        """One embedding per ``(start_s, end_s)`` window, ``[W, d]``, in one batched pass.

        A window running past the end is zero-padded to its nominal length (as the base class).
        """
        mono = self._mono(audio, sample_rate)
        pieces = []
        for start_s, end_s in windows:
            a, b = int(round(start_s * self.rate)), int(round(end_s * self.rate))
            piece = mono[max(a, 0) : b]
            pieces.append(F.pad(piece, (0, max(0, (b - a) - piece.numel()))))
        return self._encode_signals(pieces)

    # ------------------------------------------------------------------------- text

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``n`` strings -> ``[n, d]``."""
        return self.model.encode_text(list(texts)).float().cpu()
