"""The placebo control (``train.reward_control=shuffle``): rewards detached from their clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omninft_bench.rewards import RewardResult
from tests.test_trainer import config, run
from trainers.advantages import group_advantages
from trainers.omninft import OmniNFTConfig, Variant, placebo_rewards


def results() -> dict[str, RewardResult]:
    values = torch.tensor([0.1, 0.2, float("nan"), 0.4, 0.5, 0.6])
    valid = torch.isfinite(values)
    reasons = tuple(None if v else "unreadable" for v in valid.tolist())
    other = torch.arange(6, dtype=torch.float32)
    return {
        "a": RewardResult("a", "video", values, valid, reasons),
        "b": RewardResult("b", "audio", other, torch.ones(6, dtype=torch.bool), (None,) * 6),
    }


def test_one_permutation_moves_values_validity_and_reasons_of_every_reward_together() -> None:
    out = placebo_rewards(results(), 3, torch.Generator().manual_seed(3))
    perm = out["b"].values.long()  # reward b held the row indices, so it reveals the permutation
    assert perm.tolist() != list(range(6))
    assert sorted(perm[:3].tolist()) == [0, 1, 2] and sorted(perm[3:].tolist()) == [3, 4, 5]  # within groups
    a = results()["a"]
    assert torch.equal(out["a"].values[torch.isfinite(out["a"].values)], a.values[perm][torch.isfinite(a.values[perm])])
    assert torch.equal(out["a"].valid, a.valid[perm])
    assert out["a"].reasons == tuple(a.reasons[i] for i in perm.tolist())
    assert out["a"].modality == "video" and out["b"].modality == "audio"


def test_same_generator_seed_gives_the_same_permutation() -> None:
    one = placebo_rewards(results(), 3, torch.Generator().manual_seed(7))["b"].values
    two = placebo_rewards(results(), 3, torch.Generator().manual_seed(7))["b"].values
    assert torch.equal(one, two)


def test_placebo_advantages_are_the_real_ones_moved_within_each_group() -> None:
    values = torch.tensor([0.3, 0.9, 0.1, 0.5, 2.0, 4.0, 3.0, 1.0])
    real = group_advantages(values, 4).advantages
    r = RewardResult("a", "video", values, torch.ones(8, dtype=torch.bool), (None,) * 8)
    shuffled = placebo_rewards({"a": r}, 4, torch.Generator().manual_seed(0))["a"]
    placebo = group_advantages(shuffled.values, 4).advantages
    assert not torch.equal(placebo, real)
    for g in (slice(0, 4), slice(4, 8)):
        assert torch.allclose(placebo[g].sort().values, real[g].sort().values)


def test_batch_that_does_not_split_into_groups_is_an_error() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        placebo_rewards(results(), 4, torch.Generator().manual_seed(0))


def test_unknown_control_is_an_error_naming_the_key() -> None:
    with pytest.raises(ValueError, match="train.reward_control"):
        OmniNFTConfig(reward_control="permute")


def test_placebo_does_not_learn_the_trivial_reward_that_the_real_run_learns(tmp_path: Path) -> None:
    def gain(control: str) -> float:
        _, logs = run(tmp_path / control, Variant("gdpo"), config(steps=16, reward_control=control), audio=False)
        bright = [log.metrics["reward/test_brightness"] for log in logs]
        return float(np.mean(bright[-3:]) - np.mean(bright[:3]))

    real, placebo = gain("none"), gain("shuffle")
    assert real > 0.005
    assert placebo < real / 2
