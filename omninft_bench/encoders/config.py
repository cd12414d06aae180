"""Typed configuration of the encoder backends (``encoders.*`` keys of every entry point)."""

from __future__ import annotations

from dataclasses import dataclass

from omninft_bench.config import option

__all__ = [
    "ClapConfig",
    "DinoConfig",
    "EncodersConfig",
    "I3DConfig",
    "OpenClipConfig",
    "RandomConfig",
    "SynthBindConfig",
]


@dataclass
class SynthBindConfig:
    path: str = option("", "SynthBind weights file; empty = the weights shipped in the package")


@dataclass
class OpenClipConfig:
    model: str = option("ViT-B-32", "open_clip model name (JavisBench clip_score uses ViT-B-32)")
    pretrained: str = option(
        "", "open_clip pretrained tag (from the local cache) or checkpoint path; 'none' = random init"
    )
    model_config: str = option("", "optional JSON model config to register before creating the model")


@dataclass
class ClapConfig:
    path: str = option("", "local copy of laion/clap-htsat-unfused (dir), or a repo id in the HF cache")


@dataclass
class I3DConfig:
    path: str = option("", "TorchScript I3D file: [B,3,T,H,W] in [-1,1] -> logits [B,K] or [B,K,T']")
    num_frames: int = option(24, "frames sampled uniformly from each clip (JavisBench: 24)")
    size: int = option(224, "frames are resized (short side) and center-cropped to size x size")


@dataclass
class DinoConfig:
    path: str = option("", "local copy of a transformers DINO/DINOv2 ViT (e.g. facebook/dino-vitb16)")


@dataclass
class RandomConfig:
    dim: int = option(64, "embedding width of the weight-free random-projection backend")
    seed: int = option(0, "seed of its fixed projections")


@dataclass
class EncodersConfig:
    default: str = option(
        "synthbind", "backend of the metrics that need one joint text/video/audio space (av_score, ...)"
    )
    device: str = option("cpu", "torch device the encoders run on")
    synthbind: SynthBindConfig = option(SynthBindConfig(), "SynthBind (in-house) backend")
    open_clip: OpenClipConfig = option(OpenClipConfig(), "open_clip backend")
    clap: ClapConfig = option(ClapConfig(), "CLAP backend (transformers ClapModel)")
    i3d: I3DConfig = option(I3DConfig(), "I3D backend (TorchScript)")
    dino: DinoConfig = option(DinoConfig(), "DINO backend (transformers)")
    random: RandomConfig = option(RandomConfig(), "weight-free random-projection backend")
