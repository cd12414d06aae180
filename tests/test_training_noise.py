"""Training noise of the RL loop: per-group sharing (common random numbers) and its effect."""

from __future__ import annotations

import pytest
import torch

from trainers.advantages import optimality_probability
from trainers.nft_loss import nft_loss
from trainers.omninft import noised, training_noise

SIGMAS = torch.linspace(1.0, 0.1, 10)


def test_shared_within_group_distinct_across_groups():
    g = torch.Generator().manual_seed(0)
    t, t_a, eps_v, eps_a = training_noise(SIGMAS, torch.Size([6, 5, 3]), torch.Size([6, 4, 2]), 3, g)
    assert torch.equal(t_a, t)
    assert t.shape == (6,) and eps_v.shape == (6, 5, 3) and eps_a.shape == (6, 4, 2)
    for lo in (0, 3):
        assert torch.equal(t[lo : lo + 3], t[lo].expand(3))
        assert torch.equal(eps_v[lo : lo + 3], eps_v[lo].expand(3, 5, 3))
        assert torch.equal(eps_a[lo : lo + 3], eps_a[lo].expand(3, 4, 2))
    assert not torch.equal(eps_v[0], eps_v[3])
    assert set(t.tolist()) <= set(SIGMAS.tolist())


def test_share_one_draws_per_sample_in_the_old_order():
    """``shared_noise=false`` keeps the draw order of the loop before sharing existed."""
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    t, _, eps_v, eps_a = training_noise(SIGMAS, torch.Size([4, 5, 3]), torch.Size([4, 2, 2]), 1, g1)
    assert torch.equal(t, SIGMAS[torch.randint(10, (4,), generator=g2)])
    assert torch.equal(eps_v, torch.randn((4, 5, 3), generator=g2))
    assert torch.equal(eps_a, torch.randn((4, 2, 2), generator=g2))


def test_audio_sigmas_are_drawn_per_group_without_moving_the_video_draws():
    audio = torch.tensor([0.3, 0.2])
    shapes = (torch.Size([8, 5, 3]), torch.Size([8, 4, 2]))
    t, t_same, eps_v, eps_a = training_noise(SIGMAS, *shapes, 4, torch.Generator().manual_seed(3))
    t_v, t_a, eps_v2, eps_a2 = training_noise(SIGMAS, *shapes, 4, torch.Generator().manual_seed(3), audio)
    assert torch.equal(t_v, t) and torch.equal(eps_v2, eps_v) and torch.equal(eps_a2, eps_a)
    assert set(t_a.tolist()) <= {0.30000001192092896, 0.20000000298023224}
    assert torch.equal(t_a[:4], t_a[0].expand(4)) and torch.equal(t_a[4:], t_a[4].expand(4))
    many = training_noise(SIGMAS, torch.Size([400, 1, 1]), torch.Size([400, 1, 1]), 4, torch.Generator(), audio)[1]
    assert set(many.tolist()) == set(audio.tolist())  # both levels occur over 100 groups


def test_batch_must_split_into_groups():
    with pytest.raises(ValueError, match="does not split"):
        training_noise(SIGMAS, torch.Size([6, 2, 2]), torch.Size([6, 2, 2]), 4, torch.Generator())


def _policy_grad(share: int, seed: int, x0: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Gradient of the NFT policy loss of one group w.r.t. a linear velocity model v = x_t W."""
    w = torch.eye(x0.shape[-1]).requires_grad_(True)
    t, _, eps, _ = training_noise(SIGMAS, x0.shape, x0.shape, share, torch.Generator().manual_seed(seed))
    x_t = noised(x0, t, eps)
    v_theta = x_t @ w
    out = nft_loss(x0, x_t, t, v_theta, v_theta.detach(), None, r, beta=1.0, kl_coef=0.0)
    return torch.autograd.grad(out.policy, w)[0]


def test_sharing_reduces_gradient_variance_for_similar_clips():
    """Zero-sum advantages over near-identical clips: with one noise draw per group the
    noise-driven part of each sample's gradient cancels, so the gradient varies far less from
    draw to draw than with one draw per sample (hand-checkable limit: identical clips give 0)."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 16, 4, generator=g) + 0.05 * torch.randn(8, 16, 4, generator=g)
    adv = torch.randn(8, generator=g)
    r = optimality_probability(adv - adv.mean(), 5.0)

    def spread(share: int) -> float:
        grads = torch.stack([_policy_grad(share, s, x0, r) for s in range(64)])
        return float(grads.var(0).sum())

    assert spread(8) < 0.1 * spread(1)
    identical = x0[:1].expand(8, 16, 4).clone()
    assert torch.allclose(_policy_grad(8, 0, identical, r), torch.zeros(4, 4), atol=1e-6)
