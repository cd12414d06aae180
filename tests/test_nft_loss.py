"""DiffusionNFT loss identities (x0 form with adaptive weights, velocity form, total)."""

from __future__ import annotations

import pytest
import torch

from trainers.nft_loss import implicit_policies, nft_loss, nft_loss_velocity, omninft_total

B, N, C = 3, 5, 4


def _inputs(seed: int = 0, requires_grad: bool = True):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(B, N, C, generator=g)
    noise = torch.randn(B, N, C, generator=g)
    t = torch.tensor([0.2, 0.5, 0.9])
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    v_theta = (noise - x0 + 0.3 * torch.randn(B, N, C, generator=g)).requires_grad_(requires_grad)
    v_old = noise - x0 + 0.3 * torch.randn(B, N, C, generator=g)
    v_ref = noise - x0 + 0.3 * torch.randn(B, N, C, generator=g)
    r = torch.tensor([0.1, 0.5, 0.8])
    return x0, x_t, t, v_theta, v_old, v_ref, r


def _grad(loss: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(loss, v, retain_graph=True)[0]


def test_matches_released_formula():
    x0, x_t, t, v_theta, v_old, v_ref, r = _inputs()
    beta = 0.1
    out = nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, beta=beta, kl_coef=1e-4)
    tt = t[:, None, None]
    v_pos = beta * v_theta + (1 - beta) * v_old
    v_neg = (1 + beta) * v_old - beta * v_theta
    e_pos = x_t - tt * v_pos - x0
    e_neg = x_t - tt * v_neg - x0
    w_pos = e_pos.detach().abs().mean(dim=(1, 2)).clamp(min=1e-5)
    w_neg = e_neg.detach().abs().mean(dim=(1, 2)).clamp(min=1e-5)
    per = 5 * (r * e_pos.square().mean(dim=(1, 2)) / w_pos
               + (1 - r) * e_neg.square().mean(dim=(1, 2)) / w_neg) / beta
    kl = ((x_t - tt * v_theta) - (x_t - tt * v_ref)).square().mean(dim=(1, 2))
    torch.testing.assert_close(out.policy_per_sample, per)
    torch.testing.assert_close(out.kl_per_sample, kl)
    torch.testing.assert_close(out.total, per.mean() + 1e-4 * kl.mean())
    torch.testing.assert_close(_grad(out.total, v_theta), _grad(per.mean() + 1e-4 * kl.mean(), v_theta))


def test_beta_one_positive_policy_is_current_model():
    _, _, _, v_theta, v_old, _, _ = _inputs()
    v_pos, v_neg = implicit_policies(v_theta, v_old, 1.0)
    assert torch.equal(v_pos, v_theta)
    torch.testing.assert_close(v_neg, 2 * v_old - v_theta)
    # ... so with r = 1 the loss does not depend on v_old at all.
    x0, x_t, t, v_theta, v_old, v_ref, _ = _inputs()
    ones = torch.ones(B)
    a = nft_loss(x0, x_t, t, v_theta, v_old, v_ref, ones, beta=1.0)
    b = nft_loss(x0, x_t, t, v_theta, v_old + 1.0, v_ref, ones, beta=1.0)
    torch.testing.assert_close(a.total, b.total)


def test_r_one_keeps_only_positive_term():
    x0, x_t, t, v_theta, v_old, v_ref, _ = _inputs()
    beta = 0.5
    out = nft_loss(x0, x_t, t, v_theta, v_old, None, torch.ones(B), beta=beta)
    torch.testing.assert_close(out.policy_per_sample, 5 * out.loss_pos / beta)
    zero = nft_loss(x0, x_t, t, v_theta, v_old, None, torch.zeros(B), beta=beta)
    torch.testing.assert_close(zero.policy_per_sample, 5 * zero.loss_neg / beta)


def test_r_half_on_policy_gradient_cancels():
    x0, x_t, t, v_theta, _, v_ref, _ = _inputs()
    v_old = v_theta.detach().clone()
    for beta in (1.0, 0.1):
        out = nft_loss(x0, x_t, t, v_theta, v_old, None, torch.full((B,), 0.5), beta=beta)
        torch.testing.assert_close(out.loss_pos, out.loss_neg)
        grad = _grad(out.total, v_theta)
        assert grad.abs().max() < 1e-6
        # the two halves pull in exactly opposite directions
        g_pos = _grad(out.loss_pos.sum(), v_theta)
        g_neg = _grad(out.loss_neg.sum(), v_theta)
        torch.testing.assert_close(g_pos, -g_neg)
        assert g_pos.abs().max() > 1e-3


def test_on_policy_gradient_does_not_depend_on_beta():
    # At v_theta == v_old (one update per rollout batch, old policy = current) beta scales both
    # implicit policies' dependence on v_theta by beta and the loss by 1/beta: it cancels.
    x0, x_t, t, v_theta, _, v_ref, r = _inputs()
    v_old = v_theta.detach().clone()
    grads = [_grad(nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, beta=beta).total, v_theta)
             for beta in (1.0, 0.1, 0.01)]
    assert grads[0].abs().max() > 1e-3
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0])
    # off policy it does depend on beta
    v_far = v_old + 0.5
    far = [_grad(nft_loss(x0, x_t, t, v_theta, v_far, v_ref, r, beta=beta).total, v_theta)
           for beta in (1.0, 0.1)]
    assert (far[0] - far[1]).abs().max() > 1e-3


def test_gradient_flows_only_through_v_theta():
    x0, x_t, t, v_theta, v_old, v_ref, r = _inputs()
    others = [x.clone().requires_grad_(True) for x in (x0, x_t, t, v_old, v_ref, r)]
    weights = torch.rand(B, N).add(1.0).requires_grad_(True)
    out = nft_loss(others[0], others[1], others[2], v_theta, others[3], others[4], others[5],
                   beta=0.3, token_weights=weights)
    out.total.backward()
    assert v_theta.grad is not None and v_theta.grad.abs().sum() > 0
    for leaf in [*others, weights]:
        assert leaf.grad is None
    assert not out.weight_pos.requires_grad and not out.weight_neg.requires_grad


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_x0_form_equals_velocity_form_up_to_t2_and_adaptive_weight(beta):
    x0, x_t, t, v_theta, v_old, v_ref, r = _inputs(seed=1)
    weights = torch.rand(B, N) + 1.0
    x0f = nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, beta=beta, token_weights=weights)
    vf = nft_loss_velocity(x0, x_t, t, v_theta, v_old, v_ref, r, beta=beta, token_weights=weights)
    t2 = t.square()
    torch.testing.assert_close(x0f.loss_pos * x0f.weight_pos, t2 * vf.loss_pos)
    torch.testing.assert_close(x0f.loss_neg * x0f.weight_neg, t2 * vf.loss_neg)
    torch.testing.assert_close(x0f.kl_per_sample, t2 * vf.kl_per_sample)
    # same gradient once the per-sample factors are applied to the velocity-form terms
    rebuilt = (5.0 / beta) * t2 * (r * vf.loss_pos / x0f.weight_pos
                                   + (1 - r) * vf.loss_neg / x0f.weight_neg)
    torch.testing.assert_close(_grad(x0f.policy, v_theta), _grad(rebuilt.mean(), v_theta))


def test_velocity_form_matches_paper():
    x0, x_t, t, v_theta, v_old, _, r = _inputs()
    out = nft_loss_velocity(x0, x_t, t, v_theta, v_old, None, r, beta=1.0)
    target = (x_t - x0) / t[:, None, None]
    v_neg = 2 * v_old - v_theta
    paper = (r * (v_theta - target).square().mean(dim=(1, 2))
             + (1 - r) * (v_neg - target).square().mean(dim=(1, 2)))
    torch.testing.assert_close(out.policy_per_sample, paper)
    assert out.kl == 0


def test_token_weights():
    x0, x_t, t, v_theta, v_old, v_ref, r = _inputs()
    plain = nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, beta=0.5)
    uniform = nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, beta=0.5,
                       token_weights=torch.full((B, N), 1.37))
    torch.testing.assert_close(uniform.total, plain.total)
    weights = torch.ones(B, N)
    weights[:, 0] = 0.0
    masked = nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, beta=0.5, token_weights=weights)
    # the adaptive weight ignores token weights; the KL is an unweighted token mean
    torch.testing.assert_close(masked.weight_pos, plain.weight_pos)
    torch.testing.assert_close(masked.kl_per_sample, plain.kl_per_sample)
    grad = _grad(masked.policy, v_theta)
    assert grad[:, 0].abs().max() == 0 and grad[:, 1:].abs().max() > 0
    with pytest.raises(ValueError, match="token_weights"):
        nft_loss(x0, x_t, t, v_theta, v_old, v_ref, r, token_weights=torch.ones(B, N + 1))


def test_perfect_prediction_is_finite_and_r1_step_improves_positive_policy():
    x0, x_t, t, _, _, _, _ = _inputs()
    exact = ((x_t - x0) / t[:, None, None]).requires_grad_(True)
    out = nft_loss(x0, x_t, t, exact, exact.detach(), None, torch.ones(B))
    assert torch.isfinite(out.total) and torch.allclose(out.weight_pos, torch.full((B,), 1e-5))
    x0, x_t, t, v_theta, v_old, _, _ = _inputs()
    before = nft_loss(x0, x_t, t, v_theta, v_old, None, torch.ones(B), beta=1.0)
    step = v_theta.detach() - 1e-2 * _grad(before.total, v_theta)
    after = nft_loss(x0, x_t, t, step, v_old, None, torch.ones(B), beta=1.0)
    assert (after.loss_pos * after.weight_pos < before.loss_pos * before.weight_pos).all()


def test_omninft_total():
    total = omninft_total(torch.tensor(2.0), torch.tensor(4.0), torch.tensor(10.0),
                          torch.tensor([20.0, 40.0]), kl_coef=0.1)
    torch.testing.assert_close(total, torch.tensor(3.0 + 0.1 * (10.0 + 30.0) / 2))
    per_branch = omninft_total(torch.tensor(2.0), torch.tensor(4.0), torch.tensor(10.0),
                               torch.tensor([20.0, 40.0]), kl_coef=0.1, audio_kl_coef=2.0)
    torch.testing.assert_close(per_branch, torch.tensor(3.0 + (0.1 * 10.0 + 2.0 * 30.0) / 2))
