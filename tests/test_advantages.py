"""Group normalization, modality routing and the optimality probability."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.advantages import (
    group_advantages,
    nft_advantage,
    optimality_probability,
    route_advantages,
)


def test_group_advantages_matches_formula():
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])
    out = group_advantages(rewards, 3)
    batch_std = rewards.double().std(correction=0)
    expected = torch.tensor([-1.0, 0.0, 1.0, -10.0, 0.0, 10.0]).double() / (batch_std + 1e-4)
    torch.testing.assert_close(out.advantages.double(), expected, rtol=1e-6, atol=1e-6)
    assert out.num_valid == 6 and out.valid.all()


def test_group_ids_equivalent_to_group_size_and_order_free():
    torch.manual_seed(0)
    rewards = torch.randn(8)
    by_size = group_advantages(rewards, 4).advantages
    ids = torch.tensor([7, 7, 7, 7, 3, 3, 3, 3])
    torch.testing.assert_close(group_advantages(rewards, ids).advantages, by_size)
    perm = torch.randperm(8)
    permuted = group_advantages(rewards[perm], ids[perm]).advantages
    torch.testing.assert_close(permuted, by_size[perm])


def test_group_advantages_nan_aware():
    rewards = torch.tensor([1.0, float("nan"), 3.0, 5.0, 7.0, float("inf")])
    out = group_advantages(rewards, 3)
    assert torch.isfinite(out.advantages).all()
    assert out.valid.tolist() == [True, False, True, True, True, False]
    assert out.num_valid == 4
    assert out.advantages[1] == 0 and out.advantages[5] == 0
    valid = torch.tensor([1.0, 3.0, 5.0, 7.0]).double()
    std = valid.std(correction=0) + 1e-4
    expected = torch.tensor([-1.0, 0.0, 1.0, -1.0, 1.0, 0.0]).double() / std
    expected[1] = expected[5] = 0.0
    torch.testing.assert_close(out.advantages.double(), expected, rtol=1e-6, atol=1e-6)
    # an explicit mask (RewardResult.valid) excludes finite values too
    masked = group_advantages(
        torch.tensor([1.0, 99.0, 3.0, 5.0, 7.0, 0.0]), 3,
        valid=torch.tensor([True, False, True, True, True, False]),
    )
    torch.testing.assert_close(masked.advantages, out.advantages)


def test_group_advantages_degenerate_cases():
    all_nan = group_advantages(torch.full((4,), float("nan")), 2)
    assert all_nan.num_valid == 0 and (all_nan.advantages == 0).all()
    constant = group_advantages(torch.ones(4), 2)
    assert (constant.advantages == 0).all()
    with pytest.raises(ValueError, match="divide"):
        group_advantages(torch.ones(5), 2)
    with pytest.raises(ValueError, match="shape"):
        group_advantages(torch.ones(4), torch.zeros(3))


MODALITIES = {
    "hps": "video",
    "videoalign": "text_video",
    "aesthetics": "audio",
    "clap": "text_audio",
    "desync": "sync",
}
WEIGHTS = {"hps": 1.5, "videoalign": 1.0, "aesthetics": 0.5, "clap": 1.0, "desync": 1.0}


def _per_reward(batch: int = 4) -> dict[str, torch.Tensor]:
    return {
        name: torch.full((batch,), float(i + 1)) * torch.arange(batch)
        for i, name in enumerate(sorted(MODALITIES))
    }


def test_routing_sums_by_declared_modality():
    adv = _per_reward()
    out = route_advantages(adv, WEIGHTS, MODALITIES, mode="routing")
    video = 1.5 * adv["hps"] + 1.0 * adv["videoalign"] + 1.0 * adv["desync"]
    audio = 0.5 * adv["aesthetics"] + 1.0 * adv["clap"] + 1.0 * adv["desync"]
    torch.testing.assert_close(out.video, video)
    torch.testing.assert_close(out.audio, audio)


def test_gdpo_shares_one_advantage():
    adv = _per_reward()
    out = route_advantages(adv, WEIGHTS, MODALITIES, mode="gdpo")
    shared = sum(WEIGHTS[k] * adv[k] for k in adv)
    torch.testing.assert_close(out.video, shared)
    torch.testing.assert_close(out.audio, shared)


def test_branch_without_rewards_gets_zero():
    out = route_advantages({"hps": torch.ones(3)}, {"hps": 2.0}, MODALITIES)
    torch.testing.assert_close(out.video, torch.full((3,), 2.0))
    torch.testing.assert_close(out.audio, torch.zeros(3))


def test_routing_accepts_enum_tags():
    import enum

    class Tag(enum.StrEnum):
        AUDIO = "audio"

    out = route_advantages({"a": torch.ones(2)}, {"a": 1.0}, {"a": Tag.AUDIO})
    torch.testing.assert_close(out.audio, torch.ones(2))


def test_unroutable_reward_is_an_error_naming_it():
    adv = {"mystery_score": torch.ones(2)}
    with pytest.raises(KeyError, match="mystery_score"):
        route_advantages(adv, {"mystery_score": 1.0}, {})
    with pytest.raises(ValueError, match="mystery_score"):
        route_advantages(adv, {"mystery_score": 1.0}, {"mystery_score": "joint"})
    with pytest.raises(KeyError, match="mystery_score"):
        route_advantages(adv, {}, {"mystery_score": "video"})
    with pytest.raises(KeyError, match="typo"):
        route_advantages(adv, {"mystery_score": 1.0, "typo": 1.0}, {"mystery_score": "video"})
    with pytest.raises(ValueError, match="nft_advantage"):
        route_advantages(adv, {"mystery_score": 1.0}, {"mystery_score": "video"}, mode="nft")
    with pytest.raises(ValueError, match="NaN"):
        route_advantages(
            {"mystery_score": torch.tensor([float("nan"), 0.0])},
            {"mystery_score": 1.0},
            {"mystery_score": "video"},
        )


def test_nft_advantage_normalizes_weighted_raw_sum():
    raw = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([0.0, 1.0, float("nan"), 1.0])}
    out = nft_advantage(raw, {"a": 1.0, "b": 2.0}, 2)
    expected = group_advantages(torch.tensor([1.0, 4.0, float("nan"), 6.0]), 2)
    torch.testing.assert_close(out.video, expected.advantages)
    assert out.audio is out.video
    assert out.valid.tolist() == [True, True, False, True]


def test_optimality_probability():
    adv = torch.tensor([-100.0, -5.0, -2.5, 0.0, 2.5, 5.0, 100.0])
    r = optimality_probability(adv)
    torch.testing.assert_close(r, torch.tensor([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]))
    assert math.isclose(float(optimality_probability(torch.tensor(1.0), clip=2.0)), 0.75)
