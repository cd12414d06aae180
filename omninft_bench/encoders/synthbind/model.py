"""SynthBind: three small towers (text, video, audio) that embed into one space, ImageBind-style.

Time is shared by construction.  The video tower sees frames at ``fps`` (8) and the audio tower
groups the log-mel frames (hop ``sample_rate / (8 fps)`` samples) eight at a time into ``fps``
tokens per second, so token k of either tower covers ``[k/fps, (k+1)/fps)`` of the same window,
and both add the same learned time embedding.  A window is ``window_s`` (2 s) long: 16 tokens
per modality.  Each tower is a per-step encoder followed by a pre-norm transformer over the
steps with a CLS token:

* text:  word ids -> embedding -> transformer -> CLS -> ``[d]``
* video: frame and frame difference (6 channels, 32x32) -> patch encoder -> transformer ->
  CLS -> clip embedding ``[d]``; every frame token -> per-frame embedding ``[T, d]``
* audio: log-mel (64 bins) -> MLP per 1/8 s -> 16 tokens -> transformer -> CLS -> ``[d]``

Embedding layout (144 dimensions, unit norm): content (96, the CLS read-out) | time code (32) |
video statistics (8) | audio statistics (8).

Time code: per-step event scores (a linear read-out of each step's token, 16 steps x 2
channels), not pooled, so the audio-video dot product contains the zero-lag cross-correlation
of the two event tracks.  That inductive bias is what makes ``av_score`` and JavisScore fall
when the audio is shifted by a quarter second; pooled CLS embeddings alone learned timing far
too slowly on a CPU budget.  Content and time code are normalized separately and weighted so
that the time code holds ``time_share`` (1/4) of the squared norm.  Text fills the content part
only (a caption says what happens, not exactly when).

Statistics: fixed, not learned low-level features (:func:`video_statistics`,
:func:`audio_statistics`), entered as their excess outside the clean training range (see
:meth:`SynthBind._unit`): zero on clean clips, growing with blur, noise, flicker or hiss, so the
realism and distribution metrics see signal damage that contrastive features are blind to.

Per-frame embeddings are the frame's own (contextual) content read-out followed by the clip's
time code, so cos(frame_t, audio) also drops when the audio is out of sync (JavisScore and
AVHScore compare frames with window audio).

This module is pure model code (tensors in, tensors out, no preprocessing of arbitrary media);
``backend.py`` adapts media of any size, rate and length; ``train.py`` trains it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchaudio
from safetensors.torch import load_file, save_file
from torch import nn

from omninft_bench.encoders.synthbind.tokenizer import WordTokenizer

__all__ = [
    "SynthBind",
    "SynthBindSpec",
    "WEIGHTS_DIR",
    "audio_statistics",
    "load_synthbind",
    "save_synthbind",
    "video_statistics",
]

#: Where the shipped weights, their config and the reference statistics live.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "synthbind.safetensors"
CONFIG_FILE = "synthbind.json"

#: Names of the contrastive temperatures (one learnable logit scale each).
PAIRS = ("text_video", "text_frames", "text_audio", "audio_video", "audio_frames", "sync_video", "sync_frames")


@dataclass
class SynthBindSpec:
    """Architecture and signal parameters; saved next to the weights as JSON."""

    content_dim: int = 96  # learned content part of every embedding
    width: int = 128  # hidden width of every tower
    heads: int = 4
    layers: int = 2  # transformer layers per tower
    fps: float = 8.0  # video frame rate = audio token rate
    sample_rate: int = 16000
    window_s: float = 2.0  # one forward pass covers this much time
    frame_size: int = 32  # frames are resized to frame_size x frame_size
    n_mels: int = 64
    n_fft: int = 512
    video_dims: tuple[int, int] = (48, 64)  # frame encoder: patch and merged-patch widths
    audio_hidden: int = 256  # audio token MLP width
    time_channels: int = 2  # per-step event channels of the audio/video time code
    time_share: float = 0.25  # squared norm of the time code in a unit audio/video embedding
    stats_dims: int = 8  # fixed low-level statistics per modality (video block, then audio block)
    stats_scale: float = 0.2  # weight of a statistics block (log-compressed out-of-range excess)
    text_max_len: int = 72
    hash_buckets: int = 32
    vocab: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        """Tokens (video frames, audio steps) per window."""
        return int(round(self.window_s * self.fps))

    @property
    def hop(self) -> int:
        """Mel hop in samples: 8 mel frames make one audio token (1/fps s)."""
        hop = self.sample_rate / (self.fps * 8)
        if abs(hop - round(hop)) > 1e-9:
            raise ValueError(f"sample_rate / (8 * fps) must be an integer, got {hop}")
        return int(round(hop))

    @property
    def dim(self) -> int:
        """Joint embedding width: content, time code, video statistics, audio statistics."""
        return self.content_dim + self.time_dims + 2 * self.stats_dims

    @property
    def time_dims(self) -> int:
        """Trailing embedding dimensions holding the time code (``steps * time_channels``)."""
        return self.steps * self.time_channels

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    def tokenizer(self) -> WordTokenizer:
        return WordTokenizer(self.vocab, hash_buckets=self.hash_buckets, max_len=self.text_max_len)


class _Sequence(nn.Module):
    """CLS token + learned positions + pre-norm transformer; returns ``[B, 1 + L, width]``."""

    def __init__(self, width: int, heads: int, layers: int, max_len: int):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, max_len + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(
        self, tokens: torch.Tensor, pad: torch.Tensor | None = None, time: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``time [1, L_max, width]``: position embeddings of the tokens shared with another tower
        (the CLS slot keeps its own); ``None`` = this sequence's own positions."""
        b, length, _ = tokens.shape
        pos = self.pos if time is None else torch.cat([self.pos[:, :1], time], dim=1)
        if length + 1 > pos.shape[1]:
            raise ValueError(f"sequence of {length} steps is longer than the model's {pos.shape[1] - 1}")
        x = torch.cat([self.cls.expand(b, -1, -1), tokens], dim=1) + pos[:, : length + 1]
        if pad is not None:  # True = ignore; the CLS slot is never padding
            pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=pad.device), pad], dim=1)
        return self.norm(self.encoder(x, src_key_padding_mask=pad))


class _PatchEncoder(nn.Module):
    """Frame encoder: non-overlapping 4x4 patches -> linear, 2x2 patch merge -> linear, then
    one linear layer over the whole 4x4 grid (positions matter: where an object is, whether
    it touches the floor).  Linear layers on reshaped pixels cost a fraction of a CNN on CPU."""

    def __init__(self, channels: int, size: int, dims: tuple[int, int], out: int, patch: int = 4):
        super().__init__()
        if size % (2 * patch):
            raise ValueError(f"frame_size {size} must be a multiple of {2 * patch}")
        self.channels, self.patch, self.grid, self.dims = channels, patch, size // patch, dims
        self.embed = nn.Linear(channels * patch * patch, dims[0])
        self.norm1 = nn.LayerNorm(dims[0])
        self.merge = nn.Linear(4 * dims[0], dims[1])
        self.norm2 = nn.LayerNorm(dims[1])
        self.out = nn.Linear((self.grid // 2) ** 2 * dims[1], out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, S, S]`` -> ``[N, out]``."""
        n, c, g, p = x.shape[0], self.channels, self.grid, self.patch
        x = x.reshape(n, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g, g, c * p * p)
        x = F.gelu(self.norm1(self.embed(x)))
        h = g // 2
        x = x.reshape(n, h, 2, h, 2, self.dims[0]).permute(0, 1, 3, 2, 4, 5).reshape(n, h, h, 4 * self.dims[0])
        x = F.gelu(self.norm2(self.merge(x)))
        return self.out(x.flatten(1))


def _time_code(events: torch.Tensor, steps: int) -> torch.Tensor:
    """Per-step event scores ``[B, T, c]`` (T <= steps) -> the time code ``[B, steps * c]``.

    Audio and video put their codes in the same trailing dimensions, so the dot product of two
    embeddings contains ``sum_k video_k . audio_k``: a zero-lag cross-correlation of the event
    tracks, which falls when the audio moves by even two steps.  Missing steps (a clip shorter
    than the window) are zeros.
    """
    b, t, c = events.shape
    if t < steps:
        events = F.pad(events, (0, 0, 0, steps - t))
    return events.reshape(b, steps * c)


def video_statistics(frames: torch.Tensor) -> torch.Tensor:
    """Fixed low-level statistics of each frame, ``[B, T, 3, S, S]`` in [0, 1] -> ``[B, T, 8]``.

    Luminance mean and contrast, log gradient energy (sharpness), log ratio of Laplacian to
    gradient energy (scale-free sharpness), log median |Laplacian| (noise floor: flat regions of
    a clean render are exactly flat), saturation, |log brightness ratio| to the previous frame,
    and the fraction of pixels that changed since the previous frame (objects move locally;
    a global flicker changes everything).  Classic no-reference quality features in the spirit
    of NIQE/BRISQUE: cheap, not learned, blind to content.
    """
    y = 0.299 * frames[:, :, 0] + 0.587 * frames[:, :, 1] + 0.114 * frames[:, :, 2]  # [B, T, S, S]
    mean = y.mean((-1, -2))
    grad = 0.5 * ((y[..., :, 1:] - y[..., :, :-1]).abs().mean((-1, -2)) + (y[..., 1:, :] - y[..., :-1, :]).abs().mean((-1, -2)))
    lap = (
        4 * y[..., 1:-1, 1:-1] - y[..., :-2, 1:-1] - y[..., 2:, 1:-1] - y[..., 1:-1, :-2] - y[..., 1:-1, 2:]
    ).abs()
    floor = lap.flatten(-2).median(-1).values
    saturation = (frames.amax(2) - frames.amin(2)).mean((-1, -2))
    previous_mean = torch.cat([mean[:, :1], mean[:, :-1]], dim=1)
    previous = torch.cat([y[:, :1], y[:, :-1]], dim=1)
    return torch.stack(
        [
            mean,
            y.std((-1, -2)),
            torch.log(grad + 1e-3),
            torch.log((lap.mean((-1, -2)) + 1e-4) / (grad + 1e-3)),
            torch.log(floor + 1e-4),
            saturation,
            (torch.log(mean + 0.02) - torch.log(previous_mean + 0.02)).abs(),
            ((y - previous).abs() > 1.5 / 255).float().mean((-1, -2)),
        ],
        dim=-1,
    )


def audio_statistics(log_mel: torch.Tensor) -> torch.Tensor:
    """Fixed low-level statistics of a log-mel window, ``[B, M, F]`` -> ``[B, 8]``.

    Frame log-energy: mean, spread, 10th and 90th percentiles (floor and peaks); median
    log-energy of the top 8 mel bands (above ~6 kHz SynthAV sounds are silent, so this is the
    broadband-noise floor); mean spectral flatness;
    median spectral tilt (top- minus bottom-quarter log-energy: room tone is brown, negative;
    digital silence is 0; white noise is positive); mean spectral centroid (mel bins / M).
    """
    power = log_mel.exp()
    energy = torch.log(power.sum(1) + 1e-6)  # [B, F]
    quarter = power.shape[1] // 4
    tilt = torch.log(power[:, -quarter:].sum(1) + 1e-6) - torch.log(power[:, :quarter].sum(1) + 1e-6)
    top = torch.log(power[:, -8:].sum(1) + 1e-6)
    flatness = log_mel.mean(1) - torch.log(power.mean(1))
    bins = torch.arange(power.shape[1], dtype=power.dtype, device=power.device)[None, :, None]
    centroid = (power * bins).sum(1) / power.sum(1) / power.shape[1]
    quantiles = torch.tensor([0.1, 0.9], dtype=energy.dtype, device=energy.device)
    energy_q = torch.quantile(energy, quantiles, dim=1)
    return torch.stack(
        [
            energy.mean(1),
            energy.std(1),
            energy_q[0],
            energy_q[1],
            top.median(1).values,
            flatness.mean(1),
            tilt.median(1).values,
            centroid.mean(1),
        ],
        dim=-1,
    )


class VideoTower(nn.Module):
    def __init__(self, spec: SynthBindSpec):
        super().__init__()
        self.encoder = _PatchEncoder(6, spec.frame_size, spec.video_dims, spec.width)
        self.sequence = _Sequence(spec.width, spec.heads, spec.layers, 0)  # time comes from SynthBind
        self.steps = spec.steps
        self.frame_head = nn.Linear(spec.width, spec.content_dim)
        self.clip_head = nn.Linear(spec.width, spec.content_dim)
        self.time_head = nn.Linear(spec.width, spec.time_channels)

    def forward(self, frames: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, 3, S, S]`` in [0, 1] -> (per-frame ``[B, T, c + t]``, clip ``[B, c + t]``):
        content and time code, unnormalized."""
        b, t = frames.shape[:2]
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        x = torch.cat([(frames - 0.5) / 0.25, (frames - previous) / 0.25], dim=2)
        tokens = self.encoder(x.flatten(0, 1)).view(b, t, -1)
        h = self.sequence(tokens, time=time)
        code = _time_code(self.time_head(h[:, 1:]), self.steps)
        per_frame = torch.cat([self.frame_head(h[:, 1:]), code[:, None].expand(-1, t, -1)], dim=-1)
        return per_frame, torch.cat([self.clip_head(h[:, 0]), code], dim=-1)


class AudioTower(nn.Module):
    def __init__(self, spec: SynthBindSpec):
        super().__init__()
        self.steps = spec.steps
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop, n_mels=spec.n_mels, center=True
        )
        # Log-mel normalization constants, fitted to training audio by train.py.
        self.register_buffer("mel_mean", torch.tensor(0.0))
        self.register_buffer("mel_std", torch.tensor(1.0))
        # One token per 8 mel frames (1/fps s): an MLP over its 8 x n_mels values.
        self.token = nn.Sequential(
            nn.Linear(8 * spec.n_mels, spec.audio_hidden),
            nn.LayerNorm(spec.audio_hidden),
            nn.GELU(),
            nn.Linear(spec.audio_hidden, spec.width),
        )
        self.sequence = _Sequence(spec.width, spec.heads, spec.layers, 0)  # time comes from SynthBind
        self.head = nn.Linear(spec.width, spec.content_dim)
        self.time_head = nn.Linear(spec.width, spec.time_channels)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` (one window) -> ``[B, n_mels, 8 * steps]`` raw log-mel (natural log)."""
        return torch.log(self.mel(wave)[..., : 8 * self.steps] + 1e-6)

    def forward(self, log_mel: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """:meth:`log_mel` output ``[B, n_mels, 8 * steps]`` -> content and time code ``[B, c + t]``."""
        x = (log_mel - self.mel_mean) / self.mel_std
        b, m, f = x.shape
        x = x.reshape(b, m, f // 8, 8).permute(0, 2, 1, 3).reshape(b, f // 8, m * 8)
        h = self.sequence(self.token(x), time=time)
        return torch.cat([self.head(h[:, 0]), _time_code(self.time_head(h[:, 1:]), self.steps)], dim=-1)


class TextTower(nn.Module):
    def __init__(self, spec: SynthBindSpec, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, spec.width, padding_idx=0)
        self.sequence = _Sequence(spec.width, spec.heads, spec.layers, spec.text_max_len)
        self.head = nn.Linear(spec.width, spec.content_dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, L]`` and mask (True = word) -> content ``[B, c]``, unnormalized."""
        return self.head(self.sequence(self.embed(ids), pad=~mask)[:, 0])


class SynthBind(nn.Module):
    """The three towers plus one learnable contrastive logit scale per training pair."""

    def __init__(self, spec: SynthBindSpec):
        super().__init__()
        self.spec = spec
        self.tokenizer = spec.tokenizer()
        self.video = VideoTower(spec)
        self.audio = AudioTower(spec)
        self.text = TextTower(spec, self.tokenizer.size)
        # One table of time embeddings for the audio and the video steps: step k of either tower
        # means the same 1/fps s of the window, which is what synchrony is about.
        self.time = nn.Parameter(torch.randn(1, spec.steps, spec.width) * 0.02)
        self.logit_scale = nn.Parameter(torch.full((len(PAIRS),), math.log(1 / 0.07)))
        # Clean range [lo, hi] and unit of each low-level statistic, fitted by train.py.
        for name in ("video", "audio"):
            self.register_buffer(f"{name}_stats_lo", torch.full((spec.stats_dims,), -math.inf))
            self.register_buffer(f"{name}_stats_hi", torch.full((spec.stats_dims,), math.inf))
            self.register_buffer(f"{name}_stats_unit", torch.ones(spec.stats_dims))

    def _unit(self, x: torch.Tensor, stats: torch.Tensor, block: int) -> torch.Tensor:
        """Assemble a unit embedding from content + time code ``x`` and raw statistics.

        Content and time code are normalized separately and weighted so the time code holds a
        fixed ``time_share`` of the squared norm (text, which cannot know timing, then loses only
        a constant factor to it).  The statistics go into their modality's block (``block`` 0 =
        video, 1 = audio; the other block is zero) as the log-compressed distance by which each
        lies *outside* the range it takes on clean training clips (0 inside it), and the whole
        vector is renormalized.  So a clean clip's block is zero and changes no similarity, while
        damage that clean renders never show (blur, noise, flicker, hiss) moves the embedding
        off the reference cloud.
        """
        spec = self.spec
        content = F.normalize(x[..., : spec.content_dim], dim=-1) * math.sqrt(1.0 - spec.time_share)
        time = F.normalize(x[..., spec.content_dim :], dim=-1) * math.sqrt(spec.time_share)
        name = "video" if block == 0 else "audio"
        lo, hi, unit = (getattr(self, f"{name}_stats_{k}") for k in ("lo", "hi", "unit"))
        excess = (F.relu(stats - hi) - F.relu(lo - stats)) / unit
        values = spec.stats_scale * torch.sign(excess) * torch.log1p(excess.abs())
        zeros = torch.zeros_like(values)
        blocks = [values, zeros] if block == 0 else [zeros, values]
        return F.normalize(torch.cat([content, time, *blocks], dim=-1), dim=-1)

    def encode_video(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, 3, S, S]`` -> unit-norm (per-frame ``[B, T, d]``, clip ``[B, d]``)."""
        per_frame, clip = self.video(frames, self.time)
        stats = video_statistics(frames)  # [B, T, k]
        return self._unit(per_frame, stats, 0), self._unit(clip, stats.mean(1), 0)

    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, window_samples]`` -> unit-norm ``[B, d]``."""
        return self.encode_log_mel(self.audio.log_mel(wave))

    def encode_log_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, n_mels, 8 * steps]`` (:meth:`AudioTower.log_mel`) -> unit-norm ``[B, d]``."""
        return self._unit(self.audio(log_mel, self.time), audio_statistics(log_mel), 1)

    def encode_text_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids and mask -> unit-norm ``[B, d]``: content only (zero time code, no statistics)."""
        content = F.normalize(self.text(ids, mask), dim=-1)
        return F.pad(content, (0, self.spec.dim - self.spec.content_dim))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """``n`` strings -> unit-norm ``[n, d]``."""
        ids, mask = self.tokenizer(texts)
        device = self.logit_scale.device
        return self.encode_text_ids(ids.to(device), mask.to(device))

    def scale(self, pair: str) -> torch.Tensor:
        return self.logit_scale[PAIRS.index(pair)].clamp(max=math.log(100.0)).exp()


# --------------------------------------------------------------------------- files


def save_synthbind(model: SynthBind, directory: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``synthbind.safetensors`` and ``synthbind.json`` (spec + ``info``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    payload = {"spec": dataclasses.asdict(model.spec), "info": info or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return directory / WEIGHTS_FILE


def load_synthbind(path: str | Path | None = None, device: str | torch.device = "cpu") -> SynthBind:
    """Load SynthBind in eval mode from a weights file (its JSON config beside it) or a directory;
    ``None`` = the shipped weights."""
    path = Path(path) if path else WEIGHTS_DIR
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    config = weights.with_name(CONFIG_FILE) if path.is_dir() else weights.with_suffix(".json")
    if not weights.is_file():
        raise FileNotFoundError(f"SynthBind weights not found: {weights}")
    if not config.is_file():
        raise FileNotFoundError(f"SynthBind config not found next to the weights: {config}")
    spec = SynthBindSpec(**json.loads(config.read_text(encoding="utf-8"))["spec"])
    model = SynthBind(spec)
    model.load_state_dict(load_file(str(weights)))
    return model.to(device).eval()


def read_info(path: str | Path | None = None) -> dict[str, Any]:
    """The ``info`` block (training metadata) of a weights directory's JSON config."""
    path = Path(path) if path else WEIGHTS_DIR
    config = path / CONFIG_FILE if path.is_dir() else Path(path).with_suffix(".json")
    return json.loads(config.read_text(encoding="utf-8")).get("info", {})
