"""The cross-batch gradient-consistency diagnostic: cosines by hand, and a reward that every batch
agrees on (brightness) is far more consistent than its within-group placebo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.test_trainer import config, rewards, small_backbone
from trainers.gradient_consistency import batch_gradients, consistency, pairwise_cosines


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
    grads = batch_gradients(small_backbone(), cfg, rs, weights, seed=0, batches=6, progress=False)
    n_params = sum(p.numel() for p in small_backbone().transformer.parameters())
    assert set(grads) == {"test_brightness", "gdpo", "placebo"}
    assert all(g.shape == (6, n_params) for g in grads.values())
    # one reward: its GDPO sum is the reward's own advantage times its weight (1)
    torch.testing.assert_close(grads["gdpo"], grads["test_brightness"])
    result = consistency(grads)
    assert result["gdpo"]["mean_cosine"] > 0.3
    assert result["gdpo"]["mean_cosine"] > result["placebo"]["mean_cosine"] + 0.2
