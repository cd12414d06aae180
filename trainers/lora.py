"""LoRA adapters for RL post-training, through diffusers' PEFT integration.

OmniNFT trains LoRA (r=32, alpha=64) on LTX-2's video, audio and A2V/V2A attention projections
and both feed-forward networks (reference.md section 1).  :func:`add_lora` injects such adapters
into an LTX-2 transformer (``ModelMixin.add_adapter``) and freezes everything else.  The frozen
base weights then *are* the reference model of the KL term: :func:`adapters_disabled` runs the
transformer without its adapters, so no second copy of a 19 B model is ever made.

Module names follow ``diffusers.LTX2VideoTransformerBlock``: ``attn1`` / ``audio_attn1`` are the
streams' self-attention, ``attn2`` / ``audio_attn2`` their text cross-attention,
``audio_to_video_attn`` / ``video_to_audio_attn`` the cross-modal attention, ``ff`` / ``audio_ff``
the feed-forward networks.  Our reading of "video, audio ... attention projections": the two
self-attentions; text cross-attention keeps its pretrained weights (add ``attn2`` and
``audio_attn2`` to ``targets`` to adapt them too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

__all__ = ["DEFAULT_TARGETS", "adapters_disabled", "add_lora", "target_modules"]

#: Block sub-modules whose linear layers get adapters (OmniNFT's released choice, see above).
DEFAULT_TARGETS: tuple[str, ...] = (
    "attn1", "audio_attn1", "audio_to_video_attn", "video_to_audio_attn", "ff", "audio_ff",
)
_ATTENTION_LINEARS = ("to_q", "to_k", "to_v", "to_out.0")
_FF_LINEARS = ("net.0.proj", "net.2")


def target_modules(model: nn.Module, targets: Sequence[str] = DEFAULT_TARGETS) -> list[str]:
    """Full names of the ``nn.Linear`` layers that :func:`add_lora` adapts.

    ``targets`` are block sub-module names (``attn1``, ``ff``, ...).  An unknown name, or one that
    matches no linear layer in any ``transformer_blocks.N``, is an error naming the valid ones.
    """
    if not targets:
        raise ValueError("train.lora_targets is empty; name at least one block module, e.g. [attn1,ff]")
    pattern = re.compile(r"transformer_blocks\.\d+\.([A-Za-z0-9_]+)\.(.+)")
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        m = pattern.fullmatch(name)
        if m and isinstance(module, nn.Linear) and m.group(2) in _ATTENTION_LINEARS + _FF_LINEARS:
            found.setdefault(m.group(1), []).append(name)
    missing = [t for t in targets if t not in found]
    if missing:
        raise ValueError(
            f"train.lora_targets: no block module named {missing}; choose from {sorted(found)}"
        )
    return [name for t in targets for name in found[t]]


def add_lora(model: nn.Module, rank: int, alpha: float = 0.0, targets: Sequence[str] = DEFAULT_TARGETS,
             adapter_name: str = "omninft") -> list[nn.Parameter]:
    """Inject LoRA adapters of ``rank`` into ``model`` in place; freeze every other parameter.

    ``alpha`` 0 means 2 x rank (the released 64 for r=32).  B starts at zero, so the adapted model
    computes exactly what the base computed until the first update.  Returns the adapter
    parameters (the only ones with ``requires_grad``).
    """
    from peft import LoraConfig

    if rank <= 0:
        raise ValueError(f"train.lora_rank={rank}; a LoRA rank must be positive (0 means full fine-tuning)")
    if not hasattr(model, "add_adapter"):
        raise TypeError(f"{type(model).__name__} has no PEFT integration (diffusers ModelMixin.add_adapter)")
    names = target_modules(model, targets)
    model.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha or 2.0 * rank, target_modules=names, init_lora_weights=True)
    model.add_adapter(config, adapter_name=adapter_name)
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return params


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` as its frozen base (the reference policy) inside the block."""
    model.disable_adapters()
    try:
        yield model
    finally:
        model.enable_adapters()
