"""``i3d``: clip-level I3D embeddings from a user-supplied TorchScript file (FVD, KVD).

JavisBench feeds 24 frames at 224x224 to I3D and uses its 400-way logits averaged over time.
The module at ``encoders.i3d.path`` is called as ``module(x)`` with ``x`` float ``[1, 3, T, S, S]``
in [-1, 1]; its output (or the first element of a tuple) ``[1, K]`` or ``[1, K, T', ...]`` is
averaged over every axis after ``K``.  A clip shorter than ``num_frames`` is fed all its frames.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from omninft_bench.encoders.base import (
    EncoderBackend,
    MissingWeightsError,
    as_video,
    file_fingerprint,
    resize_center_crop,
    uniform_indices,
)
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import register_backend

__all__ = ["I3DBackend"]

_WHAT = "FILE (a TorchScript I3D, e.g. i3d_torchscript.pt)"


@register_backend
class I3DBackend(EncoderBackend):
    name = "i3d"
    capabilities = frozenset({"video"})

    @classmethod
    def check_config(cls, config: EncodersConfig) -> None:
        path = config.i3d.path
        if not path:
            raise MissingWeightsError(cls.name, "encoders.i3d.path", _WHAT)
        if not os.path.isfile(path):
            raise MissingWeightsError(cls.name, "encoders.i3d.path", _WHAT, f"{path!r} is not a file")
        if config.i3d.num_frames < 1 or config.i3d.size < 1:
            raise ValueError("encoders.i3d.num_frames and encoders.i3d.size must be >= 1")

    def __init__(self, config: EncodersConfig):
        super().__init__(config)
        cfg = config.i3d
        with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14; FVD I3Ds ship as it
            warnings.simplefilter("ignore", FutureWarning)
            self.module = torch.jit.load(cfg.path, map_location=self.device).eval()
        self.num_frames, self.size = cfg.num_frames, cfg.size

    @classmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        cfg = config.i3d
        return f"i3d:{file_fingerprint(cfg.path)}:{cfg.num_frames}:{cfg.size}"

    @torch.inference_mode()
    def embed_video(self, video: np.ndarray | torch.Tensor, fps: float) -> torch.Tensor:
        frames = as_video(video)
        frames = frames[torch.as_tensor(uniform_indices(frames.shape[0], self.num_frames))]
        x = resize_center_crop(frames, self.size) * 2.0 - 1.0  # [T, 3, S, S]
        out = self.module(x.permute(1, 0, 2, 3)[None].to(self.device))
        if isinstance(out, tuple | list):
            out = out[0]
        out = out.float().cpu()[0]
        return out.reshape(out.shape[0], -1).mean(1) if out.ndim > 1 else out
