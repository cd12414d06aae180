"""``dino``: DINO / DINOv2 ViT CLS-token features via transformers (subject_consistency).

VBench uses DINO ViT-B/16 (``facebook/dino-vitb16`` in transformers).  ``encoders.dino.path`` is a
local ``save_pretrained`` directory or a repo id already in the Hugging Face cache.  Frames are
resized (short side) and center-cropped to the model's ``image_size`` and normalized with the
ImageNet mean/std, as VBench's DINO transform does.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from omninft_bench.encoders.base import (
    EncoderBackend,
    MissingWeightsError,
    as_video,
    file_fingerprint,
    in_hf_cache,
    resize_center_crop,
)
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import register_backend

__all__ = ["DinoBackend"]

_WHAT = "DIR (a local copy of facebook/dino-vitb16)"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_CHUNK = 32


@register_backend
class DinoBackend(EncoderBackend):
    name = "dino"
    capabilities = frozenset({"frames"})

    @classmethod
    def check_config(cls, config: EncodersConfig) -> None:
        path = config.dino.path
        if not path:
            raise MissingWeightsError(cls.name, "encoders.dino.path", _WHAT)
        if os.path.exists(path):
            return
        if not in_hf_cache(path):
            raise MissingWeightsError(
                cls.name, "encoders.dino.path", _WHAT, f"{path!r} is neither a directory nor in the HF cache"
            )

    def __init__(self, config: EncodersConfig):
        super().__init__(config)
        from transformers import AutoModel

        self.model = AutoModel.from_pretrained(config.dino.path, local_files_only=True).eval().to(self.device)
        size = getattr(self.model.config, "image_size", 224)
        self.size = int(size[0] if isinstance(size, list | tuple) else size)
        self.mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(_STD).view(1, 3, 1, 1)

    @classmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        return f"dino:{file_fingerprint(config.dino.path)}"

    @torch.inference_mode()
    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        frames = as_video(video)
        out = []
        for start in range(0, frames.shape[0], _CHUNK):
            x = (resize_center_crop(frames[start : start + _CHUNK], self.size) - self.mean) / self.std
            hidden = self.model(pixel_values=x.to(self.device)).last_hidden_state
            out.append(hidden[:, 0].float().cpu())
        return torch.cat(out)
