"""The gradient diagnostics: cross-batch cosines by hand, a reward that every batch agrees on
(brightness) far more consistent than its within-group placebo, and two opposed rewards
(brightness, darkness) in full conflict within every batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omninft_bench.metrics.base import PerSampleMetric
from omninft_bench.metrics.registry import MetricSpec
from omninft_bench.rewards import MetricReward
from tests.test_trainer import Brightness, config, rewards, small_backbone
from trainers.gradient_consistency import (
    advantage_correlations,
    advantage_scales,
    batch_gradients,
    consistency,
    pairwise_cosines,
    reward_conflicts,
)


class Darkness(PerSampleMetric):
    """Minus the mean pixel value: brightness's exact opposite."""

    spec = MetricSpec("test_darkness", "video", True, "per_sample", frozenset({"video"}))

    def extract(self, clip):
        return torch.tensor(-float(clip.video_float().mean()))

    def value(self, features, text):
        return float(features)


def test_pairwise_cosines_by_hand() -> None:
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    c = pairwise_cosines(g)
    assert c == pytest.approx([1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)])
    row = consistency({"x": g})["x"]
    assert row["mean_cosine"] == pytest.approx(0.0, abs=1e-7)
    assert row["sd_cosine"] == pytest.approx(np.std(c, ddof=1))
    assert row["pairs"] == 3


def test_a_consistent_reward_beats_its_placebo() -> None:
    rs, weights = rewards(audio=False)
    cfg = config(train_timesteps=2, shared_noise=True, train_sigma_fraction=0.7)
    grads = batch_gradients(small_backbone(), cfg, rs, weights, seed=0, batches=6, progress=False).grads
    n_params = sum(p.numel() for p in small_backbone().transformer.parameters())
    assert set(grads) == {"test_brightness", "gdpo", "placebo"}
    assert all(g.shape == (6, n_params) for g in grads.values())
    # one reward: its GDPO sum is the reward's own advantage times its weight (1)
    torch.testing.assert_close(grads["gdpo"], grads["test_brightness"])
    result = consistency(grads)
    assert result["gdpo"]["mean_cosine"] > 0.3
    assert result["gdpo"]["mean_cosine"] > result["placebo"]["mean_cosine"] + 0.2


def test_reward_conflicts_and_advantage_correlations_by_hand() -> None:
    grads = {"a": torch.tensor([[1.0, 0.0], [0.0, 2.0]]), "b": torch.tensor([[1.0, 1.0], [0.0, -1.0]]),
             "c": torch.tensor([[3.0, 0.0], [0.0, 1.0]])}
    out = reward_conflicts(grads, ["a", "b", "c"])
    assert list(out) == [("a", "b"), ("a", "c"), ("b", "c")]
    cos_ab = [1 / math.sqrt(2), -1.0]
    assert out[("a", "b")]["mean_cosine"] == pytest.approx(np.mean(cos_ab))
    assert out[("a", "b")]["sd_cosine"] == pytest.approx(np.std(cos_ab, ddof=1))
    assert out[("a", "c")] == {"mean_cosine": pytest.approx(1.0), "sd_cosine": pytest.approx(0.0), "batches": 2}
    adv = {"x": torch.tensor([[1.0, -1.0, 0.5, -0.5]]), "y": torch.tensor([[2.0, -2.0, float("nan"), 0.0]]),
           "z": torch.tensor([[-1.0, 1.0, -0.5, 0.5]])}
    corr = advantage_correlations(adv)
    assert corr[("x", "z")] == pytest.approx(-1.0)
    # the NaN clip is dropped: x = (1, -1, -0.5), y = (2, -2, 0)
    assert corr[("x", "y")] == pytest.approx(np.corrcoef([1, -1, -0.5], [2, -2, 0])[0, 1])


def test_opposed_rewards_conflict_in_every_batch() -> None:
    rs = [MetricReward(Brightness()), MetricReward(Darkness())]
    weights = {r.name: 1.0 for r in rs}
    cfg = config(train_timesteps=1, shared_noise=True, train_sigma_fraction=0.7)
    measured = batch_gradients(small_backbone(), cfg, rs, weights, seed=0, batches=3, progress=False)
    assert set(measured.advantages) == {"test_brightness", "test_darkness"}
    assert measured.advantages["test_brightness"].shape == (3, cfg.prompts_per_step * cfg.group_size)
    assert advantage_correlations(measured.advantages)[("test_brightness", "test_darkness")] == pytest.approx(-1.0)
    row = reward_conflicts(measured.grads, ["test_brightness", "test_darkness"])[("test_brightness", "test_darkness")]
    assert row["mean_cosine"] == pytest.approx(-1.0, abs=1e-4)
    # the two advantages cancel, so their GDPO sum carries no signal
    assert measured.grads["gdpo"].abs().max() < 1e-4 * measured.grads["test_brightness"].abs().max()


def test_advantage_scales_by_hand() -> None:
    # rms of (3, -4) is sqrt(12.5); weighted 2 -> 2 sqrt(12.5); a NaN is dropped, not propagated.
    advantages = {"a": torch.tensor([[3.0, -4.0]]), "b": torch.tensor([[1.0, float("nan"), -1.0]])}
    scales = advantage_scales(advantages, {"a": 2.0, "b": 0.5})
    assert scales["a"] == pytest.approx(2.0 * math.sqrt(12.5))
    assert scales["b"] == pytest.approx(0.5)


def test_same_prompts_reuses_batch_zeros_prompts_with_fresh_noise(monkeypatch) -> None:
    import trainers.gradient_consistency as gc

    asked = []
    real = gc.training_prompts

    def recording(seed, step, n):
        asked.append(step)
        return real(seed, step, n)

    monkeypatch.setattr(gc, "training_prompts", recording)
    rs, weights = rewards(audio=False)
    cfg = config(train_timesteps=1, shared_noise=True, train_sigma_fraction=0.7)
    grads = batch_gradients(small_backbone(), cfg, rs, weights, seed=0, batches=2, same_prompts=True,
                            progress=False).grads
    assert asked == [0, 0]
    assert not torch.equal(grads["gdpo"][0], grads["gdpo"][1])  # each batch keeps its own noise
    asked.clear()
    batch_gradients(small_backbone(), cfg, rs, weights, seed=0, batches=2, progress=False)
    assert asked == [0, 1]
