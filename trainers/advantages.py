"""Advantages for OmniNFT: per-reward group normalization and modality-wise routing.

Pure tensor functions, no model and no state. The RL loop calls them in this order::

    per_reward = {name: group_advantages(R[name], group_ids).advantages for name in R}
    routed = route_advantages(per_reward, weights, modalities, mode="routing")   # or "gdpo"
    # or, for DiffusionNFT's own multi-reward recipe:
    routed = nft_advantage(R, weights, group_ids)
    r_video = optimality_probability(routed.video)
    r_audio = optimality_probability(routed.audio)

Formulas: docs reference.md sections 1 (routing, GDPO) and 2 (normalization, r).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "AUDIO_BRANCH",
    "MODALITIES",
    "ROUTING_MODES",
    "VIDEO_BRANCH",
    "GroupAdvantages",
    "RoutedAdvantages",
    "group_advantages",
    "nft_advantage",
    "optimality_probability",
    "route_advantages",
]

#: Modality tags a reward may declare (omninft_bench.rewards).
MODALITIES = frozenset({"video", "audio", "sync", "text_video", "text_audio"})
#: Tags whose advantages reach the video branch; "sync" (joint) rewards reach both branches.
VIDEO_BRANCH = frozenset({"video", "text_video", "sync"})
#: Tags whose advantages reach the audio branch.
AUDIO_BRANCH = frozenset({"audio", "text_audio", "sync"})
ROUTING_MODES = ("routing", "gdpo", "nft")
RoutingMode = Literal["routing", "gdpo", "nft"]


@dataclass(frozen=True)
class GroupAdvantages:
    """Result of :func:`group_advantages`.

    advantages: [B] float32, exactly 0 where the reward was invalid (never NaN).
    valid: [B] bool, False where the raw reward was NaN/inf.
    num_valid: number of valid entries (the statistics use only these).
    """

    advantages: Tensor
    valid: Tensor
    num_valid: int


@dataclass(frozen=True)
class RoutedAdvantages:
    """Per-branch advantages, each [B]. ``valid`` is set only where it is known (nft)."""

    video: Tensor
    audio: Tensor
    valid: Tensor | None = None


def _group_index(groups: Tensor | int, batch_size: int, device: torch.device) -> Tensor:
    """Map ``groups`` (ids [B] or a group size) to contiguous group indices [B] in [0, G)."""
    if isinstance(groups, int):
        if groups <= 0 or batch_size % groups != 0:
            raise ValueError(
                f"group_size={groups} must be positive and divide the batch size {batch_size}"
            )
        return torch.arange(batch_size, device=device) // groups
    ids = torch.as_tensor(groups, device=device)
    if ids.shape != (batch_size,):
        raise ValueError(f"group_ids must have shape [{batch_size}], got {tuple(ids.shape)}")
    return torch.unique(ids, return_inverse=True)[1]


def group_advantages(
    rewards: Tensor, groups: Tensor | int, eps: float = 1e-4, valid: Tensor | None = None
) -> GroupAdvantages:
    """A = (R - mean of R over the prompt's group) / (std of R over the whole batch + eps).

    rewards: [B]; NaN/inf marks a failed reward. groups: group ids [B] (any integers; equal id =
    same prompt) or an int group size for contiguous groups (sample i is in group i // size).
    valid: optional bool [B] (e.g. ``RewardResult.valid``); an entry is used only if it is
    finite AND valid.

    The std is the population std (ddof=0, as np.std in the released stat tracker) over the valid
    entries of the whole batch ("global std", reference.md section 1). Departure from the
    released code, which lets a NaN poison the whole batch: invalid entries are excluded from
    both the group mean and the batch std and get advantage 0 (neutral, r = 0.5), reported in
    ``valid``/``num_valid``. A group (or batch) with a single valid entry gets advantage 0.
    """
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    batch_size = rewards.shape[0]
    index = _group_index(groups, batch_size, rewards.device)
    num_groups = int(index.max()) + 1 if batch_size else 0

    values = rewards.detach().to(torch.float64)
    ok = torch.isfinite(values)
    if valid is not None:
        ok = ok & torch.as_tensor(valid, dtype=torch.bool, device=values.device)
    valid = ok
    clean = torch.where(valid, values, torch.zeros_like(values))
    weight = valid.to(torch.float64)

    group_count = torch.zeros(num_groups, dtype=torch.float64, device=values.device)
    group_sum = torch.zeros_like(group_count)
    group_count.index_add_(0, index, weight)
    group_sum.index_add_(0, index, clean)
    group_mean = group_sum / group_count.clamp(min=1.0)

    num_valid = int(weight.sum())
    if num_valid > 0:
        batch_mean = clean.sum() / num_valid
        batch_std = torch.sqrt(((clean - batch_mean) ** 2 * weight).sum() / num_valid)
    else:
        batch_std = torch.zeros((), dtype=torch.float64, device=values.device)

    adv = (clean - group_mean[index]) / (batch_std + eps)
    adv = torch.where(valid, adv, torch.zeros_like(adv))
    return GroupAdvantages(advantages=adv.to(torch.float32), valid=valid, num_valid=num_valid)


def _modality_of(name: str, modalities: Mapping[str, object]) -> str:
    """The declared modality tag of reward ``name``; accepts str or str-valued enums."""
    if name not in modalities:
        raise KeyError(
            f"reward {name!r} has no declared modality; declare one of {sorted(MODALITIES)}"
        )
    tag = modalities[name]
    tag = str(getattr(tag, "value", tag))
    if tag not in MODALITIES:
        raise ValueError(
            f"reward {name!r} declares modality {tag!r}, which cannot be routed; "
            f"expected one of {sorted(MODALITIES)}"
        )
    return tag


def _check_weights(names: set[str], weights: Mapping[str, float]) -> None:
    missing = sorted(names - set(weights))
    if missing:
        raise KeyError(f"no weight given for reward(s) {missing}")
    # A weight for a reward that produced nothing is almost always a typo in the config.
    extra = sorted(set(weights) - names)
    if extra:
        raise KeyError(f"weight given for unknown reward(s) {extra}; rewards are {sorted(names)}")
    for name in names:
        if not math.isfinite(float(weights[name])):
            raise ValueError(f"weight of reward {name!r} is not finite: {weights[name]}")


def route_advantages(
    per_reward_adv: Mapping[str, Tensor],
    weights: Mapping[str, float],
    modalities: Mapping[str, object],
    mode: RoutingMode = "routing",
) -> RoutedAdvantages:
    """Combine per-reward advantages A_k [B] into the advantages of the two branches.

    mode="routing" (OmniNFT): A_video = sum_{k in video, text_video, sync} w_k A_k and
    A_audio = sum_{k in audio, text_audio, sync} w_k A_k. A branch no reward reaches gets zeros
    (r = 0.5: its loss still regularizes towards the old policy but carries no preference).
    mode="gdpo": one shared A = sum_k w_k A_k for both branches (modalities still validated).
    mode="nft" needs raw rewards, not advantages: use :func:`nft_advantage`.

    Departure from the released code: the branch comes from the reward's declared modality
    (``modalities[name]``), and a reward without a routable modality is an error naming it,
    never a silent default to "sync". Every reward needs a weight and every weight a reward.
    """
    if mode == "nft":
        raise ValueError(
            "mode='nft' normalizes the weighted sum of RAW rewards; call "
            "nft_advantage(raw_rewards, weights, group_ids) instead of route_advantages"
        )
    if mode not in ROUTING_MODES:
        raise ValueError(f"unknown routing mode {mode!r}; expected one of {ROUTING_MODES}")
    if not per_reward_adv:
        raise ValueError("per_reward_adv is empty: at least one reward is needed")
    names = set(per_reward_adv)
    _check_weights(names, weights)
    tags = {name: _modality_of(name, modalities) for name in sorted(names)}

    shapes = {tuple(a.shape) for a in per_reward_adv.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"every advantage must have the same shape [B], got {sorted(shapes)}")
    first = next(iter(per_reward_adv.values()))
    video = torch.zeros(first.shape, dtype=torch.float32, device=first.device)
    audio = torch.zeros_like(video)
    for name in sorted(names):
        adv = per_reward_adv[name].detach().to(torch.float32)
        if not torch.isfinite(adv).all():
            raise ValueError(
                f"advantage of reward {name!r} contains NaN/inf; compute it with "
                "group_advantages, which zeroes invalid samples"
            )
        contribution = float(weights[name]) * adv
        if mode == "gdpo" or tags[name] in VIDEO_BRANCH:
            video = video + contribution
        if mode == "gdpo" or tags[name] in AUDIO_BRANCH:
            audio = audio + contribution
    return RoutedAdvantages(video=video, audio=audio)


def nft_advantage(
    raw_rewards: Mapping[str, Tensor],
    weights: Mapping[str, float],
    groups: Tensor | int,
    eps: float = 1e-4,
) -> RoutedAdvantages:
    """DiffusionNFT's multi-reward recipe: group-normalize sum_k w_k R_k (one advantage).

    The same advantage goes to both branches. A sample with any invalid (NaN) raw reward is
    invalid as a whole: it gets advantage 0 and ``valid`` False (see :func:`group_advantages`).
    """
    if not raw_rewards:
        raise ValueError("raw_rewards is empty: at least one reward is needed")
    _check_weights(set(raw_rewards), weights)
    total = None
    for name in sorted(raw_rewards):
        term = float(weights[name]) * raw_rewards[name].detach().to(torch.float64)
        total = term if total is None else total + term
    result = group_advantages(total, groups, eps=eps)
    return RoutedAdvantages(video=result.advantages, audio=result.advantages, valid=result.valid)


def optimality_probability(adv: Tensor, clip: float = 5.0) -> Tensor:
    """r = clip(clip(A, -clip, clip) / clip / 2 + 0.5, 0, 1), the NFT optimality probability.

    A = 0 maps to r = 0.5 (no preference), A >= clip to 1 (pure positive), A <= -clip to 0.
    """
    if clip <= 0:
        raise ValueError(f"clip must be positive, got {clip}")
    adv = adv.detach().clamp(-clip, clip)
    return (adv / clip / 2.0 + 0.5).clamp(0.0, 1.0)
