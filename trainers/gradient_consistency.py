"""How consistent is the DiffusionNFT gradient across independent rollout batches?

``python -m trainers.gradient_consistency [train.train_sigma_fraction=0.3] [train.shared_noise=true] ...``

At the base weights, each of ``batches`` independent training batches (fresh prompts, fresh
rollout noise, exactly as the trainer draws them for steps 0, 1, ...) is rolled out, scored, and
turned into one NFT-loss gradient per *advantage source*: every reward alone, the GDPO sum of
all of them (the training signal of the ``gdpo`` variant) and its within-group placebo
(:func:`~trainers.omninft.placebo_rewards`).  The gradient of a batch is averaged over
``train.train_timesteps`` noise draws, as one trainer step averages it.

The mean pairwise cosine between the batches' gradients estimates how much of a step's gradient
is a direction shared by every batch (what a run accumulates) rather than the batch's own
accident (what it random-walks): for ``g_b = s + n_b`` with independent ``n_b``, the expected
cosine is ``|s|^2 / E|g_b|^2``.  The placebo's cosine is the noise floor.

Two rewards can also pull against each other on the same clips.  :func:`reward_conflicts` gives,
per pair of rewards, the cosine between their gradients *within* a batch (same clips, same noise;
at the base weights the NFT gradient is linear in the advantages, so this is the rewards'
agreement in the geometry of the per-clip gradients), and :func:`advantage_correlations` the
pooled within-group correlation of their advantages (+1: the same clips win on both).
:func:`advantage_scales` gives each reward's pull on the summed advantage: the root mean square
of its weighted advantage.  The advantages are centred within groups but divided by the *batch*
std (as released), so a reward whose spread lies mostly between prompts pulls with less than its
weight.

At the base weights the old and reference policies equal the current one, so the loss is the
trainer's with ``v_old = sg(v_theta)`` and no KL; everything else (sigmas, shared noise, region
weights off) follows ``train.*``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from omninft_bench.config import option, parse_cli
from omninft_bench.rewards import MetricReward
from trainers.advantages import group_advantages, optimality_probability, route_advantages
from trainers.backbone import Backbone
from trainers.nft_loss import nft_loss, omninft_total
from trainers.omninft import (
    OmniNFTConfig,
    audio_trainable_sigmas,
    noised,
    placebo_rewards,
    score_rewards,
    step_generator,
    trainable_sigmas,
    training_noise,
    training_prompts,
)
from trainers.sampling import sample

__all__ = [
    "BatchGradients",
    "ConsistencyConfig",
    "advantage_correlations",
    "advantage_scales",
    "batch_gradients",
    "consistency",
    "main",
    "pairwise_cosines",
    "reward_conflicts",
]


@dataclass
class ConsistencyConfig:
    """``python -m trainers.gradient_consistency key=value ...``"""

    batches: int = option(10, "independent rollout batches (steps 0..batches-1 of the seed)")
    same_prompts: bool = option(False, "every batch rolls out batch 0's prompts (fresh noise): shared-by-all vs per-prompt directions")
    seed: int = option(0, "seed of the training prompts and noise, as in a run")
    train: OmniNFTConfig = option(OmniNFTConfig(), "trainer settings (sigmas, shared noise, groups, timesteps)")
    rewards: dict[str, float] = option({}, "reward name -> weight; empty = the run's default rewards")
    backbone: str = option("", "tiny checkpoint; empty = the shipped one")
    out: str = option("", "write the result as JSON here (optional)")
    threads: int = option(2, "torch CPU threads")


@dataclass
class BatchGradients:
    """``grads``: ``{source: [batches, num_params]}``; ``advantages``: ``{reward: [batches, B]}``,
    each reward's group advantages on the batch's clips."""

    grads: dict[str, torch.Tensor]
    advantages: dict[str, torch.Tensor]


def batch_gradients(
    backbone: Backbone,
    cfg: OmniNFTConfig,
    rewards: Sequence[MetricReward],
    weights: dict[str, float],
    *,
    seed: int,
    batches: int,
    same_prompts: bool = False,
    progress: bool = True,
) -> BatchGradients:
    """NFT-loss gradients at the current weights, one per batch and advantage source.

    Sources: each reward's name, ``gdpo`` (weighted sum of per-reward group advantages) and
    ``placebo`` (``gdpo`` after a within-group permutation of the rewards).  With
    ``same_prompts`` every batch takes batch 0's prompts (its rollout and training noise stay its
    own), which separates a direction shared by every prompt from one each prompt has alone.
    """
    model = backbone.transformer
    backbone.text_encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    sigmas = trainable_sigmas(cfg)
    audio_sigmas = audio_trainable_sigmas(cfg)
    g = cfg.group_size
    out: dict[str, list[torch.Tensor]] = {}
    kept: dict[str, list[torch.Tensor]] = {}
    for b in tqdm(range(batches), desc="batches", disable=not progress):
        unique, meta = training_prompts(seed, 0 if same_prompts else b, cfg.prompts_per_step)
        prompts = [p for p in unique for _ in range(g)]
        metas = [dict(m) for m in meta for _ in range(g)]
        with torch.no_grad():
            result = sample(backbone, prompts, cfg.sampler, generator=step_generator(seed, b, 0))
            cond = backbone.encode_text(prompts)
        x0_v, x0_a = result.video, result.audio
        scored = score_rewards(rewards, backbone.decode(x0_v, x0_a, prompts, metas))
        sources = {
            "gdpo": scored,
            "placebo": placebo_rewards(scored, g, step_generator(seed, b, 2)),
        }
        advantages = {}
        for name, results in sources.items():
            per_reward = {k: group_advantages(r.values, g, valid=r.valid).advantages for k, r in results.items()}
            modalities = {k: r.modality for k, r in results.items()}
            advantages[name] = route_advantages(per_reward, weights, modalities, mode="gdpo").video
            if name == "gdpo":
                advantages.update(per_reward)
                for k, a in per_reward.items():
                    kept.setdefault(k, []).append(a.detach().float())
        r_of = {name: optimality_probability(a, cfg.adv_clip) for name, a in advantages.items()}
        grads = {name: torch.zeros(sum(p.numel() for p in params)) for name in r_of}
        gen = step_generator(seed, b, 1)
        for _ in range(cfg.train_timesteps):
            t_v, t_a, eps_v, eps_a = training_noise(sigmas, x0_v.shape, x0_a.shape, g if cfg.shared_noise else 1, gen,
                                                    audio_sigmas)
            x_v, x_a = noised(x0_v, t_v, eps_v), noised(x0_a, t_a, eps_a)
            v, a = backbone.velocity(x_v, x_a, t_v, t_a, cond)
            for i, (name, r) in enumerate(r_of.items()):
                lv = nft_loss(x0_v, x_v, t_v, v, v.detach(), None, r, cfg.nft_beta, adv_clip=cfg.adv_clip)
                la = nft_loss(x0_a, x_a, t_a, a, a.detach(), None, r, cfg.nft_beta, adv_clip=cfg.adv_clip)
                loss = omninft_total(lv.policy, la.policy, lv.kl, la.kl, 0.0)
                grad = torch.autograd.grad(loss, params, retain_graph=i < len(r_of) - 1, allow_unused=True)
                grads[name] += torch.cat([
                    (gr if gr is not None else torch.zeros_like(p)).flatten() for gr, p in zip(grad, params, strict=True)
                ]) / cfg.train_timesteps
        for name, gr in grads.items():
            out.setdefault(name, []).append(gr)
    return BatchGradients({name: torch.stack(gs) for name, gs in out.items()},
                          {name: torch.stack(a) for name, a in kept.items()})


def pairwise_cosines(grads: torch.Tensor) -> np.ndarray:
    """Cosines between every pair of rows of ``[n, d]``."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return np.array([float(unit[i] @ unit[j]) for i, j in itertools.combinations(range(len(unit)), 2)])


def _summary(cosines: np.ndarray, count: str) -> dict[str, float]:
    """Mean and sd (ddof 1; 0 for a single value) of ``cosines``, with their number under ``count``."""
    sd = float(cosines.std(ddof=1)) if len(cosines) > 1 else 0.0
    return {"mean_cosine": float(cosines.mean()), "sd_cosine": sd, count: len(cosines)}


def consistency(grads: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per source: mean and standard deviation of the pairwise cross-batch cosines."""
    return {name: _summary(pairwise_cosines(g), "pairs") for name, g in grads.items()}


def reward_conflicts(grads: dict[str, torch.Tensor], rewards: Sequence[str]) -> dict[tuple[str, str], dict[str, float]]:
    """Per pair of ``rewards``: mean and sd over batches of the cosine between the two rewards'
    gradients on the same batch (row ``b`` of each ``[batches, d]``)."""
    return {(a, b): _summary(torch.nn.functional.cosine_similarity(grads[a], grads[b], dim=1).numpy(), "batches")
            for a, b in itertools.combinations(rewards, 2)}


def advantage_correlations(advantages: dict[str, torch.Tensor]) -> dict[tuple[str, str], float]:
    """Per pair of rewards: Pearson correlation of their group advantages over every clip of every
    batch (each advantage is already centred within its group, so this is the within-group
    correlation). Clips whose reward failed (advantage exactly 0 by ``group_advantages``'s rule)
    count as they are; NaN entries are dropped."""
    out = {}
    for a, b in itertools.combinations(advantages, 2):
        x, y = advantages[a].flatten().double().numpy(), advantages[b].flatten().double().numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        out[(a, b)] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return out


def advantage_scales(advantages: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, float]:
    """Per reward: root mean square of ``weight * advantage`` over every clip of every batch, its
    effective weight in the GDPO sum (equal to the weight when the reward's spread lies wholly
    within groups; NaN entries dropped)."""
    out = {}
    for name, adv in advantages.items():
        x = adv.flatten().double().numpy()
        x = x[np.isfinite(x)]
        out[name] = float(abs(weights.get(name, 1.0)) * np.sqrt(np.mean(x**2))) if x.size else float("nan")
    return out


def main(cfg: ConsistencyConfig) -> dict[str, dict[str, Any]]:
    import tempfile

    from omninft_bench.encoders.config import EncodersConfig
    from omninft_bench.metrics import EvalContext
    from omninft_bench.rewards import make_rewards
    from trainers.experiment import (
        DEFAULT_REWARDS,
        SYNTHBIND_EVERYWHERE,
        read_reference,
        write_reference,
    )

    torch.set_num_threads(cfg.threads)
    weights = {k: float(v) for k, v in (cfg.rewards or DEFAULT_REWARDS).items()}
    with tempfile.TemporaryDirectory() as folder:  # the realism rewards' reference, decoded as in a run
        write_reference(Path(folder), 128)
        reference = read_reference(Path(folder))
    ctx = EvalContext(EncodersConfig(), reference=reference, backends=SYNTHBIND_EVERYWHERE)
    rewards = make_rewards(list(weights), ctx)
    backbone = Backbone.build("tiny", cfg.backbone)
    measured = batch_gradients(backbone, cfg.train, rewards, weights, seed=cfg.seed, batches=cfg.batches,
                               same_prompts=cfg.same_prompts)
    result = consistency(measured.grads)
    scales = advantage_scales(measured.advantages, weights)
    print("pull on the summed advantage (rms of weight x advantage; the weight itself when all of a reward's spread is within groups):")
    for name, scale in scales.items():
        print(f"{name:16s} weight {weights[name]:g}  pull {scale:.3f}")
    for name, row in result.items():
        print(f"{name:16s} mean cross-batch cosine {row['mean_cosine']:+.3f} (sd {row['sd_cosine']:.3f}, "
              f"{row['pairs']} pairs)")
    conflicts = reward_conflicts(measured.grads, list(weights))
    correlations = advantage_correlations(measured.advantages)
    print("between rewards, same batch: gradient cosine (mean, sd over batches), within-group advantage correlation")
    for (a, b), row in conflicts.items():
        print(f"{a:16s} {b:16s} {row['mean_cosine']:+.3f} (sd {row['sd_cosine']:.3f})  {correlations[(a, b)]:+.3f}")
    result["advantage_scales"] = scales
    result["between_rewards"] = {f"{a} | {b}": {**row, "advantage_correlation": correlations[(a, b)]}
                                 for (a, b), row in conflicts.items()}
    if cfg.out:
        Path(cfg.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(parse_cli(ConsistencyConfig, command="trainers.gradient_consistency"))
