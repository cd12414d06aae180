"""DiffusionNFT objective, one modality branch at a time (pure functions).

Conventions (reference.md sections 1-2): x_t = (1 - t) x0 + t eps with t (= sigma) in [0, 1];
the model predicts the velocity v = eps - x0, so x0_hat = x_t - t v. Token tensors are [B, N, C];
t and the optimality probability r are [B].

Two forms of the same objective:

* :func:`nft_loss` -- the released code's x0-space form with adaptive weighting (what OmniNFT
  trains with): per sample 5 * (r L_pos + (1 - r) L_neg) / beta, L_pos = mean((x0_pos - x0)^2) /
  sg(mean |x0_pos - x0|). Since x0_pos - x0 = -t (v_pos - v), this is the velocity form times
  t^2 / w_pos per term (and times adv_clip / beta).
* :func:`nft_loss_velocity` -- the paper's form r ||v_pos - v||^2 + (1 - r) ||v_neg - v||^2,
  for tests and ablations.

Gradients reach the loss only through ``v_theta``: every other input is detached here, so the
caller does not have to remember which ones are stop-gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "NFTLoss",
    "implicit_policies",
    "nft_loss",
    "nft_loss_velocity",
    "omninft_total",
]


@dataclass(frozen=True)
class NFTLoss:
    """Loss of one branch.

    total = policy + kl_coef * kl (scalars; ``total`` is what a single-branch DiffusionNFT
    would backpropagate; OmniNFT combines branches with :func:`omninft_total`).
    Per-sample diagnostics [B]: ``policy_per_sample``, ``kl_per_sample``, ``loss_pos``,
    ``loss_neg`` (after adaptive weighting), ``weight_pos``, ``weight_neg`` (the detached
    adaptive weights; ones in the velocity form).
    """

    total: Tensor
    policy: Tensor
    kl: Tensor
    policy_per_sample: Tensor
    kl_per_sample: Tensor
    loss_pos: Tensor
    loss_neg: Tensor
    weight_pos: Tensor
    weight_neg: Tensor


def implicit_policies(v_theta: Tensor, v_old: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """v_pos = beta v_theta + (1 - beta) sg(v_old); v_neg = (1 + beta) sg(v_old) - beta v_theta."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    v_old = v_old.detach()
    v_pos = beta * v_theta + (1.0 - beta) * v_old
    v_neg = (1.0 + beta) * v_old - beta * v_theta
    return v_pos, v_neg


def _per_sample(t: Tensor, batch_size: int, ndim: int, name: str) -> Tensor:
    """Broadcast a scalar / [B] / [B, 1, ...] tensor to [B, 1, ..., 1] float32, detached."""
    t = torch.as_tensor(t).detach().to(torch.float32)
    if t.numel() == 1:
        t = t.reshape(1).expand(batch_size)
    t = t.reshape(-1)
    if t.shape[0] != batch_size:
        raise ValueError(f"{name} must have one value per sample ({batch_size}), got {t.numel()}")
    return t.reshape(batch_size, *([1] * (ndim - 1)))


def _token_mean(sq: Tensor, token_weights: Tensor | None) -> Tensor:
    """Per-sample mean over tokens and channels of sq [B, N, ...]; token-weighted if given.

    The weighted mean is normalized, sum_j a_j e_j / sum_j a_j: region weights then move the
    loss between tokens of a sample without changing the branch's overall scale. (An
    unnormalized mean(a e) would also raise the video branch's effective learning rate by up to
    w_max relative to the audio branch and to the GDPO baseline as w_max ramps up.)
    """
    if token_weights is None:
        return sq.flatten(1).mean(dim=1)
    per_token = sq.flatten(2).mean(dim=2)  # [B, N]
    a = token_weights.detach().to(per_token.dtype)
    if a.shape != per_token.shape:
        raise ValueError(
            f"token_weights must have shape {tuple(per_token.shape)}, got {tuple(a.shape)}"
        )
    return (a * per_token).sum(dim=1) / a.sum(dim=1).clamp(min=1e-12)


def _check_inputs(x0: Tensor, **others: Tensor | None) -> None:
    if x0.ndim < 2:
        raise ValueError(f"x0 must be [B, N, C] (at least 2-D), got shape {tuple(x0.shape)}")
    for name, value in others.items():
        if value is not None and value.shape != x0.shape:
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {tuple(x0.shape)}")

def _result(
    policy_per_sample: Tensor,
    kl_per_sample: Tensor,
    kl_coef: float,
    loss_pos: Tensor,
    loss_neg: Tensor,
    weight_pos: Tensor,
    weight_neg: Tensor,
) -> NFTLoss:
    """Batch means and the total, shared by the x0-space and velocity forms."""
    policy = policy_per_sample.mean()
    kl = kl_per_sample.mean()
    return NFTLoss(
        total=policy + kl_coef * kl,
        policy=policy,
        kl=kl,
        policy_per_sample=policy_per_sample,
        kl_per_sample=kl_per_sample,
        loss_pos=loss_pos,
        loss_neg=loss_neg,
        weight_pos=weight_pos,
        weight_neg=weight_neg,
    )


def nft_loss(
    x0: Tensor,
    x_t: Tensor,
    t: Tensor,
    v_theta: Tensor,
    v_old: Tensor,
    v_ref: Tensor | None,
    r: Tensor,
    beta: float = 1.0,
    token_weights: Tensor | None = None,
    kl_coef: float = 1e-4,
    adv_clip: float = 5.0,
    min_weight: float = 1e-5,
) -> NFTLoss:
    """DiffusionNFT loss of one branch in the released code's x0 form with adaptive weighting.

    x0 [B, N, C]: clean tokens of the rollout; x_t [B, N, C]: its noised version at t [B];
    v_theta: current prediction (carries the gradient); v_old: sampling (old) policy; v_ref:
    reference model or None (no KL); r [B]: optimality probability; beta: guidance strength of
    the implicit policies; token_weights [B, N]: region weights a_j (video branch) or None;
    adv_clip: the released code's loss scale (= the advantage clip, 5), keep it equal to
    ``optimality_probability``'s clip.

    Per sample: x0_pos = x_t - t v_pos, w_pos = sg(mean |x0_pos - x0|) clamped >= min_weight,
    L_pos = token-weighted mean((x0_pos - x0)^2) / w_pos (same for the negative policy);
    policy = adv_clip * (r L_pos + (1 - r) L_neg) / beta; policy is the batch mean.

    KL: mean over tokens of ||x0_theta - x0_ref||^2 (OmniNFT, reference.md section 1: MSE between
    x0-predictions). DiffusionNFT (section 2) writes it in v, ||v_theta - v_ref||^2; the two differ
    by a factor t^2 per sample, so here the KL pulls hardest at high noise. The KL is an
    unweighted token mean even when token weights are given (it regularizes the whole sample).

    Adaptive weight and region weights: w_pos/w_neg use the UNWEIGHTED mean |x0_hat - x0|.
    The adaptive weight is a per-sample normalizer of the error scale at this noise level; keeping
    it independent of the region weights means (a) with region reweighting off the normalizer is
    bit-identical to the GDPO baseline's, so the ablation changes only the numerator, and (b) a
    weighted normalizer would grow exactly when the up-weighted (sync-relevant) tokens have the
    larger errors and so cancel part of the emphasis the region weights are meant to add.
    All arithmetic is float32 (the released code computes the weight in float64; float32 is
    ample for a clamped L1 mean).
    """
    _check_inputs(x0, x_t=x_t, v_theta=v_theta, v_old=v_old, v_ref=v_ref)
    batch_size, ndim = x0.shape[0], x0.ndim
    x0 = x0.detach().float()
    x_t = x_t.detach().float()
    t = _per_sample(t, batch_size, ndim, "t")
    r = _per_sample(r, batch_size, 1, "r")
    v_theta32 = v_theta.float()

    v_pos, v_neg = implicit_policies(v_theta32, v_old.float(), beta)
    err_pos = x_t - t * v_pos - x0
    err_neg = x_t - t * v_neg - x0
    with torch.no_grad():
        weight_pos = err_pos.abs().flatten(1).mean(dim=1).clamp(min=min_weight)
        weight_neg = err_neg.abs().flatten(1).mean(dim=1).clamp(min=min_weight)
    loss_pos = _token_mean(err_pos.square(), token_weights) / weight_pos
    loss_neg = _token_mean(err_neg.square(), token_weights) / weight_neg
    policy_per_sample = adv_clip * (r * loss_pos + (1.0 - r) * loss_neg) / beta

    if v_ref is None:
        kl_per_sample = torch.zeros_like(policy_per_sample)
    else:
        # x0_theta - x0_ref = (x_t - t v_theta) - (x_t - t v_ref) = -t (v_theta - v_ref)
        kl_per_sample = (t * (v_theta32 - v_ref.detach().float())).square().flatten(1).mean(dim=1)

    return _result(policy_per_sample, kl_per_sample, kl_coef, loss_pos, loss_neg, weight_pos, weight_neg)


def nft_loss_velocity(
    x0: Tensor,
    x_t: Tensor,
    t: Tensor,
    v_theta: Tensor,
    v_old: Tensor,
    v_ref: Tensor | None,
    r: Tensor,
    beta: float = 1.0,
    token_weights: Tensor | None = None,
    kl_coef: float = 1e-4,
) -> NFTLoss:
    """The paper's velocity form: per sample r ||v_pos - v||^2 + (1 - r) ||v_neg - v||^2.

    Target v = eps - x0 = (x_t - x0) / t (t must be > 0). Means over tokens and channels
    (token-weighted as in :func:`nft_loss`), no adaptive weight, no adv_clip / beta factor; KL is
    DiffusionNFT's ||v_theta - v_ref||^2. Relation to the x0 form, per sample and term:
    nft_loss.loss_pos * weight_pos = t^2 * nft_loss_velocity.loss_pos, and
    nft_loss.kl_per_sample = t^2 * nft_loss_velocity.kl_per_sample.
    """
    _check_inputs(x0, x_t=x_t, v_theta=v_theta, v_old=v_old, v_ref=v_ref)
    batch_size, ndim = x0.shape[0], x0.ndim
    x0 = x0.detach().float()
    x_t = x_t.detach().float()
    t = _per_sample(t, batch_size, ndim, "t")
    if (t <= 0).any():
        raise ValueError("the velocity target (x_t - x0) / t needs t > 0")
    r = _per_sample(r, batch_size, 1, "r")
    v_theta32 = v_theta.float()

    target = (x_t - x0) / t
    v_pos, v_neg = implicit_policies(v_theta32, v_old.float(), beta)
    loss_pos = _token_mean((v_pos - target).square(), token_weights)
    loss_neg = _token_mean((v_neg - target).square(), token_weights)
    policy_per_sample = r * loss_pos + (1.0 - r) * loss_neg
    if v_ref is None:
        kl_per_sample = torch.zeros_like(policy_per_sample)
    else:
        kl_per_sample = (v_theta32 - v_ref.detach().float()).square().flatten(1).mean(dim=1)
    ones = torch.ones_like(policy_per_sample)
    return _result(policy_per_sample, kl_per_sample, kl_coef, loss_pos, loss_neg, ones, ones)


def omninft_total(
    loss_video: Tensor,
    loss_audio: Tensor,
    kl_video: Tensor,
    kl_audio: Tensor,
    kl_coef: float = 1e-4,
    audio_kl_coef: float | None = None,
) -> Tensor:
    """OmniNFT objective: (L_v + L_a) / 2 + (kl_coef * KL_v + audio_kl_coef * KL_a) / 2.

    ``audio_kl_coef=None`` uses ``kl_coef`` for both branches (the released objective,
    kl_coef * (KL_v + KL_a) / 2).  Pass the branches' ``policy`` and ``kl`` fields of
    :class:`NFTLoss` (scalars; per-sample tensors are averaged first).
    """
    loss_video, loss_audio, kl_video, kl_audio = (
        torch.as_tensor(x).mean() for x in (loss_video, loss_audio, kl_video, kl_audio)
    )
    policy = (loss_video + loss_audio) / 2.0
    if audio_kl_coef is None or audio_kl_coef == kl_coef:  # the released form, bit for bit
        return policy + kl_coef * (kl_video + kl_audio) / 2.0
    return policy + (kl_coef * kl_video + audio_kl_coef * kl_audio) / 2.0
