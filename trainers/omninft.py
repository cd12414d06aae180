"""OmniNFT: online diffusion RL for joint audio-video generation, one readable loop.

How it differs from its parent, DiffusionNFT (reference.md sections 1-2):

* **Per-reward advantages** are group-normalized separately (GDPO) instead of normalizing one
  weighted sum of raw rewards (``advantage=nft`` keeps DiffusionNFT's recipe as a baseline).
* **Modality-wise routing** (``routing``): the video tokens' NFT loss uses the advantage of the
  rewards tagged video/text_video/sync, the audio tokens' loss that of audio/text_audio/sync.
  Tags come from the metric registry, so an unroutable reward is an error.
* **Layer-wise gradient surgery** (``surgery``): during the training forward only, the gradient
  that the video loss sends into the audio stream through each block's audio->video attention
  is scaled by a per-block schedule.
* **Region-wise reweighting** (``reweighting``): video tokens get weights in [1, w_max] from the
  video->audio attention captured during rollout (mid-to-late denoising window).

With all three off the loop is the GDPO baseline.  Each step: roll out G clips per prompt with
the old policy -> decode -> score every reward -> per-reward group advantages -> route ->
DiffusionNFT loss on re-noised tokens at the sampler's sigmas -> update -> soft-update the old
policy and the evaluation EMA.

Departures from the released code, on purpose: one optimizer step per RL step (the gradient is
accumulated over ``train_timesteps`` noise levels); each sample is trained at its own random
subset of the highest-noise sampler sigmas (both streams at the same one unless
``train.audio_sigmas`` gives the audio its own); NaN rewards are excluded (advantage 0) and counted,
not replaced by a failure value; randomness is drawn from per-step seeded generators, so a run
killed at any point resumes to bit-identical weights on CPU.

Run it through ``python -m omninft_bench.run ablation=...`` (see ``trainers.ablation``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from omninft_bench.config import option
from omninft_bench.data import synthav
from omninft_bench.media import as_written
from omninft_bench.rewards import MetricReward, RewardResult
from trainers.advantages import (
    group_advantages,
    nft_advantage,
    optimality_probability,
    route_advantages,
)
from trainers.backbone import GROUPS, Backbone
from trainers.checkpoint import load_checkpoint, save_checkpoint
from trainers.lora import DEFAULT_TARGETS, adapters_disabled, add_lora
from trainers.nft_loss import nft_loss, omninft_total
from trainers.policy import EMA, OldPolicy
from trainers.recipe import trained_sigmas
from trainers.regions import capture_v2a_attention, region_weights, w_max_schedule
from trainers.sampling import SamplerConfig, sample
from trainers.surgery import gradient_surgery, surgery_schedule

__all__ = ["OmniNFTConfig", "StepLog", "Variant", "train", "trainable_sigmas"]


@dataclass
class OmniNFTConfig:
    """Hyperparameters of one RL run (``train.*`` keys of ``omninft_bench.run``).

    Defaults fit ``ablation=all`` (16 runs) into 19 min on 2 CPU cores, two runs at a time on one
    thread each (``trainers.jobs``; one at a time on two threads: 36 min): 12 steps of 4 prompts
    x 8 clips, one trained noise level per sample and stream, the released lr 3e-5.

    Why the NFT loss trains only at the three highest-noise sigmas (1.0, 0.9, 0.8), with one
    noise draw shared by a group (``shared_noise``; departures from DiffusionNFT's 9 of 10 sigmas
    and OmniNFT's first 8 of 20, per-sample noise).  On this tiny backbone the rewards are
    decided by coarse content (colour, object, sound type), which the model lays down at high
    noise; at lower noise the loss gradient is mostly each clip's own fine detail.  Measured in
    a /tmp script (paired 64-prompt evaluation of the five default rewards, gdpo, seeds 0-5,
    change from the base):

    * the previous default (sigmas 1.0..0.3, per-sample noise, 20 steps of 2 x 8): clip_score
      -0.012, -0.015, -0.018 on the three seeds run;
    * sigmas 1.0..0.8, shared noise, 12 steps of 4 x 8 (this default): clip_score +0.009
      (positive on 6 of 6 seeds), clap_score +0.018 (5 of 6), video_realism -0.018 (better on
      6 of 6), audio_realism +0.014 and av_offset +0.002 s (no consistent direction).  That
      script scored the clips in memory against the procedural reference frames; ``make run``
      scores the decoded files, where video_realism got worse until the rewards were moved onto
      the decoded reference too (``trainers.experiment.read_reference``);
    * the same with rewards permuted within each group (placebo, 2 x 8): clip_score -0.036 and
      -0.054, so the gain is the rewards' doing, not the perturbation's.

    Including 0.7 (four sigmas, OmniNFT's 40 %) improved audio_realism on 4 of 4 seeds but
    turned clip_score negative on 3 of 4.  The loss is sharp: stepping the weights along the
    mean gradient of 10 batches raised clap_score by 0.03 at norm 0.03 and lost 0.26 at norm 1,
    while a random direction of norm 3 moved it by under 0.01, so a larger lr does not buy
    progress (lr 1e-4 and 3e-4 lost 0.10-0.47 of clap_score).
    ``python -m trainers.gradient_consistency`` measures how much of a step's gradient the
    batches share (mean cross-batch cosine, 12 batches of 4 x 8, both streams at the video's
    sigma: clap_score +0.087 at these sigmas vs +0.012 at 1.0..0.3, video_realism +0.070 against
    the decoded reference; the five-reward GDPO sum stays near 0 either way, sd 0.17-0.24; with
    the audio at 0.4, 0.3, 0.2: video_realism +0.232, clap_score +0.023).

    The audio stream is re-noised at the video's sigma, as in the released recipes.
    ``audio_sigmas`` gives it levels of its own, drawn per group independently of the video's
    (the backbone takes a sigma per stream; its pretraining drew them independently 20 % of the
    time).  Before 5922cd3 the audio trained at 0.4, 0.3, 0.2 by default: on 2-seed runs that
    had raised clap_score (+0.013 to +0.035 in 4 of 4 pairs against the video's sigma), but the
    gain did not replicate.  With ``python -m omninft_bench.run ablation=[gdpo] seeds=[0,1,2,3]
    eval.n=256`` (six metrics, change from the base, mean over the 4 seeds, low level vs the
    video's sigma) it read clap_score -0.006 vs +0.008, audio_realism +0.018 vs +0.017,
    javis_score +0.008 vs +0.003 and the unrewarded av_offset +0.030 vs -0.016 s at 11d6c9b, and
    +0.009 vs +0.003, +0.015 vs +0.010, +0.004 vs -0.002 and +0.022 vs +0.011 at 7a2355a; clip_score
    and video_realism within 0.004 both times.  Rewarded alone, each audio reward is learned
    only at the high level: clap_score +0.019 (4 of 4 seeds; +0.001 at the low level, 2 of 4) and
    audio_realism -0.041; -0.012 on seeds 0; 1 (+0.008; +0.004 at the low level).  Details in
    docs/trainer-findings.md.

    The video stream's parameters train at half the lr (``lr_scales``; cross-modal attention and
    the audio stream at the full lr), a departure from the released single lr.  Within the
    five-reward mix the video's updates cost the audio and the sync: trained alone (audio and
    cross-modal lr 0, GDPO, the audio at 0.4..0.2) they lowered javis_score by 0.013 and
    clap_score by 0.007, while video_realism, whose gradient batches agree on most, takes the
    largest share of every shared advantage.  Halving the video lr, paired seed by seed with the
    same runs at one lr (``ablation=[gdpo]`` and ``[routing]``, ``seeds=[0,1,2,3] eval.n=256``,
    six metrics, audio at the video's sigma): audio_realism's change from the base went from
    +0.017 to +0.013 (GDPO) and from +0.001 to -0.003 (routing), lower on 8 of 8 seed pairs;
    javis_score from +0.003 to +0.010 (GDPO, 4 of 4) and -0.007 to -0.006 (routing); clap_score
    +0.008 to +0.009 and +0.007 to +0.009; video_realism gave up part of its gain, -0.034 to -0.022
    and -0.052 to -0.040.  Measured on the tiny backbone only; ``train.lr_scales={}`` restores one lr.

    The rewards score the decoded tensors, while the evaluation scores the clips written to mp4
    and read back; at 32 x 32 the H.264 round trip reorders video_realism's within-group ranking
    (correlation +0.86 with the tensors' ranking on base rollouts; javis_score +0.91, clip_score
    +0.95, the audio rewards 1.00).  ``score_written`` scores the round-tripped clips instead.
    It changed nothing measurable: ``python -m omninft_bench.run "ablation=[gdpo,routing]"
    seeds=[0,1,2,3] eval.n=256 train.score_written=true`` (six metrics, at 373ddcf plus the
    option) moved every rewarded metric's change from the base by at most 0.003 against the same
    runs without it, and took 980 s against 858 s for the same two variants at video lr x0.25 (a
    test run shared the machine for 2 of those minutes), so it is off by default.

    ``reward_control=shuffle`` is the placebo that tells signal from noise: the README compares
    real and placebo runs of ``make run``'s budget (at 17f8cb3, each placebo cell on its real
    cell's draws: video_realism beat it in 4 of 4 variant x seed cells, clip_score, javis_score
    and the unrewarded av_offset in 3, clap_score in 2, audio_realism in none).

    Seen over 16 independent runs (``streams=per_run``, README) these defaults improve
    video_realism and clip_score, make audio_realism worse (+0.015, CI +0.009 to +0.022) and
    leave clap_score and javis_score without a clear change; the audio findings above were
    measured on one evaluation draw with two seeds whose variants shared their prompts, which
    README shows can move such numbers by as much as the effects themselves.  More steps do not
    cure the audio: ``steps=24`` (GDPO, seeds 0-3, 256 prompts) doubled the audio_realism cost
    (+0.031 against +0.015) and lost clap_score's gain; RL flattens the audio's loudness envelope
    and lowers its spectral centroid, and clap_score or javis_score rewarded alone cost
    audio_realism too (README, "What RL does to the audio").

    A stronger KL on the audio branch alone (``audio_kl_coef``) restrains that drift but buys no
    audio gain.  The released 1e-4 is inert here: after 12 steps the audio KL is about 5e-4
    (``loss/kl_audio`` of a default GDPO run, seed 0), so the KL term adds about 5e-8 to an audio
    policy loss of about 0.5.  GDPO, seeds 0-3, 256 prompts at b7b0665 (change from the base, mean
    over seeds): audio_kl_coef 10 cut the audio_realism cost from +0.018 to +0.006 and 100 to
    +0.002, while clap_score stayed without a gain (-0.005, -0.002, -0.008), javis_score went from
    +0.008 to -0.002 and -0.014, and the video rewards moved by under 0.006; the audio stream's
    updates at this budget are mostly damage, and a KL that stops the damage stops them.  The
    default keeps the released weight.
    """

    steps: int = option(12, "optimizer steps (= RL iterations) per run")
    prompts_per_step: int = option(4, "distinct SynthAV training prompts per step")
    group_size: int = option(8, "clips rolled out per prompt (advantages are normalized per group)")
    sampler: SamplerConfig = option(SamplerConfig(), "rollout sampler (ODE, CFG-free by default)")
    train_timesteps: int = option(1, "noise levels each sample is trained at per step")
    train_sigma_fraction: float = option(0.3, "train on the highest-noise fraction of the sampler's sigmas (0.3 of 10: 1.0, 0.9, 0.8)")
    audio_sigmas: list[float] = option([], "noise levels the audio stream is trained at, drawn per group independently of the video's; empty = the video's sigma")
    shared_noise: bool = option(True, "re-noise the clips of a group with one shared sigma and noise draw (variance reduction; see training_noise)")
    score_written: bool = option(False, "score the rollouts as the evaluation reads clips: written to mp4 (H.264) + wav and read back (omninft_bench.media.as_written); false = the decoded tensors (see the class docstring)")
    reward_control: str = option("none", "none | shuffle: placebo run, rewards permuted within each group every step (see placebo_rewards)")
    lr: float = option(3e-5, "AdamW learning rate (full fine-tuning of the tiny model; see the class docstring)")
    lr_scales: dict[str, float] = option({"video": 0.5}, "learning-rate multiplier per parameter group (video, audio, cross); a missing group = 1; {} = one lr (see the class docstring)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    grad_clip: float = option(1.0, "gradient-norm clip")
    lora_rank: int = option(-1, "LoRA rank; 0 = full fine-tuning; -1 = auto: full for backbone=tiny, 32 (released) for ltx2")
    lora_alpha: float = option(0.0, "LoRA alpha; 0 = 2 x rank (the released 64 at r=32)")
    lora_targets: list[str] = option(list(DEFAULT_TARGETS), "block modules that get LoRA adapters (see trainers.lora)")
    nft_beta: float = option(1.0, "DiffusionNFT guidance strength beta of the implicit policies")
    adv_clip: float = option(5.0, "advantage clip before r = A/5/2 + 0.5")
    kl_coef: float = option(1e-4, "weight of the x0-space KL to the reference (initial) model")
    audio_kl_coef: float = option(-1.0, "the audio branch's KL weight; -1 = kl_coef")
    old_policy_rate: float = option(0.001, "old-policy decay eta_i = min(rate * i, cap) (0 = on-policy)")
    old_policy_cap: float = option(0.5, "cap of the old-policy decay")
    ema_max_decay: float = option(0.9, "evaluation EMA decay cap, min((1+s)/(10+s), cap)")
    w_max: float = option(1.5, "region reweighting: largest video-token weight")
    w_ramp_steps: int = option(8, "region reweighting: steps over which w_max ramps from 1")
    surgery_scales: list[float] = option([], "per-block gradient scales; empty = released shape scaled to depth")
    checkpoint_every: int = option(4, "steps between checkpoints (0 = only at the end)")
    threads: int = option(1, "torch CPU threads per run (ablations run 2 at once on CPU, see trainers.jobs)")

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"train.group_size={self.group_size}; group advantages need at least 2")
        if self.reward_control not in ("none", "shuffle"):
            raise ValueError(f"train.reward_control={self.reward_control!r}; use none or shuffle")
        if self.lora_rank < -1:
            raise ValueError(f"train.lora_rank={self.lora_rank}; use a positive rank, 0 (full fine-tuning) or -1 (auto)")
        if any(not 0 < float(x) <= 1 for x in self.audio_sigmas):
            raise ValueError(f"train.audio_sigmas={self.audio_sigmas}; every level must be in (0, 1]")
        if not 0 < self.train_sigma_fraction <= 1:
            raise ValueError(f"train.train_sigma_fraction={self.train_sigma_fraction}; must be in (0, 1]")
        for group, scale in self.lr_scales.items():
            if group not in GROUPS:
                raise ValueError(f"train.lr_scales has {group!r}; the groups are {', '.join(GROUPS)}")
            if not float(scale) >= 0:
                raise ValueError(f"train.lr_scales.{group}={scale}; a multiplier must be >= 0")


@dataclass(frozen=True)
class Variant:
    """One cell of the ablation: which OmniNFT components are on, and the advantage recipe."""

    name: str
    routing: bool = False
    surgery: bool = False
    reweighting: bool = False
    advantage: str = "gdpo"  # "gdpo" (per-reward normalized) or "nft" (DiffusionNFT's raw sum)

    def switches(self) -> dict[str, bool]:
        return {"routing": self.routing, "surgery": self.surgery, "reweighting": self.reweighting}


@dataclass
class StepLog:
    """What one step reports (logged to MLflow by the caller)."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- small pieces


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A generator that depends only on (seed, step, stream): the key to exact resumption."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0]))


def training_prompts(seed: int, step: int, n: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The ``n`` SynthAV training prompts of ``step`` (deterministic, disjoint across steps) and
    the metadata that text rewards read (``audio_text``: CLAP-style metrics compare the audio
    with it, as the final evaluation does)."""
    start = step * n
    clips = list(synthav.iter_split("train", n=n, stream=seed, start=start))
    return [c.prompt for c in clips], [{"audio_text": c.meta.get("audio_text", "")} for c in clips]


def score_rewards(rewards: Sequence[MetricReward], clips: Sequence[Any]) -> dict[str, RewardResult]:
    return {r.name: r(clips) for r in rewards}


def placebo_rewards(
    results: dict[str, RewardResult], group_size: int, generator: torch.Generator
) -> dict[str, RewardResult]:
    """The batch's rewards with the clips permuted within each group (one permutation per group,
    shared by every reward).

    A placebo control: group means and the batch std do not change, so every advantage is
    exactly some clip's real advantage from the same group, but it now belongs to another clip
    and the update carries no reward signal.  A real run minus its placebo separates what the
    rewards taught from what gradient noise alone does to the metrics.
    """
    n = len(next(iter(results.values())).values)
    if n % group_size:
        raise ValueError(f"batch of {n} rewards does not split into groups of {group_size}")
    perm = torch.cat([g * group_size + torch.randperm(group_size, generator=generator) for g in range(n // group_size)])
    return {
        name: RewardResult(r.name, r.modality, r.values[perm], r.valid[perm], tuple(r.reasons[i] for i in perm.tolist()))
        for name, r in results.items()
    }


def compute_advantages(
    results: dict[str, RewardResult],
    weights: dict[str, float],
    variant: Variant,
    group_size: int,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Video and audio advantages ``[B]`` for the variant, plus diagnostics."""
    stats: dict[str, float] = {}
    valid = torch.stack([r.valid for r in results.values()]).all(0)
    if variant.advantage == "nft":
        raw = {name: torch.where(valid, r.values, torch.zeros_like(r.values)) for name, r in results.items()}
        routed = nft_advantage(raw, weights, group_size)
        adv_v = adv_a = torch.where(valid, routed.video, torch.zeros_like(routed.video))
    else:
        per_reward = {}
        for name, r in results.items():
            g = group_advantages(r.values, group_size, valid=r.valid)
            per_reward[name] = g.advantages
        modalities = {name: r.modality for name, r in results.items()}
        routed = route_advantages(per_reward, weights, modalities, mode="routing" if variant.routing else "gdpo")
        adv_v, adv_a = routed.video, routed.audio
    stats["adv/video_abs"] = float(adv_v.abs().mean())
    stats["adv/audio_abs"] = float(adv_a.abs().mean())
    stats["nan/rewards"] = float((~valid).sum())
    return adv_v, adv_a, stats


def training_noise(
    sigmas: torch.Tensor,
    video_shape: torch.Size,
    audio_shape: torch.Size,
    share: int,
    generator: torch.Generator,
    audio_sigmas: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample training sigmas ``[B]`` of the video and audio streams and their noise, drawn
    once per run of ``share`` consecutive samples (a group when ``share`` is the group size, one
    sample when 1).

    Sharing is a common-random-numbers control variate: within a group the advantages sum to
    zero, so the part of the loss gradient that comes from the noise draw itself (the same for
    every clip of the group) largely cancels, and what remains is the difference between clips.

    ``audio_sigmas=None``: both streams share the video's sigma.  Otherwise the audio sigma is
    drawn from ``audio_sigmas`` independently (after the other draws, so the video draws do not
    change).
    """
    b = video_shape[0]
    if b % share:
        raise ValueError(f"batch of {b} samples does not split into runs of {share}")
    n = b // share
    idx = torch.randint(len(sigmas), (n,), generator=generator)
    eps_v = torch.randn((n, *video_shape[1:]), generator=generator)
    eps_a = torch.randn((n, *audio_shape[1:]), generator=generator)
    t_v = sigmas[idx]
    t_a = t_v if audio_sigmas is None else audio_sigmas[torch.randint(len(audio_sigmas), (n,), generator=generator)]
    return (t_v.repeat_interleave(share), t_a.repeat_interleave(share),
            eps_v.repeat_interleave(share, 0), eps_a.repeat_interleave(share, 0))


def trainable_sigmas(cfg: OmniNFTConfig) -> torch.Tensor:
    """The noise levels the NFT loss trains at: the highest ``train_sigma_fraction`` of the rollout
    sampler's sigmas ``linspace(1, 1/N, N)`` (diffusers FlowMatchEuler with shift 1 visits exactly
    these), at least one."""
    return torch.as_tensor(trained_sigmas(cfg.sampler.steps, cfg.train_sigma_fraction), dtype=torch.float32)


def optimizer_groups(by_group: dict[str, list[torch.nn.Parameter]], params: Sequence[torch.nn.Parameter],
                     lr: float, scales: dict[str, float]) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the trainable ``params`` split as ``by_group`` splits the model
    (``Backbone.parameters_by_group``: video, audio, cross), each at ``lr`` times its multiplier in
    ``scales`` (missing = 1).  Without multipliers, one group."""
    if all(float(scales.get(g, 1.0)) == 1.0 for g in GROUPS):
        return [{"params": list(params), "lr": lr}]
    wanted = {id(p) for p in params}
    split = {g: [p for p in by_group.get(g, []) if id(p) in wanted] for g in GROUPS}
    if sum(len(ps) for ps in split.values()) != len(wanted):
        raise ValueError("optimizer_groups: some trainable parameters are not parameters of the model")
    return [{"params": ps, "lr": lr * float(scales.get(g, 1.0)), "group": g} for g, ps in split.items() if ps]


def audio_trainable_sigmas(cfg: OmniNFTConfig) -> torch.Tensor | None:
    """The audio stream's own training noise levels (``train.audio_sigmas``), or None when the
    audio stream is re-noised at the video's sigma."""
    return torch.as_tensor(cfg.audio_sigmas, dtype=torch.float32) if cfg.audio_sigmas else None


def noised(x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward process x_t = (1 - t) x0 + t eps, per-sample t ``[B]``."""
    t = sigma.view(-1, *([1] * (x0.ndim - 1)))
    return (1.0 - t) * x0 + t * noise


# --------------------------------------------------------------------------- the loop


def train(
    backbone: Backbone,
    variant: Variant,
    cfg: OmniNFTConfig,
    rewards: Sequence[MetricReward],
    weights: dict[str, float],
    *,
    seed: int,
    run_dir: Path,
    resume: bool = False,
    log: Callable[[StepLog], None] | None = None,
    progress: bool = True,
    label: str | None = None,
) -> tuple[Backbone, EMA]:
    """Post-train ``backbone`` in place with one variant; returns it and its evaluation EMA.

    ``seed`` decides everything random in the run: its prompts, rollout noise and training noise
    (the ablation passes :func:`trainers.ablation.data_seed`).  ``label`` names the progress bar.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    acc = Accelerator(cpu=not torch.cuda.is_available())
    backbone.to(acc.device)
    backbone.train()
    model = backbone.transformer  # the module itself; ``ddp`` wraps it for data parallelism
    backbone.text_encoder.requires_grad_(False)
    lora = lora_rank(cfg, backbone.kind)
    if lora:  # the frozen base is the KL reference (adapters disabled): no second copy
        params = add_lora(model, lora, cfg.lora_alpha, cfg.lora_targets)
        reference = None
    else:
        reference = copy.deepcopy(model).requires_grad_(False).eval()
        params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(optimizer_groups(backbone.parameters_by_group(), params, cfg.lr, cfg.lr_scales), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    old = OldPolicy(model, rate=cfg.old_policy_rate, cap=cfg.old_policy_cap, trainable_only=bool(lora))
    ema = EMA(model, max_decay=cfg.ema_max_decay, trainable_only=bool(lora))
    schedule = surgery_schedule(len(model.transformer_blocks), cfg.surgery_scales or None)

    start = 0
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        start = load_checkpoint(ckpt_path, model=model, optimizer=optimizer, old=old, ema=ema)
    ddp, optimizer = acc.prepare(model, optimizer)
    world, rank = acc.num_processes, acc.process_index

    trainable = trainable_sigmas(cfg)
    audio_trainable = audio_trainable_sigmas(cfg)
    audio_kl = cfg.kl_coef if cfg.audio_kl_coef < 0 else cfg.audio_kl_coef
    g = cfg.group_size
    bar = tqdm(range(start, cfg.steps), desc=label or f"{variant.name} seed {seed}", disable=not progress or not acc.is_main_process,
               initial=start, total=cfg.steps)
    for step in bar:
        t0 = time.perf_counter()
        # 1. roll out G clips per prompt with the old (sampling) policy
        shard = step * world + rank  # each process rolls out its own prompts and noise
        unique, unique_meta = training_prompts(seed, shard, cfg.prompts_per_step)
        prompts = [p for p in unique for _ in range(g)]
        metas = [dict(m) for m in unique_meta for _ in range(g)]
        rollout_gen = step_generator(seed, shard, 0)
        with torch.no_grad(), old.swapped_in(model), capture_v2a_attention(model, enabled=variant.reweighting) as cap:
            model.eval()
            callback = (lambda info: cap.set_step(info.index, info.num_steps)) if variant.reweighting else None
            result = sample(backbone, prompts, cfg.sampler, generator=rollout_gen, callback=callback)
            scores = cap.scores() if variant.reweighting else None
        model.train()
        x0_v, x0_a = result.video.detach(), result.audio.detach()

        # 2-3. decode and score
        clips = backbone.decode(x0_v, x0_a, prompts, metas)
        if cfg.score_written:
            clips = as_written(clips)
        results = gather_rewards(acc, score_rewards(rewards, clips))
        if cfg.reward_control == "shuffle":  # same permutation on every process (seeded by step only)
            results = placebo_rewards(results, g, step_generator(seed, step, 2))

        # 4. per-reward group advantages (batch std over every process), routed per modality
        adv_v, adv_a, stats = compute_advantages(results, weights, variant, g)
        local = slice(rank * len(prompts), (rank + 1) * len(prompts))
        adv_v, adv_a = adv_v[local], adv_a[local]
        r_v = optimality_probability(adv_v, cfg.adv_clip)
        r_a = optimality_probability(adv_a, cfg.adv_clip)
        token_w = None
        if scores is not None:
            w_max = w_max_schedule(step, cfg.w_ramp_steps, cfg.w_max)
            token_w = region_weights(scores, backbone.video_grid, w_max)
            stats["region/w_max"] = w_max

        # 5-6. DiffusionNFT loss on re-noised samples at the sampler's sigmas, one update
        with torch.no_grad():  # RL trains the transformer; the text encoder stays as pretrained
            cond = backbone.encode_text(prompts)
        train_gen = step_generator(seed, shard, 1)
        optimizer.zero_grad(set_to_none=True)
        parts = {"loss/total": 0.0, "loss/video": 0.0, "loss/audio": 0.0, "loss/kl": 0.0,
                 "loss/kl_video": 0.0, "loss/kl_audio": 0.0}
        for _ in range(cfg.train_timesteps):
            t_v, t_a, eps_v, eps_a = training_noise(trainable, x0_v.shape, x0_a.shape, g if cfg.shared_noise else 1,
                                                    train_gen, audio_trainable)
            x_v = noised(x0_v, t_v, eps_v)
            x_a = noised(x0_a, t_a, eps_a)
            with torch.no_grad():
                with old.swapped_in(model):
                    v_old, a_old = backbone.velocity(x_v, x_a, t_v, t_a, cond)
                ref_v, ref_a = _reference_velocity(backbone, reference, x_v, x_a, t_v, t_a, cond,
                                                   max(cfg.kl_coef, audio_kl))
            with gradient_surgery(model, schedule, enabled=variant.surgery):
                v_theta, a_theta = _velocity_with(backbone, ddp, x_v, x_a, t_v, t_a, cond)
            lv = nft_loss(x0_v, x_v, t_v, v_theta, v_old, ref_v, r_v, cfg.nft_beta, token_weights=token_w,
                          kl_coef=cfg.kl_coef, adv_clip=cfg.adv_clip)
            la = nft_loss(x0_a, x_a, t_a, a_theta, a_old, ref_a, r_a, cfg.nft_beta,
                          kl_coef=audio_kl, adv_clip=cfg.adv_clip)
            loss = omninft_total(lv.policy, la.policy, lv.kl, la.kl, cfg.kl_coef, audio_kl) / cfg.train_timesteps
            if not torch.isfinite(loss):
                stats["nan/loss"] = stats.get("nan/loss", 0.0) + 1.0
                continue
            loss.backward()
            parts["loss/total"] += float(loss.detach())
            parts["loss/video"] += float(lv.policy.detach()) / cfg.train_timesteps
            parts["loss/audio"] += float(la.policy.detach()) / cfg.train_timesteps
            parts["loss/kl"] += float((lv.kl + la.kl).detach()) / 2 / cfg.train_timesteps
            parts["loss/kl_video"] += float(lv.kl.detach()) / cfg.train_timesteps
            parts["loss/kl_audio"] += float(la.kl.detach()) / cfg.train_timesteps
        grads_ok = all(p.grad is None or torch.isfinite(p.grad).all() for p in params)
        if grads_ok:
            stats["grad/norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            optimizer.step()
        else:
            stats["nan/grad"] = 1.0

        # 7. soft-update the old policy and the evaluation EMA
        old.update(model, step + 1)
        ema.update(model, step + 1)

        metrics = {f"reward/{name}": _nanmean(r.values) for name, r in results.items()}
        metrics.update(stats)
        metrics.update(parts)
        metrics["time/step_s"] = time.perf_counter() - t0
        if log is not None and acc.is_main_process:
            log(StepLog(step, metrics))
        bar.set_postfix(loss=f"{parts['loss/total']:.3f}")
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _checkpoint(acc, ckpt_path, step + 1, model, optimizer, old, ema)
    backbone.eval()
    _checkpoint(acc, ckpt_path, cfg.steps, model, optimizer, old, ema)
    return backbone, ema


def _checkpoint(acc: Accelerator, path: Path, step: int, model, optimizer, old, ema) -> None:
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_checkpoint(path, step, model=model, optimizer=optimizer, old=old, ema=ema)
    acc.wait_for_everyone()


def gather_rewards(acc: Accelerator, results: dict[str, RewardResult]) -> dict[str, RewardResult]:
    """Every process's rewards, concatenated in rank order (groups stay contiguous)."""
    if acc.num_processes == 1:
        return results
    out = {}
    for name, r in results.items():
        values = acc.gather(r.values.to(acc.device)).cpu()
        valid = acc.gather(r.valid.to(acc.device)).cpu()
        out[name] = RewardResult(name, r.modality, values, valid, (None,) * len(values))
    return out


def lora_rank(cfg: OmniNFTConfig, backbone_kind: str) -> int:
    """The LoRA rank a run uses: ``train.lora_rank``, or with -1 full fine-tuning (0) for the tiny
    backbone and the released r=32 for LTX-2 (full fine-tuning of 19 B parameters is out of reach)."""
    if cfg.lora_rank >= 0:
        return cfg.lora_rank
    return 32 if backbone_kind == "ltx2" else 0


def _reference_velocity(backbone: Backbone, reference: torch.nn.Module | None, x_v, x_a, t_v, t_a, cond, kl_coef: float):
    """Velocities of the reference policy for the KL term: the frozen copy (full fine-tuning), the
    transformer with its adapters disabled (LoRA), or nothing when the KL is off."""
    if kl_coef == 0:
        return None, None
    if reference is None:
        with adapters_disabled(backbone.transformer):
            return backbone.velocity(x_v, x_a, t_v, t_a, cond)
    return _velocity_with(backbone, reference, x_v, x_a, t_v, t_a, cond)


def _velocity_with(backbone: Backbone, transformer: torch.nn.Module, x_v, x_a, t_v, t_a, cond):
    """Velocity of another transformer (the frozen reference) through the same wrapper."""
    live = backbone.transformer
    backbone.transformer = transformer
    try:
        return backbone.velocity(x_v, x_a, t_v, t_a, cond)
    finally:
        backbone.transformer = live


def _nanmean(x: torch.Tensor) -> float:
    x = x[torch.isfinite(x)]
    return float(x.mean()) if x.numel() else float("nan")
