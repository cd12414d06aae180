"""The OmniNFT loop: a trivial reward goes up, parameters change, NaN rewards are excluded,
a killed run resumes to identical weights, and the ablation grid expands as documented."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from omninft_bench.media import as_written
from omninft_bench.metrics.base import PerSampleMetric
from omninft_bench.metrics.registry import MetricSpec
from omninft_bench.rewards import MetricReward
from trainers.ablation import data_seed, expand_ablation, variant_from_name
from trainers.backbone import Backbone, TinyConfig, param_group
from trainers.omninft import OmniNFTConfig, StepLog, Variant, optimizer_groups, train
from trainers.sampling import SamplerConfig


class Brightness(PerSampleMetric):
    """Mean pixel value: a trivial video reward the policy can raise."""

    spec = MetricSpec("test_brightness", "video", True, "per_sample", frozenset({"video"}))

    def extract(self, clip):
        return torch.tensor(float(clip.video_float().mean()))

    def value(self, features, text):
        return float(features)


class Loudness(PerSampleMetric):
    """Mean absolute amplitude: a trivial audio reward; NaN for every third clip if asked."""

    spec = MetricSpec("test_loudness", "audio", True, "per_sample", frozenset({"audio"}))

    def __init__(self, nan_every: int = 0):
        super().__init__()
        self.nan_every = nan_every
        self.calls = 0

    def extract(self, clip):
        return torch.tensor(float(np.abs(clip.audio).mean()))

    def value(self, features, text):
        self.calls += 1
        if self.nan_every and self.calls % self.nan_every == 0:
            return math.nan
        return float(features)


def small_backbone(seed: int = 0) -> Backbone:
    cfg = TinyConfig(layers=2, video_heads=2, video_head_dim=16, audio_heads=2, audio_head_dim=8, text_dim=16,
                     text_layers=1, text_heads=2, griffin_lim_iters=2, vocab=["ball", "bounces", "red"])
    return Backbone.tiny(cfg, seed=seed)


def config(**changes) -> OmniNFTConfig:
    base = dict(steps=6, prompts_per_step=2, group_size=4, sampler=SamplerConfig(steps=3), train_timesteps=1,
                lr=2e-3, checkpoint_every=2, threads=1, w_ramp_steps=2)
    base.update(changes)
    return OmniNFTConfig(**base)


def rewards(nan_every: int = 0, audio: bool = True) -> tuple[list[MetricReward], dict[str, float]]:
    rs = [MetricReward(Brightness())] + ([MetricReward(Loudness(nan_every))] if audio else [])
    return rs, {r.name: 1.0 for r in rs}


def run(tmp_path: Path, variant: Variant, cfg: OmniNFTConfig, nan_every: int = 0, audio: bool = True,
        **kw) -> tuple[Backbone, list[StepLog]]:
    logs: list[StepLog] = []
    rs, weights = rewards(nan_every, audio)
    backbone, _ = train(small_backbone(), variant, cfg, rs, weights, seed=0, run_dir=tmp_path, log=logs.append,
                        progress=False, **kw)
    return backbone, logs


def test_trivial_reward_goes_up_gdpo(tmp_path: Path) -> None:
    before = {k: v.clone() for k, v in small_backbone().transformer.state_dict().items()}
    backbone, logs = run(tmp_path, Variant("gdpo"), config(steps=16), audio=False)
    after = backbone.transformer.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    bright = [log.metrics["reward/test_brightness"] for log in logs]
    assert np.mean(bright[-3:]) > np.mean(bright[:3]) + 0.005


def test_video_and_audio_rewards_go_up_with_all_components(tmp_path: Path) -> None:
    # Routing sends the brightness advantage to the video tokens and loudness to the audio
    # tokens; surgery and region weights are on too.
    backbone, logs = run(tmp_path, Variant("omninft", True, True, True), config(steps=16))
    bright = [log.metrics["reward/test_brightness"] for log in logs]
    loud = [log.metrics["reward/test_loudness"] for log in logs]
    assert np.mean(bright[-3:]) > np.mean(bright[:3]) + 0.005
    assert np.mean(loud[-3:]) > np.mean(loud[:3])
    assert logs[-1].metrics["region/w_max"] == pytest.approx(1.5)
    for log in logs:
        assert math.isfinite(log.metrics["loss/total"])
        assert {"adv/video_abs", "adv/audio_abs", "loss/kl", "time/step_s"} <= set(log.metrics)


def test_nan_rewards_are_excluded_and_counted(tmp_path: Path) -> None:
    backbone, logs = run(tmp_path, Variant("gdpo"), config(steps=2), nan_every=3)
    assert sum(log.metrics["nan/rewards"] for log in logs) > 0
    assert all(math.isfinite(log.metrics["loss/total"]) for log in logs)
    assert all(torch.isfinite(p).all() for p in backbone.transformer.parameters())


def test_resume_after_a_crash_gives_identical_weights(tmp_path: Path) -> None:
    variant = Variant("omninft", True, True, True)
    full, full_logs = run(tmp_path / "full", variant, config(steps=4))

    class Crash(Exception):
        pass

    def crash_at_3(entry: StepLog) -> None:
        if entry.step == 2:  # after the step-2 checkpoint (checkpoint_every=2), before step 4
            raise Crash

    rs, weights = rewards()
    with pytest.raises(Crash):
        train(small_backbone(), variant, config(steps=4), rs, weights, seed=0, run_dir=tmp_path / "crash",
              log=crash_at_3, progress=False)
    resumed, resumed_logs = run(tmp_path / "crash", variant, config(steps=4), resume=True)
    assert [log.step for log in resumed_logs] == [2, 3]
    for (k, a), b in zip(full.transformer.state_dict().items(), resumed.transformer.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert resumed_logs[-1].metrics["reward/test_brightness"] == full_logs[-1].metrics["reward/test_brightness"]


def test_ablation_grid() -> None:
    grid = expand_ablation("all")
    assert len(grid) == 8 and len({v.name for v in grid}) == 8
    assert grid[0] == Variant("gdpo") and grid[-1] == Variant("omninft", True, True, True)
    assert {(v.routing, v.surgery, v.reweighting) for v in grid} == {
        (a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)
    }
    assert [v.name for v in expand_ablation("none")] == ["gdpo"]
    assert [v.name for v in expand_ablation("full")] == ["omninft"]
    loo = [v.name for v in expand_ablation("loo")]
    assert loo == ["omninft", "surgery+reweighting", "routing+reweighting", "routing+surgery", "gdpo"]
    assert expand_ablation(["reweighting+routing", "nft"]) == [
        Variant("routing+reweighting", routing=True, reweighting=True),
        Variant("nft", advantage="nft"),
    ]
    with pytest.raises(ValueError, match="Did you mean omninft"):
        variant_from_name("omnift")


def test_data_seed_per_run_and_per_seed() -> None:
    names = [v.name for v in expand_ablation("all")] + ["nft"]
    per_run = {(n, s): data_seed(n, s) for n in names for s in (0, 1, 2)}
    assert len(set(per_run.values())) == len(per_run)  # every run its own prompts and noise
    assert all(data_seed(n, s) == v for (n, s), v in per_run.items())  # stable: resume finds the same
    assert {data_seed(n, 3, "per_seed") for n in names} == {3}  # shared by the variants of a seed
    with pytest.raises(ValueError, match="per_run, per_seed"):
        data_seed("gdpo", 0, "shared")


def test_optimizer_groups_split_by_backbone_group_with_their_lr() -> None:
    backbone = small_backbone()
    model, by_group = backbone.transformer, backbone.parameters_by_group()
    params = list(model.parameters())
    assert optimizer_groups(by_group, params, 1e-3, {}) == [{"params": params, "lr": 1e-3}]
    groups = {g["group"]: g for g in optimizer_groups(by_group, params, 1e-3, {"video": 0.5, "cross": 0.0})}
    assert {g: groups[g]["lr"] for g in groups} == {"video": 5e-4, "audio": 1e-3, "cross": 0.0}
    named = {id(p): n for n, p in model.named_parameters()}
    for g, group in groups.items():
        assert group["params"] and all(param_group(named[id(p)]) == g for p in group["params"])
    assert sorted(id(p) for g in groups.values() for p in g["params"]) == sorted(id(p) for p in params)


def test_a_group_at_lr_scale_zero_does_not_move(tmp_path: Path) -> None:
    before = {n: p.detach().clone() for n, p in small_backbone().transformer.named_parameters()}
    backbone, _ = run(tmp_path, Variant("gdpo"), config(steps=2, lr_scales={"video": 0.0}))
    moved = {param_group(n) for n, p in backbone.transformer.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {"audio", "cross"}


def test_lr_scales_reject_unknown_groups_and_negative_multipliers() -> None:
    with pytest.raises(ValueError, match="train.lr_scales has 'text'"):
        config(lr_scales={"text": 0.5})
    with pytest.raises(ValueError, match=r"train.lr_scales.audio=-1"):
        config(lr_scales={"audio": -1.0})


class SeenClips(PerSampleMetric):
    """Brightness that also keeps every clip it scores, to see what the trainer hands the rewards."""

    spec = MetricSpec("test_seen", "video", True, "per_sample", frozenset({"video"}))

    def __init__(self):
        super().__init__()
        self.clips = []

    def extract(self, clip):
        self.clips.append(clip)
        return torch.tensor(float(clip.video_float().mean()))

    def value(self, features, text):
        return float(features)


def test_score_written_hands_the_rewards_the_round_tripped_clips(tmp_path: Path) -> None:
    seen = {}
    for written in (False, True):
        seen[written] = SeenClips()
        train(small_backbone(), Variant("gdpo"), config(steps=1, score_written=written), [MetricReward(seen[written])],
              {"test_seen": 1.0}, seed=0, run_dir=tmp_path / str(written), progress=False)
    # Step 0 rolls out the same clips either way; with score_written the rewards see them as written and read.
    raw, got = seen[False].clips, seen[True].clips
    assert len(raw) == len(got) == 2 * 4
    for expected, clip in zip(as_written(raw), got, strict=True):
        np.testing.assert_array_equal(clip.video, expected.video)
        np.testing.assert_array_equal(clip.audio, expected.audio)
        assert clip.prompt == expected.prompt
    assert any(not np.array_equal(a.video, b.video) for a, b in zip(raw, got, strict=True))
