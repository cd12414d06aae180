"""Region-wise loss reweighting from video->audio cross-attention (OmniNFT, reference.md sec. 1).

During the rollout, on denoising steps with index in [floor(0.5 T), floor(0.9 T)], each block's
``video_to_audio_attn`` (query = audio, key/value = video) yields head-averaged attention
probabilities A = softmax(Q K^T / sqrt(d)) [B, N_audio, N_video]. The score of video token j is
s_j = sum_i A_ij, averaged over the window's steps and the blocks. Per frame, scores are
z-scored over the frame's spatial tokens and mapped to loss weights
a_j = clamp(1 + (w_max - 1) sigmoid((w_max - 1) z_j), 1, w_max), frozen per sample.

Cost: only the column sums [B, N_video] are accumulated, never the maps; each captured call
recomputes the attention's q/k projections (norm + RoPE exactly as
``LTX2AudioVideoAttnProcessor``) under no_grad and forms the probabilities in chunks of audio
queries. Per captured block this adds one k projection of the video tokens (dim -> audio dim)
and one N_audio x N_video score matrix: a few percent of a block, on about half of the rollout
steps, and nothing in the training forward.

Usage (one model forward per denoising step, CFG-free rollouts)::

    with capture_v2a_attention(model, enabled=cfg.region_reweight) as capture:
        for i in range(T):
            capture.set_step(i, T)        # in-window steps are captured
            v = model(...)
    scores = capture.scores()             # [B, N_video], or None when disabled
    weights = region_weights(scores, (F, H, W), w_max_schedule(opt_step))
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.models.transformers.transformer_ltx2 import (
    apply_interleaved_rotary_emb,
    apply_split_rotary_emb,
)
from torch import Tensor, nn

from trainers.surgery import cross_modal_blocks

__all__ = [
    "V2ACapture",
    "attention_probs",
    "capture_v2a_attention",
    "capture_window",
    "region_weights",
    "w_max_schedule",
]

RotaryEmb = tuple[Tensor, Tensor] | None


def capture_window(num_steps: int, start: float = 0.5, end: float = 0.9) -> range:
    """Denoising step indices captured: [floor(start T), floor(end T)] inclusive (T=20: 10..18)."""
    if num_steps <= 0:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    lo = math.floor(start * num_steps)
    hi = min(math.floor(end * num_steps), num_steps - 1)
    return range(lo, hi + 1)


def _project_qk(
    attn: nn.Module,
    hidden_states: Tensor,
    encoder_hidden_states: Tensor,
    query_rotary_emb: RotaryEmb,
    key_rotary_emb: RotaryEmb,
) -> tuple[Tensor, Tensor]:
    """q [B, H, Nq, D] and k [B, H, Nk, D] exactly as LTX2AudioVideoAttnProcessor forms them."""
    query = attn.norm_q(attn.to_q(hidden_states))
    key = attn.norm_k(attn.to_k(encoder_hidden_states))
    if query_rotary_emb is not None:
        key_emb = key_rotary_emb if key_rotary_emb is not None else query_rotary_emb
        if attn.rope_type == "interleaved":
            query = apply_interleaved_rotary_emb(query, query_rotary_emb)
            key = apply_interleaved_rotary_emb(key, key_emb)
        elif attn.rope_type == "split":
            query = apply_split_rotary_emb(query, query_rotary_emb)
            key = apply_split_rotary_emb(key, key_emb)
        else:
            raise ValueError(f"unknown rope_type {attn.rope_type!r}")
    query = query.unflatten(2, (attn.heads, -1)).transpose(1, 2)
    key = key.unflatten(2, (attn.heads, -1)).transpose(1, 2)
    return query, key


@torch.no_grad()
def attention_probs(
    attn: nn.Module,
    hidden_states: Tensor,
    encoder_hidden_states: Tensor,
    query_rotary_emb: RotaryEmb = None,
    key_rotary_emb: RotaryEmb = None,
) -> Tensor:
    """Full softmax(Q K^T / sqrt(d)) [B, H, N_query, N_key] of an LTX2Attention (float32).

    For tests and visualization; the capture uses the chunked column sums instead.
    """
    q, k = _project_qk(attn, hidden_states, encoder_hidden_states, query_rotary_emb, key_rotary_emb)
    scores = q.float() @ k.float().transpose(-1, -2) / math.sqrt(q.shape[-1])
    return scores.softmax(dim=-1)


@torch.no_grad()
def _head_mean_column_sums(q: Tensor, k: Tensor, max_elements: int) -> Tensor:
    """sum_i mean_h softmax(q k^T / sqrt(d))_{h,i,j} -> [B, N_key], chunked over queries."""
    batch, heads, n_query, dim = q.shape
    n_key = k.shape[2]
    chunk = max(1, max_elements // max(1, batch * heads * n_key))
    scale = 1.0 / math.sqrt(dim)
    k = k.float().transpose(-1, -2)
    total = torch.zeros(batch, n_key, dtype=torch.float32, device=q.device)
    for start in range(0, n_query, chunk):
        probs = (q[:, :, start : start + chunk].float() @ k * scale).softmax(dim=-1)
        total += probs.sum(dim=2).mean(dim=1)
    return total


class V2ACapture:
    """Accumulator of video-token scores from video->audio attention (see module docstring).

    ``active`` decides whether a forward is captured; ``set_step`` sets it from the window.
    """

    def __init__(
        self,
        enabled: bool,
        window: tuple[float, float] = (0.5, 0.9),
        max_elements: int = 1 << 24,
    ) -> None:
        self.enabled = enabled
        self.window = window
        self.max_elements = max_elements
        self.active = False
        self._sum: Tensor | None = None
        self.num_captured = 0  # (forward, block) pairs summed into _sum
        self.active_steps: list[int] = []  # steps set_step activated

    def set_step(self, step: int, num_steps: int) -> bool:
        """Activate capture iff ``step`` is in the window for a ``num_steps``-step rollout."""
        self.active = self.enabled and step in capture_window(num_steps, *self.window)
        if self.active:
            self.active_steps.append(step)
        return self.active

    def reset(self) -> None:
        self._sum = None
        self.num_captured = 0
        self.active_steps = []

    def _accumulate(self, column_sums: Tensor) -> None:
        if self._sum is None:
            self._sum = column_sums.clone()
        elif self._sum.shape != column_sums.shape:
            raise RuntimeError(
                f"captured attention changed shape {tuple(self._sum.shape)} -> "
                f"{tuple(column_sums.shape)}: use one capture per rollout batch, one forward per "
                "denoising step"
            )
        else:
            self._sum += column_sums
        self.num_captured += 1

    def scores(self) -> Tensor | None:
        """s_j averaged over captured steps and blocks, [B, N_video] float32; None if disabled."""
        if not self.enabled:
            return None
        if self._sum is None:
            raise RuntimeError(
                "no video->audio attention was captured: call set_step(i, T) before each "
                "denoising forward and make sure the rollout reaches the capture window"
            )
        return self._sum / self.num_captured

    def _hook(self, attn: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not self.active:
            return
        names = (
            "hidden_states",
            "encoder_hidden_states",
            "attention_mask",
            "query_rotary_emb",
            "key_rotary_emb",
        )
        bound = dict(zip(names, args, strict=False))
        bound.update({k: v for k, v in kwargs.items() if k in names})
        if bound.get("attention_mask") is not None:
            raise NotImplementedError("capture of a masked video->audio attention")
        if bound.get("encoder_hidden_states") is None:
            raise RuntimeError("video_to_audio_attn was called without a video context")
        with torch.no_grad():
            q, k = _project_qk(
                attn,
                bound["hidden_states"],
                bound["encoder_hidden_states"],
                bound.get("query_rotary_emb"),
                bound.get("key_rotary_emb"),
            )
            self._accumulate(_head_mean_column_sums(q, k, self.max_elements))


@contextmanager
def capture_v2a_attention(
    model: nn.Module,
    enabled: bool = True,
    window: tuple[float, float] = (0.5, 0.9),
    max_elements: int = 1 << 24,
) -> Iterator[V2ACapture]:
    """Hook every block's video_to_audio_attn inside the block; yields a :class:`V2ACapture`.

    enabled=False installs nothing and ``scores()`` returns None (the ablation switch).
    max_elements bounds the transient probability chunk (B x heads x queries x N_video floats).
    """
    capture = V2ACapture(enabled, window=window, max_elements=max_elements)
    handles = []
    try:
        if enabled:
            for block in cross_modal_blocks(model):
                handles.append(
                    block.video_to_audio_attn.register_forward_pre_hook(
                        capture._hook, with_kwargs=True
                    )
                )
        yield capture
    finally:
        for handle in handles:
            handle.remove()
        capture.active = False


def region_weights(
    scores: Tensor, grid: tuple[int, int, int], w_max: float, eps: float = 1e-6
) -> Tensor:
    """Per-token loss weights a_j in [1, w_max] from video-token scores.

    scores: [B, N_video] with tokens in frame-major order (index = (f * H + h) * W + w, the order
    of LTX-2's patchified latents); grid: (F, H, W) in tokens, F * H * W = N_video.
    z_j = (s_j - mean of its frame) / (population std of its frame + eps);
    a_j = clamp(1 + (w_max - 1) sigmoid((w_max - 1) z_j), 1, w_max). Returned detached (float32):
    weights are computed once at rollout and frozen. w_max = 1 gives all ones. A constant frame
    (z = 0) gets 1 + (w_max - 1) / 2 everywhere.
    """
    if w_max < 1.0:
        raise ValueError(f"w_max must be >= 1, got {w_max}")
    frames, height, width = grid
    batch, n_video = scores.shape
    if frames * height * width != n_video:
        raise ValueError(f"grid {grid} has {frames * height * width} tokens, scores have {n_video}")
    s = scores.detach().float().reshape(batch, frames, height * width)
    mean = s.mean(dim=2, keepdim=True)
    std = s.std(dim=2, keepdim=True, correction=0)
    z = (s - mean) / (std + eps)
    a = 1.0 + (w_max - 1.0) * torch.sigmoid((w_max - 1.0) * z)
    return a.clamp(1.0, w_max).reshape(batch, n_video)


def w_max_schedule(step: int, ramp_steps: int = 400, w_max: float = 1.5) -> float:
    """w_max ramped linearly from 1 at step 0 to ``w_max`` at ``ramp_steps`` optimizer steps."""
    if ramp_steps <= 0:
        return float(w_max)
    return float(1.0 + (w_max - 1.0) * min(max(step, 0) / ramp_steps, 1.0))
