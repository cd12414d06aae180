"""The :class:`Backbone`: one LTX-2 dual-stream transformer plus its codecs and text conditioning.

Two ways to build it, sharing every method below:

* ``tiny`` (the default): ``diffusers.LTX2VideoTransformer3DModel`` with a tiny config
  (:class:`TinyConfig`), pixel-patch video and log-mel audio codecs, a learned word encoder; the
  shipped checkpoint ``weights/tiny_synthav.safetensors`` (+ ``.json``) is pretrained on SynthAV
  by ``python -m omninft_bench.run stage=pretrain`` (docs/backbone.md).
* ``ltx2``: the released LTX-2 checkpoint in diffusers format (``LTX2Pipeline.from_pretrained(PATH,
  local_files_only=True)``): its transformer, video/audio VAEs, vocoder and Gemma-3 text stack.

Flow-matching convention (diffusers / LTX-2): ``x_sigma = (1 - sigma) x0 + sigma eps`` and the
transformer predicts the velocity ``eps - x0``; it receives ``timestep = 1000 sigma`` per stream.

Parameter groups (reference.md sec. 3), over ``backbone.transformer.named_parameters()``:
``cross`` = names containing ``audio_to_video_``, ``video_to_audio_``, ``a2v_cross_attn`` or
``av_cross_attn``; ``audio`` = other names with a component starting with ``audio`` (top level or
inside a block); ``video`` = the rest.  The text encoder is outside the partition (frozen in RL).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from diffusers import LTX2VideoTransformer3DModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from omninft_bench.config import option
from omninft_bench.media import AVClip
from trainers.backbone.codecs import (
    AudioCodec,
    LTX2AudioCodec,
    LTX2VideoCodec,
    MelAudioCodec,
    PatchVideoCodec,
    VideoCodec,
    to_numpy_clip_arrays,
)
from trainers.backbone.text import LTX2TextStack, TextCond, WordTextEncoder

__all__ = [
    "DEFAULT_WEIGHTS",
    "Backbone",
    "BackboneConfig",
    "CrossModalBlock",
    "TinyConfig",
    "param_group",
]

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "tiny_synthav.safetensors"
CROSS_MARKERS = ("audio_to_video_", "video_to_audio_", "a2v_cross_attn", "av_cross_attn")
GROUPS = ("video", "audio", "cross")


@dataclass
class BackboneConfig:
    """``backbone=tiny|ltx2 backbone.pretrained=PATH`` in every stage config."""

    name: str = option("tiny", "tiny (SynthAV-pretrained default) | ltx2 (released checkpoint)")
    pretrained: str = option(
        "", "tiny: checkpoint .safetensors (default: the shipped one; 'random' = untrained); ltx2: local diffusers folder"
    )

    def __post_init__(self) -> None:
        if self.name not in ("tiny", "ltx2"):
            raise ValueError(f"backbone={self.name!r}; expected tiny or ltx2")
        if self.name == "ltx2" and not self.pretrained:
            raise ValueError("backbone=ltx2 needs backbone.pretrained=PATH (a local diffusers LTX-2 folder)")

    def build(self) -> Backbone:
        return Backbone.build(self.name, self.pretrained)


def param_group(name: str) -> str:
    """``"cross"``, ``"audio"`` or ``"video"`` for a transformer parameter name (LoRA names too)."""
    if any(marker in name for marker in CROSS_MARKERS):
        return "cross"
    if any(part.startswith("audio") for part in name.split(".")):
        return "audio"
    return "video"


class CrossModalBlock(NamedTuple):
    """One cross-modal attention: block index, module name in the transformer, direction.

    ``a2v``: query video, key/value audio (``audio_to_video_attn``); ``v2a``: the reverse.
    """

    index: int
    name: str
    direction: str


@dataclass
class TinyConfig:
    """Architecture and codec numbers of the tiny backbone (saved as JSON beside its weights).

    Chosen by measurement on the 2-core CPU (docs/backbone.md): 4 layers, video width 128
    (4 heads x 32), audio width 64 (4 x 16), 128 video tokens (2x8x8 pixel patches of
    16x32x32 RGB) and 50 audio tokens (2 log-mel frames x 64 bins each).
    """

    layers: int = 4
    video_heads: int = 4
    video_head_dim: int = 32
    audio_heads: int = 4
    audio_head_dim: int = 16
    text_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_max_len: int = 80
    hash_buckets: int = 64
    vocab: list[str] = field(default_factory=list)
    # video codec
    num_frames: int = 16
    height: int = 32
    width: int = 32
    fps: float = 8.0
    patch_t: int = 2
    patch: int = 8
    # audio codec
    sample_rate: int = 16000
    n_fft: int = 640
    hop: int = 320
    n_mels: int = 64
    mel_frames_per_token: int = 2
    mel_floor: float = 1e-3
    mel_mean: float = -3.5
    mel_std: float = 3.0
    griffin_lim_iters: int = 16
    # parametrisation: the transformer predicts the clean tokens x0 (see Backbone.velocity)
    prediction: str = "x0"
    min_sigma: float = 0.05

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TinyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TinyConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def video_codec(self) -> PatchVideoCodec:
        return PatchVideoCodec(self.num_frames, self.height, self.width, self.fps, self.patch_t, self.patch)

    def audio_codec(self) -> MelAudioCodec:
        return MelAudioCodec(
            sample_rate=self.sample_rate,
            num_samples=int(round(self.duration * self.sample_rate)),
            n_fft=self.n_fft,
            hop=self.hop,
            n_mels=self.n_mels,
            frames_per_token=self.mel_frames_per_token,
            floor=self.mel_floor,
            mean=self.mel_mean,
            std=self.mel_std,
            griffin_lim_iters=self.griffin_lim_iters,
        )

    def transformer(self, video_channels: int, audio_channels: int) -> LTX2VideoTransformer3DModel:
        video_dim = self.video_heads * self.video_head_dim
        audio_dim = self.audio_heads * self.audio_head_dim
        horizon = max(1, int(np.ceil(self.duration)))  # RoPE time axis spans the clip (seconds)
        return LTX2VideoTransformer3DModel(
            in_channels=video_channels,
            out_channels=video_channels,
            num_attention_heads=self.video_heads,
            attention_head_dim=self.video_head_dim,
            cross_attention_dim=video_dim,
            pos_embed_max_pos=horizon,
            base_height=self.height,
            base_width=self.width,
            audio_in_channels=audio_channels,
            audio_out_channels=audio_channels,
            audio_num_attention_heads=self.audio_heads,
            audio_attention_head_dim=self.audio_head_dim,
            audio_cross_attention_dim=audio_dim,
            audio_pos_embed_max_pos=horizon,
            audio_sampling_rate=self.sample_rate,
            audio_hop_length=self.hop,
            num_layers=self.layers,
            caption_channels=self.text_dim,
        )


class Backbone(nn.Module):
    """Transformer + codecs + text conditioning; see the module docstring.

    Attributes: ``transformer`` (``LTX2VideoTransformer3DModel``), ``text_encoder``
    (:class:`WordTextEncoder` or :class:`LTX2TextStack`), ``video_codec``, ``audio_codec``,
    ``kind`` (``"tiny"`` or ``"ltx2"``), ``config`` (the :class:`TinyConfig` for tiny).
    Token shapes: ``video_token_shape`` ``(Nv, Cv)``, ``audio_token_shape`` ``(Na, Ca)``;
    ``video_grid`` is the video token grid ``(frames, rows, cols)``.
    """

    def __init__(
        self,
        transformer: LTX2VideoTransformer3DModel,
        text_encoder: nn.Module,
        video_codec: VideoCodec,
        audio_codec: AudioCodec,
        kind: str,
        config: TinyConfig | None = None,
    ) -> None:
        super().__init__()
        if config is not None and config.prediction not in ("x0", "velocity"):
            raise ValueError(f"prediction={config.prediction!r}; expected x0 or velocity")
        self.prediction = config.prediction if config is not None else "velocity"
        self.min_sigma = config.min_sigma if config is not None else 0.0
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        # Learned codecs (LTX-2 VAEs, vocoder) become submodules so .to(device) moves them too.
        self.codec_modules = nn.ModuleDict(
            {
                name: module
                for name, module in (
                    ("video_vae", getattr(video_codec, "vae", None)),
                    ("audio_vae", getattr(audio_codec, "vae", None)),
                    ("vocoder", getattr(audio_codec, "vocoder", None)),
                )
                if isinstance(module, nn.Module)
            }
        )
        self.kind = kind
        self.config = config
        self._coords: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def tiny(cls, config: TinyConfig | None = None, seed: int = 0) -> Backbone:
        """A randomly initialised tiny backbone (deterministic given ``seed``)."""
        config = config or TinyConfig()
        video_codec, audio_codec = config.video_codec(), config.audio_codec()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            transformer = config.transformer(video_codec.channels, audio_codec.channels)
            text = WordTextEncoder(
                config.vocab,
                dim=config.text_dim,
                layers=config.text_layers,
                heads=config.text_heads,
                max_len=config.text_max_len,
                hash_buckets=config.hash_buckets,
            )
        return cls(transformer, text, video_codec, audio_codec, "tiny", config)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS) -> Backbone:
        """A tiny backbone from ``path`` (safetensors) and its config ``path.with_suffix('.json')``."""
        path = Path(path)
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            raise FileNotFoundError(
                f"tiny backbone checkpoint needs {path} and {meta_path}; "
                "create them with `python -m omninft_bench.run stage=pretrain`"
            )
        meta = json.loads(meta_path.read_text())
        backbone = cls.tiny(TinyConfig.from_dict(meta["config"]))
        state = load_file(str(path))
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: missing keys {missing[:5]}..., unexpected keys {unexpected[:5]}...")
        backbone.eval()
        return backbone

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the tiny backbone's weights (safetensors) and ``.json`` (config + ``extra``)."""
        if self.kind != "tiny":
            raise ValueError("save() writes tiny checkpoints; LTX-2 weights stay in their diffusers folder")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(path))
        path.chmod(0o644)
        meta = {"kind": "tiny", "config": self.config.to_dict(), **(extra or {})}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        return path

    @classmethod
    def from_ltx2_pipeline(
        cls, pipeline, num_frames: int = 121, height: int = 512, width: int = 768, fps: float = 24.0
    ) -> Backbone:
        """Wrap an ``LTX2Pipeline`` (its transformer, VAEs, vocoder, Gemma-3 and connectors)."""
        transformer = pipeline.transformer
        video = LTX2VideoCodec(pipeline.vae, num_frames, height, width, fps, transformer.rope)
        audio = LTX2AudioCodec(pipeline.audio_vae, pipeline.vocoder, num_frames / fps, transformer.audio_rope)
        return cls(transformer, LTX2TextStack(pipeline), video, audio, "ltx2")

    @classmethod
    def from_ltx2(cls, path: str | Path, dtype: torch.dtype = torch.bfloat16, **geometry: Any) -> Backbone:
        """The released LTX-2 checkpoint (diffusers folder); never touches the network."""
        from diffusers import LTX2Pipeline

        pipeline = LTX2Pipeline.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True)
        return cls.from_ltx2_pipeline(pipeline, **geometry)

    @classmethod
    def build(cls, name: str = "tiny", pretrained: str = "") -> Backbone:
        """Dispatcher for ``backbone=tiny|ltx2 backbone.pretrained=PATH``.

        tiny: ``pretrained`` is a tiny checkpoint (default: the shipped one; ``random``: the shipped
        architecture with random weights, the untrained baseline); ltx2: ``pretrained`` is the
        diffusers folder of the released checkpoint (required).
        """
        if name == "tiny" and pretrained == "random":
            # the untrained baseline: the shipped architecture and vocabulary, random weights
            meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
            return cls.tiny(TinyConfig.from_dict(meta["config"]), seed=0).eval()
        if name == "tiny":
            return cls.load(pretrained or DEFAULT_WEIGHTS)
        if name == "ltx2":
            if not pretrained:
                raise ValueError("backbone=ltx2 needs backbone.pretrained=PATH (a local diffusers LTX-2 folder)")
            return cls.from_ltx2(pretrained)
        raise ValueError(f"unknown backbone {name!r}; expected 'tiny' or 'ltx2'")

    # ------------------------------------------------------------------ shapes

    @property
    def video_token_shape(self) -> tuple[int, int]:
        return self.video_codec.token_shape

    @property
    def audio_token_shape(self) -> tuple[int, int]:
        return self.audio_codec.token_shape

    @property
    def video_grid(self) -> tuple[int, int, int]:
        return self.video_codec.grid

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    # ------------------------------------------------------------------ codecs and text

    def clips_to_tensors(self, clips: Sequence[AVClip]) -> tuple[Tensor, Tensor]:
        """Stack clips into float video ``[B, T, H, W, 3]`` in [0, 1] and mono audio ``[B, S]``.

        Clips must already have the codec's geometry (frames, size, sample rate); audio is cut
        or zero-padded to the codec's length.
        """
        vc, ac = self.video_codec, self.audio_codec
        videos, audios = [], []
        for clip in clips:
            v = clip.video_float()
            if v.shape[:3] != (vc.num_frames, vc.height, vc.width):
                raise ValueError(
                    f"clip video {v.shape[:3]} does not match the codec's {(vc.num_frames, vc.height, vc.width)}"
                )
            if clip.audio is None or clip.sample_rate != ac.sample_rate:
                raise ValueError(f"clip needs {ac.sample_rate} Hz audio, has {clip.sample_rate}")
            a = clip.audio_mono()[: ac.num_samples]
            videos.append(v)
            audios.append(np.pad(a, (0, ac.num_samples - a.shape[0])))
        return torch.from_numpy(np.stack(videos)), torch.from_numpy(np.stack(audios))

    @torch.no_grad()
    def encode(self, clips: Sequence[AVClip]) -> tuple[Tensor, Tensor]:
        """Clips -> ``(video_tokens [B, Nv, Cv], audio_tokens [B, Na, Ca])`` on the model's device."""
        video, audio = self.clips_to_tensors(clips)
        return self.encode_tensors(video.to(self.device), audio.to(self.device))

    def encode_tensors(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self.video_codec.encode(video), self.audio_codec.encode(audio)

    @torch.no_grad()
    def decode_tensors(self, video_tokens: Tensor, audio_tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens -> (float video ``[B, T, H, W, 3]`` in [0, 1], mono audio ``[B, S]``)."""
        return self.video_codec.decode(video_tokens), self.audio_codec.decode(audio_tokens)

    def decode(
        self,
        video_tokens: Tensor,
        audio_tokens: Tensor,
        prompts: Sequence[str] | None = None,
        meta: Sequence[dict[str, Any]] | None = None,
    ) -> list[AVClip]:
        """Tokens -> one :class:`AVClip` per row (uint8 video, mono float32 audio in [-1, 1])."""
        video, audio = to_numpy_clip_arrays(*self.decode_tensors(video_tokens, audio_tokens))
        n = video.shape[0]
        prompts = list(prompts) if prompts is not None else [""] * n
        meta = list(meta) if meta is not None else [{} for _ in range(n)]
        return [
            AVClip(
                video=video[i],
                fps=float(self.video_codec.fps),
                audio=audio[i][None, :],
                sample_rate=int(self.audio_codec.sample_rate),
                prompt=prompts[i],
                meta=dict(meta[i]),
            )
            for i in range(n)
        ]

    def encode_text(self, prompts: Sequence[str]) -> TextCond:
        """Text context for ``prompts``; ``""`` is the null prompt (classifier-free guidance)."""
        return self.text_encoder(list(prompts))

    def null_text(self, batch_size: int) -> TextCond:
        return self.encode_text([""] * batch_size)

    # ------------------------------------------------------------------ the model

    def coords(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """RoPE positions (video ``[B, 3, Nv, 2]``, audio ``[B, 1, Na, 2]``), cached per batch size."""
        key = (batch_size, str(self.device))
        if key not in self._coords:
            self._coords[key] = (
                self.video_codec.coords(batch_size, self.device),
                self.audio_codec.coords(batch_size, self.device),
            )
        return self._coords[key]

    def velocity(
        self,
        x_video: Tensor,
        x_audio: Tensor,
        sigma_video: Tensor | float,
        sigma_audio: Tensor | float | None,
        cond: TextCond,
    ) -> tuple[Tensor, Tensor]:
        """Predicted velocities ``(eps - x0)`` for both streams at noise levels ``sigma_*`` in [0, 1].

        ``sigma_*``: scalar or ``[B]``; ``sigma_audio=None`` uses the video's (shared timestep).

        The LTX-2 checkpoint predicts the velocity directly.  The tiny backbone predicts clean
        tokens ``x0_hat`` ("x-prediction", Li & He 2025, "Back to Basics: Let Denoising Generative
        Models Denoise"): its pixel-patch (384) and mel (128) tokens are wider than its residual
        streams (128 / 64), and a narrow network cannot pass the full-width noise that a velocity
        or epsilon target contains, while clean tokens lie on a low-dimensional manifold.  The
        velocity is then ``(x_sigma - x0_hat) / max(sigma, min_sigma)``, so ``x_sigma - sigma v``
        recovers ``x0_hat`` for every ``sigma >= min_sigma`` and samplers and losses written for
        velocity models (Euler, DiffusionNFT) apply unchanged.
        """
        b = x_video.shape[0]
        sv = torch.as_tensor(sigma_video, dtype=torch.float32, device=x_video.device).expand(b)
        sa = sv if sigma_audio is None else torch.as_tensor(sigma_audio, dtype=torch.float32, device=x_video.device).expand(b)
        out_v, out_a = self._forward(x_video, x_audio, sv, sa, cond)
        if self.prediction == "velocity":
            return out_v, out_a
        dv = sv.clamp(min=self.min_sigma).view(b, 1, 1)
        da = sa.clamp(min=self.min_sigma).view(b, 1, 1)
        return (x_video.float() - out_v) / dv, (x_audio.float() - out_a) / da

    def _forward(self, x_video: Tensor, x_audio: Tensor, sv: Tensor, sa: Tensor, cond: TextCond) -> tuple[Tensor, Tensor]:
        video_coords, audio_coords = self.coords(x_video.shape[0])
        dtype = self.dtype
        v, a = self.transformer(
            hidden_states=x_video.to(dtype),
            audio_hidden_states=x_audio.to(dtype),
            encoder_hidden_states=cond.video.to(dtype),
            audio_encoder_hidden_states=cond.audio.to(dtype),
            timestep=sv * 1000.0,
            audio_timestep=sa * 1000.0,
            sigma=sv,
            audio_sigma=sa,
            encoder_attention_mask=cond.mask,
            audio_encoder_attention_mask=cond.mask,
            video_coords=video_coords,
            audio_coords=audio_coords,
            fps=float(self.video_codec.fps),
            return_dict=False,
        )
        return v.float(), a.float()

    # ------------------------------------------------------------------ groups for the trainer

    def param_groups(self) -> dict[str, list[str]]:
        """``{"video": [...], "audio": [...], "cross": [...]}`` names of ``self.transformer`` parameters.

        Every transformer parameter is in exactly one group (reference.md sec. 3 rule).
        """
        groups: dict[str, list[str]] = {g: [] for g in GROUPS}
        for name, _ in self.transformer.named_parameters():
            groups[param_group(name)].append(name)
        return groups

    def parameters_by_group(self) -> dict[str, list[nn.Parameter]]:
        params = dict(self.transformer.named_parameters())
        return {g: [params[n] for n in names] for g, names in self.param_groups().items()}

    def cross_modal_blocks(self) -> list[CrossModalBlock]:
        """Every cross-modal attention in execution order: ``(block index, module name, a2v|v2a)``.

        Module names are relative to ``self.transformer`` (``get_submodule`` finds them).
        """
        out = []
        for i, _ in enumerate(self.transformer.transformer_blocks):
            out.append(CrossModalBlock(i, f"transformer_blocks.{i}.audio_to_video_attn", "a2v"))
            out.append(CrossModalBlock(i, f"transformer_blocks.{i}.video_to_audio_attn", "v2a"))
        return out

    def num_parameters(self) -> dict[str, int]:
        out = {g: sum(p.numel() for p in ps) for g, ps in self.parameters_by_group().items()}
        out["text"] = sum(p.numel() for p in self.text_encoder.parameters())
        return out
