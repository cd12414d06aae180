"""``clap``: LAION CLAP audio/text embeddings via transformers' ``ClapModel`` (clap_score, FAD-CLAP).

Weights come from ``encoders.clap.path``: a local directory (``save_pretrained`` layout, e.g. a
copy of ``laion/clap-htsat-unfused``) or a repo id already in the Hugging Face cache; the hub is
never contacted (``local_files_only``).

Determinism: the CLAP feature extractor crops a *random* 10 s window from longer audio
("rand_trunc").  We instead split the signal into consecutive windows of the extractor's maximum
length, embed each (shorter ones are repeat-padded, which is deterministic) and average the
normalized embeddings.  For clips up to 10 s this is exactly the reference behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from omninft_bench.encoders.base import (
    EncoderBackend,
    MissingWeightsError,
    as_audio,
    file_fingerprint,
    in_hf_cache,
)
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import register_backend

__all__ = ["ClapBackend"]

_WHAT = "DIR (a local copy of laion/clap-htsat-unfused)"


def _pooled(output: object) -> torch.Tensor:
    # transformers >= 5 returns a model output whose pooler_output is the projected embedding.
    return output.pooler_output if hasattr(output, "pooler_output") else output  # type: ignore[return-value]


@register_backend
class ClapBackend(EncoderBackend):
    name = "clap"
    capabilities = frozenset({"audio", "text"})

    @classmethod
    def check_config(cls, config: EncodersConfig) -> None:
        path = config.clap.path
        if not path:
            raise MissingWeightsError(cls.name, "encoders.clap.path", _WHAT)
        if os.path.exists(path):
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise MissingWeightsError(cls.name, "encoders.clap.path", _WHAT, f"{path!r} has no config.json")
            return
        if not in_hf_cache(path):
            raise MissingWeightsError(
                cls.name, "encoders.clap.path", _WHAT, f"{path!r} is neither a directory nor in the HF cache"
            )

    def __init__(self, config: EncodersConfig):
        super().__init__(config)
        from transformers import ClapModel, ClapProcessor

        path = config.clap.path
        self.model = ClapModel.from_pretrained(path, local_files_only=True).eval().to(self.device)
        processor = ClapProcessor.from_pretrained(path, local_files_only=True)
        self.tokenizer = processor.tokenizer
        self.extractor = processor.feature_extractor
        self.rate = int(self.extractor.sampling_rate)
        self.max_samples = int(self.extractor.nb_max_samples)
        self.fused = bool(getattr(self.model.config.audio_config, "enable_fusion", False))

    @classmethod
    def fingerprint(cls, config: EncodersConfig) -> str:
        return f"clap:{file_fingerprint(config.clap.path)}"

    @torch.inference_mode()
    def embed_audio(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        mono = as_audio(audio).mean(0)
        if sample_rate != self.rate:
            mono = torchaudio.functional.resample(mono, sample_rate, self.rate)
        if mono.numel() == 0:
            raise ValueError("cannot embed empty audio")
        chunks = [mono[i : i + self.max_samples].numpy() for i in range(0, mono.numel(), self.max_samples)]
        # The fused extractor marks a random batch item as "longer": give it one chunk per call.
        groups = [[c] for c in chunks] if self.fused else [chunks]
        embs = []
        for group in groups:
            inputs = self.extractor(
                group,
                sampling_rate=self.rate,
                return_tensors="pt",
                truncation="fusion" if self.fused else "rand_trunc",
                padding="repeatpad",
            )
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            embs.append(F.normalize(_pooled(self.model.get_audio_features(**inputs)).float(), dim=-1).cpu())
        return F.normalize(torch.cat(embs).mean(0), dim=-1)

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return _pooled(self.model.get_text_features(**tokens)).float().cpu()
