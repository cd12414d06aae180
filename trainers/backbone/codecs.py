"""How clips become transformer tokens and back.

Two codec pairs share one small interface (``encode``, ``decode``, ``coords``, ``token_shape``):

* **Tiny default (no weights).**  :class:`PatchVideoCodec` cuts the video into pixel patches
  (``patch_t`` frames x ``patch`` x ``patch`` pixels, RGB scaled to [-1, 1]);
  :class:`MelAudioCodec` turns the mono waveform into a normalised log-mel spectrogram, groups
  ``frames_per_token`` mel frames into one token, and inverts with the mel filterbank's
  pseudo-inverse followed by Griffin-Lim (zero-phase start, fixed iteration count: deterministic).
  Both are exact functions with no parameters, so pretraining only learns the transformer and
  the text encoder, and a generated token grid maps back to pixels and sound without a decoder.
* **LTX-2 (released checkpoint).**  :class:`LTX2VideoCodec` / :class:`LTX2AudioCodec` wrap the
  pipeline's ``AutoencoderKLLTX2Video`` and ``AutoencoderKLLTX2Audio`` + ``LTX2Vocoder`` and
  reuse ``LTX2Pipeline``'s packing and latent normalisation, so tokens are what the released
  transformer expects.

``coords(batch)`` gives the RoPE positions ``[B, 3, N, 2]`` (video: seconds, pixels, pixels) and
``[B, 1, N, 2]`` (audio: seconds) as ``[start, end)`` bounds; both streams use seconds on the time
axis, which is what lets the a2v/v2a cross-attention RoPE line up sound and picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio
from torch import Tensor

__all__ = [
    "AudioCodec",
    "LTX2AudioCodec",
    "LTX2VideoCodec",
    "MelAudioCodec",
    "PatchVideoCodec",
    "VideoCodec",
]


class VideoCodec:
    """Interface: ``[B, T, H, W, 3]`` float video in [0, 1] <-> tokens ``[B, N, C]``."""

    fps: float
    num_frames: int
    height: int
    width: int
    grid: tuple[int, int, int]  # token grid (frames, rows, cols); N = prod(grid)
    channels: int

    @property
    def token_shape(self) -> tuple[int, int]:
        f, h, w = self.grid
        return f * h * w, self.channels

    def encode(self, video: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError

    def coords(self, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
        raise NotImplementedError


class AudioCodec:
    """Interface: mono ``[B, S]`` float waveform <-> tokens ``[B, N, C]``."""

    sample_rate: int
    num_samples: int
    num_tokens: int
    channels: int

    @property
    def token_shape(self) -> tuple[int, int]:
        return self.num_tokens, self.channels

    def encode(self, audio: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError

    def coords(self, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
        raise NotImplementedError


# --------------------------------------------------------------------------- tiny: pixel patches


@dataclass
class PatchVideoCodec(VideoCodec):
    """Pixel patches: ``patch_t`` frames x ``patch`` x ``patch`` pixels x RGB per token.

    Tokens are ordered (frame, row, col) row-major, the order of diffusers' LTX-2 RoPE grid.
    Values are ``2 * pixel - 1``; decoding clamps to [0, 1].
    """

    num_frames: int = 16
    height: int = 32
    width: int = 32
    fps: float = 8.0
    patch_t: int = 2
    patch: int = 8

    def __post_init__(self) -> None:
        if self.num_frames % self.patch_t or self.height % self.patch or self.width % self.patch:
            raise ValueError(
                f"video {self.num_frames}x{self.height}x{self.width} is not divisible by the patch "
                f"{self.patch_t}x{self.patch}x{self.patch}"
            )
        self.grid = (self.num_frames // self.patch_t, self.height // self.patch, self.width // self.patch)
        self.channels = self.patch_t * self.patch * self.patch * 3

    def encode(self, video: Tensor) -> Tensor:
        b = video.shape[0]
        f, h, w = self.grid
        pt, p = self.patch_t, self.patch
        x = video.reshape(b, f, pt, h, p, w, p, 3).permute(0, 1, 3, 5, 2, 4, 6, 7)
        return x.reshape(b, f * h * w, self.channels) * 2.0 - 1.0

    def decode(self, tokens: Tensor) -> Tensor:
        b = tokens.shape[0]
        f, h, w = self.grid
        pt, p = self.patch_t, self.patch
        x = tokens.reshape(b, f, h, w, pt, p, p, 3).permute(0, 1, 4, 2, 5, 3, 6, 7)
        x = x.reshape(b, self.num_frames, self.height, self.width, 3)
        return ((x + 1.0) * 0.5).clamp(0.0, 1.0)

    def coords(self, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
        f, h, w = self.grid
        # Token (i, j, k) shows frames [i*pt, (i+1)*pt) -> seconds; rows/cols in pixels.
        t = torch.arange(f, dtype=torch.float32) * self.patch_t / self.fps
        y = torch.arange(h, dtype=torch.float32) * self.patch
        x = torch.arange(w, dtype=torch.float32) * self.patch
        grid = torch.stack(torch.meshgrid(t, y, x, indexing="ij"), dim=0).flatten(1)  # [3, N]
        size = torch.tensor([self.patch_t / self.fps, self.patch, self.patch]).view(3, 1)
        bounds = torch.stack([grid, grid + size], dim=-1)  # [3, N, 2]
        return bounds.unsqueeze(0).expand(batch_size, -1, -1, -1).to(device)


# --------------------------------------------------------------------------- tiny: log-mel


@dataclass
class MelAudioCodec(AudioCodec):
    """Normalised log-mel tokens, inverted by filterbank pseudo-inverse + Griffin-Lim.

    ``token = (log(mel + floor) - mean) / std`` for ``frames_per_token`` consecutive mel frames x
    ``n_mels`` bins (bins fastest).  The defaults (16 kHz, n_fft 640, hop 320 = 20 ms, 64 mels,
    2 frames per token = 25 tokens/s like the LTX-2 audio latent) were chosen for Griffin-Lim speed
    and fidelity on SynthAV: 64 clips invert in ~0.6 s with 16 iterations at ~6 % relative mel
    error, against ~1.5 s / 10 % for n_fft 1024 (docs/backbone.md).  ``mean``/``std`` centre the
    SynthAV training log-mel (silence sits at the floor, -1.1 after normalisation).
    """

    sample_rate: int = 16000
    num_samples: int = 32000
    n_fft: int = 640
    hop: int = 320
    n_mels: int = 64
    frames_per_token: int = 2
    floor: float = 1e-3
    mean: float = -3.5
    std: float = 3.0
    griffin_lim_iters: int = 16

    def __post_init__(self) -> None:
        frames = self.num_samples // self.hop  # centred STFT has one more; the last is dropped
        if frames % self.frames_per_token:
            raise ValueError(
                f"{frames} mel frames are not divisible by frames_per_token={self.frames_per_token}"
            )
        self.num_frames = frames
        self.num_tokens = frames // self.frames_per_token
        self.channels = self.frames_per_token * self.n_mels
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop, n_mels=self.n_mels, power=1.0
        )
        self._pinv = torch.linalg.pinv(self._mel.mel_scale.fb.T)  # [n_freq, n_mels]
        self._griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=self.n_fft,
            hop_length=self.hop,
            power=1.0,
            n_iter=self.griffin_lim_iters,
            momentum=0.99,
            length=self.num_samples,
            rand_init=False,  # deterministic phase start
        )

    def log_mel(self, audio: Tensor) -> Tensor:
        """Normalised log-mel ``[B, frames, n_mels]``."""
        mel = self._mel.to(audio.device)(audio.float())[..., : self.num_frames]  # [B, n_mels, frames]
        return ((mel + self.floor).log() - self.mean).transpose(1, 2) / self.std

    def encode(self, audio: Tensor) -> Tensor:
        logmel = self.log_mel(audio)
        return logmel.reshape(audio.shape[0], self.num_tokens, self.channels)

    def decode(self, tokens: Tensor) -> Tensor:
        b = tokens.shape[0]
        logmel = tokens.float().reshape(b, self.num_frames, self.n_mels)
        mel = ((logmel * self.std + self.mean).exp() - self.floor).clamp(min=0.0).transpose(1, 2)
        mel = torch.cat([mel, mel[..., -1:]], dim=-1)  # restore the dropped last frame
        spec = (self._pinv.to(mel) @ mel).clamp(min=0.0)
        return self._griffin_lim.to(spec.device)(spec).clamp(-1.0, 1.0)

    def coords(self, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
        # Mel frame j is centred at j*hop/sr; token i holds frames [i*k, (i+1)*k), so its bounds are
        # the frames' centres widened by half a hop on each side (midpoint = mean of the centres).
        hop_s = self.hop / self.sample_rate
        start = torch.arange(self.num_tokens, dtype=torch.float32) * self.frames_per_token * hop_s
        bounds = torch.stack([start - 0.5 * hop_s, start + (self.frames_per_token - 0.5) * hop_s], -1)
        return bounds.view(1, 1, self.num_tokens, 2).expand(batch_size, -1, -1, -1).to(device)


# --------------------------------------------------------------------------- LTX-2 VAEs


def _pipeline_cls():
    from diffusers import LTX2Pipeline

    return LTX2Pipeline


class LTX2VideoCodec(VideoCodec):
    """``AutoencoderKLLTX2Video`` latents, normalised and packed as ``LTX2Pipeline`` does.

    ``num_frames`` must be ``8k + 1`` (causal VAE); the latent grid is
    ``((T - 1)/t_ratio + 1, H/s_ratio, W/s_ratio)`` with transformer patch size 1.
    """

    def __init__(self, vae, num_frames: int, height: int, width: int, fps: float, rope) -> None:
        self.vae = vae
        self.num_frames, self.height, self.width, self.fps = num_frames, height, width, fps
        t, s = vae.temporal_compression_ratio, vae.spatial_compression_ratio
        if (num_frames - 1) % t or height % s or width % s:
            raise ValueError(
                f"LTX-2 video {num_frames}x{height}x{width} needs frames = {t}k+1 and sides divisible by {s}"
            )
        self.grid = ((num_frames - 1) // t + 1, height // s, width // s)
        self.channels = vae.config.latent_channels
        self._rope = rope

    def encode(self, video: Tensor) -> Tensor:
        pipe = _pipeline_cls()
        x = (video.permute(0, 4, 1, 2, 3) * 2.0 - 1.0).to(self.vae.dtype)  # [B, 3, T, H, W]
        latents = self.vae.encode(x).latent_dist.mode()
        latents = pipe._normalize_latents(
            latents, self.vae.latents_mean, self.vae.latents_std, self.vae.config.scaling_factor
        )
        return pipe._pack_latents(latents).float()

    def decode(self, tokens: Tensor) -> Tensor:
        pipe = _pipeline_cls()
        f, h, w = self.grid
        latents = pipe._unpack_latents(tokens, f, h, w)
        latents = pipe._denormalize_latents(
            latents, self.vae.latents_mean, self.vae.latents_std, self.vae.config.scaling_factor
        ).to(self.vae.dtype)
        timestep = None
        if self.vae.config.timestep_conditioning:
            timestep = torch.zeros(tokens.shape[0], dtype=latents.dtype, device=latents.device)
        video = self.vae.decode(latents, timestep, return_dict=False)[0]  # [B, 3, T, H, W]
        video = video[:, :, : self.num_frames].float()
        return ((video + 1.0) * 0.5).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1)

    def coords(self, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
        f, h, w = self.grid
        return self._rope.prepare_video_coords(batch_size, f, h, w, torch.device(device), fps=self.fps)


class LTX2AudioCodec(AudioCodec):
    """``AutoencoderKLLTX2Audio`` latents (normalised, packed [B, L, C*M]) decoded by ``LTX2Vocoder``.

    Decoding follows ``LTX2Pipeline``.  Encoding real audio is an approximation of the released
    front end (log-mel, ``n_fft`` 1024, the VAE's hop and mel count, the mono signal on every
    input channel): good enough for tests and analysis; generation never needs it.
    """

    def __init__(self, audio_vae, vocoder, duration: float, rope) -> None:
        self.vae, self.vocoder = audio_vae, vocoder
        cfg = audio_vae.config
        self.sample_rate = int(cfg.sample_rate)
        self.num_samples = int(round(duration * self.sample_rate))
        self.output_rate = int(getattr(vocoder.config, "output_sampling_rate", self.sample_rate))
        per_second = cfg.sample_rate / cfg.mel_hop_length / audio_vae.temporal_compression_ratio
        self.num_tokens = int(round(duration * per_second))
        self.latent_mels = cfg.mel_bins // audio_vae.mel_compression_ratio
        self.channels = cfg.latent_channels * self.latent_mels
        self._rope = rope
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=1024, hop_length=cfg.mel_hop_length, n_mels=cfg.mel_bins
        )

    def encode(self, audio: Tensor) -> Tensor:
        pipe = _pipeline_cls()
        logmel = (self._mel.to(audio.device)(audio.float()) + 1e-5).log().transpose(1, 2)  # [B, frames, mels]
        frames = self.num_tokens * self.vae.temporal_compression_ratio
        logmel = torch.nn.functional.pad(logmel, (0, 0, 0, max(0, frames - logmel.shape[1])))[:, :frames]
        x = logmel.unsqueeze(1).expand(-1, self.vae.config.in_channels, -1, -1).to(self.vae.dtype)
        latents = self.vae.encode(x).latent_dist.mode()[:, :, : self.num_tokens]
        packed = pipe._pack_audio_latents(latents)
        return pipe._normalize_audio_latents(packed, self.vae.latents_mean, self.vae.latents_std).float()

    def decode(self, tokens: Tensor) -> Tensor:
        pipe = _pipeline_cls()
        latents = pipe._denormalize_audio_latents(tokens, self.vae.latents_mean, self.vae.latents_std)
        latents = pipe._unpack_audio_latents(latents, self.num_tokens, num_mel_bins=self.latent_mels)
        mel = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]
        wave = self.vocoder(mel).float().mean(dim=1)  # [B, S] mono
        if self.output_rate != self.sample_rate:
            wave = torchaudio.functional.resample(wave, self.output_rate, self.sample_rate)
        wave = torch.nn.functional.pad(wave, (0, max(0, self.num_samples - wave.shape[-1])))
        return wave[:, : self.num_samples].clamp(-1.0, 1.0)

    def coords(self, batch_size: int, device: torch.device | str = "cpu") -> Tensor:
        return self._rope.prepare_audio_coords(batch_size, self.num_tokens, torch.device(device))


def to_numpy_clip_arrays(video: Tensor, audio: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Decoded batch -> (uint8 ``[B, T, H, W, 3]``, float32 ``[B, S]``) numpy arrays."""
    v = (video.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    a = audio.detach().float().cpu().numpy().astype(np.float32)
    return v, a
