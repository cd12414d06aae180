"""Layer-wise gradient surgery on the audio->video cross-attention (OmniNFT, reference.md sec. 1).

In every LTX-2 block, ``audio_to_video_attn`` takes the video stream as query and the audio
stream as key/value context::

    block.audio_to_video_attn(mod_norm_video, encoder_hidden_states=mod_norm_audio, ...)

(diffusers 0.42.1 ``LTX2VideoTransformerBlock.forward``, step 3.2; ``LTX2Attention.forward``
takes the context as its second argument ``encoder_hidden_states``). A forward pre-hook replaces
that context c by ``c.detach() + s_b * (c - c.detach())``: the forward value is unchanged, the
gradient flowing from the video loss back into the audio stream through block b's a2v path is
scaled by s_b, and the attention's own K/V projection weights still get their full gradient
(surgery, not a parameter freeze). Query side and video->audio direction are untouched.

Install the hooks only around the training forward pass (rollouts stay untouched)::

    with gradient_surgery(model, surgery_schedule(num_blocks), enabled=cfg.surgery):
        v_video, v_audio = model(...)
    loss.backward()

The scaling is recorded in the autograd graph during the forward, so backward may run after the
block exits. That holds with diffusers' gradient checkpointing too (non-reentrant: the recompute
only restores saved activations; tested). With reentrant checkpointing (use_reentrant=True)
the backward rebuilds the graph, so call backward inside the block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

__all__ = [
    "RELEASED_SCHEDULE_48",
    "cross_modal_blocks",
    "gradient_surgery",
    "scale_gradient",
    "surgery_schedule",
]

#: The released 48-block schedule: block 0 hard stop, 1-10 weak, 11-39 the "AV-sync zone" at
#: full gradient, 40-47 damped.
RELEASED_SCHEDULE_48: tuple[float, ...] = (0.0,) + (0.1,) * 10 + (1.0,) * 29 + (0.3,) * 8

_SHALLOW_FRACTION = 11 / 48  # blocks [0, 11) are "shallow" (block 0 itself: 0.0)
_DEEP_FRACTION = 8 / 48  # the last 8 of 48 blocks are "deep"


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def surgery_schedule(
    num_blocks: int, scales: Sequence[float] | float | None = None
) -> tuple[float, ...]:
    """Per-block gradient scales s_b for the a2v context.

    scales=None: the released 48-block schedule's shape scaled to ``num_blocks``: block 0 -> 0.0;
    blocks 1 .. round(11/48 L) - 1 -> 0.1; the last round(8/48 L) blocks -> 0.3; the rest -> 1.0
    (L = 48 reproduces :data:`RELEASED_SCHEDULE_48`; L = 4 gives (0, 1, 1, 0.3); L = 8 gives
    (0, 0.1, 1, 1, 1, 1, 1, 0.3)). Block 0 keeps its hard stop whatever the depth; at small depth
    the shallow and deep zones shrink (rounded half up) before the middle zone does.
    scales=float: that scale for every block. scales=sequence: explicit, one per block.
    """
    if num_blocks <= 0:
        raise ValueError(f"num_blocks must be positive, got {num_blocks}")
    if scales is None:
        shallow_end = max(1, _round_half_up(_SHALLOW_FRACTION * num_blocks))
        deep_start = max(shallow_end, num_blocks - _round_half_up(_DEEP_FRACTION * num_blocks))
        out = []
        for b in range(num_blocks):
            if b == 0:
                out.append(0.0)
            elif b < shallow_end:
                out.append(0.1)
            elif b >= deep_start:
                out.append(0.3)
            else:
                out.append(1.0)
        return tuple(out)
    if isinstance(scales, int | float):
        scales = [float(scales)] * num_blocks
    scales = tuple(float(s) for s in scales)
    if len(scales) != num_blocks:
        raise ValueError(f"schedule has {len(scales)} entries for {num_blocks} blocks")
    bad = [(b, s) for b, s in enumerate(scales) if not math.isfinite(s) or s < 0]
    if bad:
        raise ValueError(f"gradient scales must be finite and >= 0, got (block, scale) {bad}")
    return scales


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity in the forward, gradient multiplied by ``scale`` in the backward.

    The released form x.detach() + s * (x - x.detach()); s = 1 returns x itself (no graph op).
    """
    if scale == 1.0:
        return x
    detached = x.detach()
    return detached + scale * (x - detached)


def cross_modal_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's dual-stream blocks (modules with audio_to_video_attn and video_to_audio_attn),
    in registration order (= execution order for LTX2VideoTransformer3DModel.transformer_blocks).
    Works through wrappers (our Backbone, PEFT) since it walks ``model.modules()``."""
    blocks = [
        m
        for m in model.modules()
        if isinstance(getattr(m, "audio_to_video_attn", None), nn.Module)
        and isinstance(getattr(m, "video_to_audio_attn", None), nn.Module)
    ]
    if not blocks:
        raise ValueError(
            f"{type(model).__name__} has no block with audio_to_video_attn/video_to_audio_attn"
        )
    return blocks


def _make_hook(scale: float, block_index: int):
    def hook(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # LTX2VideoTransformerBlock passes the audio context as a keyword; accept the positional
        # form of LTX2Attention.forward(hidden_states, encoder_hidden_states, ...) too.
        if kwargs.get("encoder_hidden_states") is not None:
            kwargs = dict(kwargs)
            kwargs["encoder_hidden_states"] = scale_gradient(kwargs["encoder_hidden_states"], scale)
        elif len(args) >= 2 and args[1] is not None:
            args = (args[0], scale_gradient(args[1], scale), *args[2:])
        else:
            raise RuntimeError(
                f"block {block_index}: audio_to_video_attn was called without an audio context "
                "(encoder_hidden_states); gradient surgery cannot find the a2v path"
            )
        return args, kwargs

    return hook


@contextmanager
def gradient_surgery(
    model: nn.Module,
    schedule: Sequence[float] | float | None = None,
    enabled: bool = True,
) -> Iterator[tuple[float, ...]]:
    """Install the a2v context-gradient hooks on every block for the duration of the block.

    schedule: per-block scales (see :func:`surgery_schedule`; None = the scaled released
    schedule; a float = uniform). Blocks whose scale is 1.0 get no hook. enabled=False installs
    nothing (the ablation switch). Yields the schedule in use (all ones when disabled).
    """
    blocks = cross_modal_blocks(model)
    scales = surgery_schedule(len(blocks), schedule)
    if not enabled:
        yield (1.0,) * len(blocks)
        return
    handles = []
    try:
        for b, (block, scale) in enumerate(zip(blocks, scales, strict=True)):
            if scale != 1.0:
                handles.append(
                    block.audio_to_video_attn.register_forward_pre_hook(
                        _make_hook(scale, b), with_kwargs=True
                    )
                )
        yield scales
    finally:
        for handle in handles:
            handle.remove()
