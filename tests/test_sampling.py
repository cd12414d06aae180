"""Flow-matching sampler: seeded determinism, schedules and trajectory for the RL trainer,
per-modality timesteps, CFG, and ``stage=sample`` writing a JavisBench folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omninft_bench.config import compose_config
from omninft_bench.data.layout import read_javisbench
from omninft_bench.media import read_clip
from trainers.backbone import Backbone, TinyConfig
from trainers.sampling import SamplerConfig, per_clip_noise, sample, sigma_schedule

PROMPTS = ["a small red ball bounces twice", "a large blue square slides to the left"]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    cfg = TinyConfig(layers=2, video_heads=2, video_head_dim=16, audio_heads=2, audio_head_dim=8, text_dim=16,
                     text_layers=1, text_heads=2, griffin_lim_iters=2, vocab=["a", "ball", "red", "small"])
    return Backbone.tiny(cfg, seed=0).eval()


def test_same_seed_same_clips_other_seed_differs(backbone):
    cfg = SamplerConfig(steps=3)
    a = sample(backbone, PROMPTS, cfg, seed=7)
    b = sample(backbone, PROMPTS, cfg, generator=torch.Generator().manual_seed(7))
    c = sample(backbone, PROMPTS, cfg, seed=8)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert not torch.allclose(a.video, c.video)
    assert a.video.shape == (2, 128, 384) and a.audio.shape == (2, 50, 128)


def test_trajectory_and_sigmas_for_the_trainer(backbone):
    cfg = SamplerConfig(steps=4)
    noise = per_clip_noise(backbone, [0, 1])
    seen = []
    out = sample(backbone, PROMPTS, cfg, noise=noise, return_trajectory=True, callback=seen.append)
    expected = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])
    assert torch.allclose(out.sigmas, expected) and torch.allclose(out.audio_sigmas, expected)
    assert torch.allclose(sigma_schedule(4), expected)
    assert out.video_trajectory.shape == (5, 2, 128, 384) and out.audio_trajectory.shape == (5, 2, 50, 128)
    assert torch.equal(out.video_trajectory[0], noise[0]) and torch.equal(out.video_trajectory[-1], out.video)
    assert [s.index for s in seen] == [0, 1, 2, 3] and all(s.num_steps == 4 for s in seen)
    assert [s.sigma_video for s in seen] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    # One Euler step: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v(x_i, sigma_i)
    cond = backbone.encode_text(PROMPTS)
    with torch.no_grad():
        v, a = backbone.velocity(out.video_trajectory[1], out.audio_trajectory[1], 0.75, 0.75, cond)
    assert torch.allclose(out.video_trajectory[2], out.video_trajectory[1] - 0.25 * v, atol=1e-5)
    assert torch.allclose(out.audio_trajectory[2], out.audio_trajectory[1] - 0.25 * a, atol=1e-5)


def test_per_modality_timesteps(backbone):
    noise = per_clip_noise(backbone, [0, 1])
    shared = sample(backbone, PROMPTS, SamplerConfig(steps=3), noise=noise)
    own = sample(backbone, PROMPTS, SamplerConfig(steps=3, audio_shift=3.0), noise=noise)
    assert torch.allclose(own.sigmas, shared.sigmas)
    assert own.audio_sigmas[1] > shared.audio_sigmas[1]  # shift > 1 keeps audio noisier for longer
    assert not torch.allclose(own.audio, shared.audio)


def test_cfg_changes_samples_and_scale_one_is_plain(backbone):
    noise = per_clip_noise(backbone, [0, 1])
    plain = sample(backbone, PROMPTS, SamplerConfig(steps=2), noise=noise)
    guided = sample(backbone, PROMPTS, SamplerConfig(steps=2, cfg_scale=3.0), noise=noise)
    assert SamplerConfig(steps=2, cfg_scale=3.0).uses_cfg and not SamplerConfig().uses_cfg
    assert not torch.allclose(plain.video, guided.video) and not torch.allclose(plain.audio, guided.audio)


def test_per_clip_noise_is_batch_invariant(backbone):
    both = per_clip_noise(backbone, [5, 6])
    alone = per_clip_noise(backbone, [6])
    assert torch.equal(both[0][1:], alone[0]) and torch.equal(both[1][1:], alone[1])


def test_sample_stage_writes_javisbench_folder(tmp_path, backbone):
    from trainers.sample import SampleConfig, main

    ckpt = backbone.save(tmp_path / "m.safetensors")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red ball\n\na small ball\n")
    cfg = compose_config(
        SampleConfig,
        [f"backbone.pretrained={ckpt}", f"prompts={prompts}", "n=0", "batch_size=1",
         f"out={tmp_path / 'out'}", "sampler.steps=2", "progress=false"],
    )
    out = main(cfg)
    entries = read_javisbench(out)
    assert [e.text for e in entries] == ["a red ball", "a small ball"]
    assert [e.path for e in entries] == ["samples/sample_0000.mp4", "samples/sample_0001.mp4"]
    clip = read_clip(out / entries[1].path)
    assert clip.video.shape == (16, 32, 32, 3) and clip.sample_rate == 16000
    assert (out / "samples" / "sample_0001.wav").exists()
    # batch-size invariance of the written clips: clip 1 alone equals clip 1 of a batch of two
    cfg2 = compose_config(SampleConfig, [f"backbone.pretrained={ckpt}", f"prompts={prompts}", "n=0",
                                         "batch_size=2", f"out={tmp_path / 'out2'}", "sampler.steps=2",
                                         "progress=false"])
    clip2 = read_clip(main(cfg2) / entries[1].path)
    assert np.abs(clip2.audio - clip.audio).max() < 1e-3
