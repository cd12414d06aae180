"""Flow-matching ODE sampler for the :class:`~trainers.backbone.Backbone` (Euler, CFG optional).

Built on diffusers' ``FlowMatchEulerDiscreteScheduler``: one scheduler per stream, so audio may
follow its own sigma schedule (per-modality timesteps; ``audio_shift``).  Sigmas are
``linspace(1, 1/N, N)`` (as ``LTX2Pipeline``) passed through the scheduler's shift
``s * sigma / (1 + (s - 1) sigma)``, then 0.  Each step evaluates the backbone's velocity and
calls ``scheduler.step`` (``x <- x + (sigma_next - sigma) v``).

What the RL trainer needs (DiffusionNFT trains on the sampler's timesteps):
``SampleResult.sigmas`` / ``audio_sigmas`` ``[N + 1]`` and, with ``return_trajectory=True``,
``video_trajectory`` / ``audio_trajectory`` ``[N + 1, B, tokens, C]`` with ``x`` *before* each
step (index 0 = the initial noise, index N = the final sample).  ``callback(StepInfo)`` runs
before every model evaluation; e.g. ``lambda s: capture.set_step(s.index, s.num_steps)`` turns
on video->audio attention capture in the mid-to-late window (CFG doubles the batch, so capture
with ``cfg_scale=1``).

Sampling is seeded: the initial noise comes from ``torch.Generator`` (video tokens, then audio
tokens) unless ``noise`` is given, and the ODE itself is deterministic.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor

from omninft_bench.config import option
from trainers.backbone import Backbone, TextCond

__all__ = [
    "SampleResult",
    "SamplerConfig",
    "StepInfo",
    "initial_noise",
    "make_scheduler",
    "per_clip_noise",
    "sample",
    "sigma_schedule",
]


@dataclass
class SamplerConfig:
    """Sampler settings (nested as ``sampler.*`` in the stage configs)."""

    steps: int = option(10, "Euler steps of the flow-matching ODE")
    shift: float = option(1.0, "sigma shift s*t/(1+(s-1)t) of the video schedule (1 = linear)")
    audio_shift: float = option(0.0, "sigma shift of the audio schedule; 0 = same as shift")
    cfg_scale: float = option(1.0, "classifier-free guidance scale for video (1 = off)")
    audio_cfg_scale: float = option(0.0, "guidance scale for audio; 0 = same as cfg_scale")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"sampler.steps={self.steps}; need at least 1")
        if self.shift <= 0 or self.audio_shift < 0:
            raise ValueError(f"sampler shifts must be positive (got shift={self.shift}, audio_shift={self.audio_shift})")

    @property
    def video_cfg(self) -> float:
        return self.cfg_scale

    @property
    def audio_cfg(self) -> float:
        return self.audio_cfg_scale or self.cfg_scale

    @property
    def uses_cfg(self) -> bool:
        return self.video_cfg != 1.0 or self.audio_cfg != 1.0


@dataclass
class StepInfo:
    """Passed to the per-step callback before the model evaluation of step ``index``."""

    index: int
    num_steps: int
    sigma_video: float
    sigma_audio: float


@dataclass
class SampleResult:
    """Final tokens, the sigma schedules and (optionally) the trajectory; see module docstring."""

    video: Tensor
    audio: Tensor
    sigmas: Tensor
    audio_sigmas: Tensor
    video_trajectory: Tensor | None = None
    audio_trajectory: Tensor | None = None


def make_scheduler(shift: float = 1.0) -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)


def sigma_schedule(steps: int, shift: float = 1.0) -> Tensor:
    """The ``[steps + 1]`` sigmas the sampler visits (last = 0)."""
    scheduler = make_scheduler(shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps))
    return scheduler.sigmas.clone()


def initial_noise(
    backbone: Backbone, batch_size: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Standard normal ``(video [B, Nv, Cv], audio [B, Na, Ca])`` drawn in that order."""
    nv, cv = backbone.video_token_shape
    na, ca = backbone.audio_token_shape
    video = torch.randn(batch_size, nv, cv, generator=generator)
    audio = torch.randn(batch_size, na, ca, generator=generator)
    return video.to(backbone.device), audio.to(backbone.device)


def per_clip_noise(backbone: Backbone, seeds: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Initial noise with clip ``i`` drawn from ``torch.Generator().manual_seed(seeds[i])``.

    Independent of how clips are batched (what ``stage=sample`` uses).
    """
    pairs = [initial_noise(backbone, 1, torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


@torch.no_grad()
def sample(
    backbone: Backbone,
    prompts: Sequence[str] | TextCond,
    config: SamplerConfig | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    noise: tuple[Tensor, Tensor] | None = None,
    return_trajectory: bool = False,
    callback: Callable[[StepInfo], None] | None = None,
) -> SampleResult:
    """Integrate the flow ODE from noise to tokens for each prompt (or precomputed ``TextCond``).

    Noise: ``noise`` if given, else drawn from ``generator`` (or a fresh one seeded with
    ``seed``; both None -> torch's global RNG).  Returns token tensors on the backbone's device.
    """
    config = config or SamplerConfig()
    cond = prompts if isinstance(prompts, TextCond) else backbone.encode_text(list(prompts))
    b = len(cond)
    if noise is None:
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        noise = initial_noise(backbone, b, generator)
    x_v, x_a = (n.to(backbone.device, torch.float32).clone() for n in noise)
    if x_v.shape[0] != b or x_a.shape[0] != b:
        raise ValueError(f"noise batch {x_v.shape[0]}/{x_a.shape[0]} does not match {b} prompts")

    video_scheduler = make_scheduler(config.shift)
    audio_scheduler = make_scheduler(config.audio_shift or config.shift)
    base = np.linspace(1.0, 1.0 / config.steps, config.steps)
    video_scheduler.set_timesteps(sigmas=base, device=x_v.device)
    audio_scheduler.set_timesteps(sigmas=copy.copy(base), device=x_v.device)
    video_scheduler.set_begin_index(0)
    audio_scheduler.set_begin_index(0)

    if config.uses_cfg:
        cond = cond.cat(backbone.null_text(b))
    traj_v, traj_a = ([x_v], [x_a]) if return_trajectory else (None, None)
    for i in range(config.steps):
        sv, sa = float(video_scheduler.sigmas[i]), float(audio_scheduler.sigmas[i])
        if callback is not None:
            callback(StepInfo(i, config.steps, sv, sa))
        if config.uses_cfg:
            v, a = backbone.velocity(torch.cat([x_v, x_v]), torch.cat([x_a, x_a]), sv, sa, cond)
            v_c, v_u = v.chunk(2)
            a_c, a_u = a.chunk(2)
            v = v_u + config.video_cfg * (v_c - v_u)
            a = a_u + config.audio_cfg * (a_c - a_u)
        else:
            v, a = backbone.velocity(x_v, x_a, sv, sa, cond)
        x_v = video_scheduler.step(v, video_scheduler.timesteps[i], x_v, return_dict=False)[0]
        x_a = audio_scheduler.step(a, audio_scheduler.timesteps[i], x_a, return_dict=False)[0]
        if return_trajectory:
            traj_v.append(x_v)
            traj_a.append(x_a)
    return SampleResult(
        video=x_v,
        audio=x_a,
        sigmas=video_scheduler.sigmas.detach().cpu().clone(),
        audio_sigmas=audio_scheduler.sigmas.detach().cpu().clone(),
        video_trajectory=torch.stack(traj_v) if return_trajectory else None,
        audio_trajectory=torch.stack(traj_a) if return_trajectory else None,
    )
