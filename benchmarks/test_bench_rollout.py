"""Rollout throughput of the default backbone: what the RL trainer's budget rests on.

    make bench          # or: pytest benchmarks/test_bench_rollout.py

* rollout: 64 clips (SynthAV eval prompts) at the default 10 Euler steps, tokens only;
  ``extra_info["clips_per_s"]``;
* decode: 64 token pairs -> clips (pixel patches + Griffin-Lim);
* train step: one forward + backward of the velocity loss on 32 clips (what DiffusionNFT does
  per sampled timestep).

The numbers behind the tiny config are in docs/backbone.md.  Set ``OMP_WAIT_POLICY=PASSIVE``
when the machine is shared: spinning OpenMP threads slow every step several-fold under contention.
The asserts are loose sanity bounds, not the budget.
"""

from __future__ import annotations

import pytest
import torch

from omninft_bench.data import synthav
from trainers.backbone import DEFAULT_WEIGHTS, Backbone, TinyConfig
from trainers.sampling import SamplerConfig, per_clip_noise, sample

GROUP = 64


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.set_num_threads(2)
    if DEFAULT_WEIGHTS.exists():
        return Backbone.load(DEFAULT_WEIGHTS)
    return Backbone.tiny(TinyConfig(vocab=["a", "ball"])).eval()  # same compute as the shipped one


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    return [c.prompt for c in synthav.eval_set(n=GROUP)]


def test_rollout_64_clips_default_steps(benchmark, backbone, prompts):
    cfg = SamplerConfig()
    cond = backbone.encode_text(prompts)
    noise = per_clip_noise(backbone, range(GROUP))
    result = benchmark.pedantic(lambda: sample(backbone, cond, cfg, noise=noise), rounds=3, iterations=1)
    assert result.video.shape[0] == GROUP
    benchmark.extra_info["clips_per_s"] = GROUP / benchmark.stats.stats.mean
    benchmark.extra_info["steps"] = cfg.steps
    assert benchmark.stats.stats.min < 60.0


def test_decode_64_clips(benchmark, backbone, prompts):
    result = sample(backbone, prompts, SamplerConfig(steps=1), seed=0)
    clips = benchmark.pedantic(
        lambda: backbone.decode(result.video, result.audio, prompts), rounds=3, iterations=1
    )
    assert len(clips) == GROUP and clips[0].audio.shape == (1, 32000)
    benchmark.extra_info["clips_per_s"] = GROUP / benchmark.stats.stats.mean


def test_train_step_32_clips(benchmark, backbone, prompts):
    backbone.train()
    cond_prompts = prompts[:32]
    xv, xa = per_clip_noise(backbone, range(32))

    def step():
        cond = backbone.encode_text(cond_prompts)
        v, a = backbone.velocity(xv, xa, torch.full((32,), 0.5), None, cond)
        (v.square().mean() + a.square().mean()).backward()
        backbone.zero_grad(set_to_none=True)

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    backbone.eval()
    assert benchmark.stats.stats.min < 30.0
