"""``open_clip``: CLIP image/text embeddings (clip_score, background_consistency).

JavisBench's clip_score uses OpenAI CLIP ViT-B/32; here the model name and weights are
configuration (``encoders.open_clip.model`` / ``.pretrained``).  Frames are preprocessed as
tensors (bicubic short-side resize, center crop, the model's mean/std), which matches open_clip's
PIL transform up to resampling rounding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from omninft_bench.encoders.base import (
    EncoderBackend,
    EncoderError,
    MissingWeightsError,
    as_video,
    file_fingerprint,
    resize_center_crop,
)
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import register_backend

__all__ = ["OpenClipBackend"]

_CHUNK = 32
_RANDOM = "none"


@register_backend
class OpenClipBackend(EncoderBackend):
    name = "open_clip"
    capabilities = frozenset({"frames", "text"})

    @classmethod
    def check_config(cls, config: EncodersConfig) -> None:
        cfg = config.open_clip
        if not cfg.pretrained:
            raise MissingWeightsError(
                cls.name,
                "encoders.open_clip.pretrained",
                "TAG_OR_PATH (an open_clip pretrained tag in the local cache, e.g. openai, or a checkpoint file)",
            )
        if cfg.model_config and not os.path.isfile(cfg.model_config):
            raise MissingWeightsError(
                cls.name, "encoders.open_clip.model_config", "FILE.json", f"{cfg.model_config!r} does not exist"
            )

    def __init__(self, config: EncodersConfig):
        super().__init__(config)
        import open_clip

        cfg = config.open_clip
        if cfg.model_config:
            open_clip.add_model_config(cfg.model_config)
        pretrained = None if cfg.pretrained.lower() == _RANDOM else cfg.pretrained
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # 'none' (random init) must still be the same model every time
                model = open_clip.create_model(cfg.model, pretrained=pretrained, device=self.device)
        except RuntimeError as exc:
            raise EncoderError(
                f"open_clip could not create {cfg.model!r} with pretrained={cfg.pretrained!r} ({exc}); "
                "set encoders.open_clip.pretrained to a cached tag or a checkpoint path"
            ) from exc
        self.model = model.eval()
        self.tokenizer = open_clip.get_tokenizer(cfg.model)
        pre = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        size = pre.get("size", getattr(self.model.visual, "image_size", 224))
        self.size = int(size[0] if isinstance(size, list | tuple) else size)
        self.mean = torch.tensor(pre.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1)

    @classmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        cfg = config.open_clip
        extra = f":{file_fingerprint(cfg.model_config)}" if cfg.model_config else ""
        return f"open_clip:{cfg.model}:{file_fingerprint(cfg.pretrained)}{extra}"

    @torch.inference_mode()
    def embed_frames(self, video: np.ndarray | torch.Tensor) -> torch.Tensor:
        frames = as_video(video)
        out = []
        for start in range(0, frames.shape[0], _CHUNK):
            x = resize_center_crop(frames[start : start + _CHUNK], self.size)
            x = ((x - self.mean) / self.std).to(self.device)
            out.append(self.model.encode_image(x).float().cpu())
        return torch.cat(out)

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens).float().cpu()
