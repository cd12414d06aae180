"""Tiny random-init weights for every weighted backend, written to a folder (tests, smoke runs).

``write_tiny_encoders(root)`` saves a tiny open_clip model config, a tiny transformers CLAP
(model, feature extractor and a character-level RoBERTa tokenizer), a tiny DINO ViT and a tiny
TorchScript "I3D", and returns an :class:`EncodersConfig` pointing at them.  Nothing touches the
network.  The scores these models give are meaningless; they exercise the plumbing.
"""

from __future__ import annotations

import json
import string
import warnings
from pathlib import Path

import torch
from torch import nn

from omninft_bench.encoders.config import EncodersConfig

__all__ = ["TinyI3D", "write_tiny_encoders"]

OPEN_CLIP_MODEL = "omninft-tiny-clip"


class TinyI3D(nn.Module):
    """[B, 3, T, H, W] -> logits [B, K, T'] (a conv stem and a linear head)."""

    def __init__(self, num_classes: int = 16):
        super().__init__()
        self.stem = nn.Conv3d(3, 8, kernel_size=(3, 4, 4), stride=(1, 4, 4), padding=(1, 0, 0))
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x)).mean(dim=(3, 4))  # [B, 8, T]
        return self.head(h.transpose(1, 2)).transpose(1, 2)  # [B, K, T]


def _write_open_clip(root: Path) -> Path:
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
    }
    path = root / f"{OPEN_CLIP_MODEL}.json"
    path.write_text(json.dumps(cfg))
    return path


def _write_clap(root: Path) -> Path:
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    folder = root / "clap"
    folder.mkdir(parents=True, exist_ok=True)
    audio = {
        "window_size": 8,
        "num_mel_bins": 64,
        "spec_size": 128,
        "patch_size": 4,
        "patch_stride": (4, 4),
        "hidden_size": 32,
        "projection_dim": 16,
        "depths": (1, 1),
        "num_attention_heads": (1, 2),
        "patch_embeds_hidden_size": 16,
        "num_hidden_layers": 2,
    }
    text = {
        "vocab_size": 64,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 80,
        "projection_dim": 16,
    }
    torch.manual_seed(0)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).save_pretrained(folder)
    # A character-level byte-BPE vocabulary with no merges: enough for RobertaTokenizer.
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for ch in [*string.ascii_lowercase, *string.digits, "\u0120"]:
        vocab[ch] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=64)
    extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=2)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def _write_dino(root: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    folder = root / "dino"
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    ViTModel(config).save_pretrained(folder)
    return folder


def _write_i3d(root: Path) -> Path:
    torch.manual_seed(0)
    path = root / "tiny_i3d.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14 but is the I3D format
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(TinyI3D().eval()).save(str(path))
    return path


def write_tiny_encoders(root: str | Path, *, default: str = "random") -> EncodersConfig:
    """Write tiny random-init weights under ``root``; return a config that uses them.

    A folder already completed by an earlier call is reused as is (test modules share one).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = root / "COMPLETE"
    if not done.is_file():
        _write_open_clip(root)
        _write_clap(root)
        _write_dino(root)
        _write_i3d(root)
        done.write_text("tiny random-init encoder weights\n")
    cfg = EncodersConfig(default=default)
    cfg.open_clip.model = OPEN_CLIP_MODEL
    cfg.open_clip.model_config = str(root / f"{OPEN_CLIP_MODEL}.json")
    cfg.open_clip.pretrained = "none"
    cfg.clap.path = str(root / "clap")
    cfg.dino.path = str(root / "dino")
    cfg.i3d.path = str(root / "tiny_i3d.pt")
    cfg.i3d.num_frames = 8
    cfg.i3d.size = 32
    cfg.random.dim = 16
    return cfg
