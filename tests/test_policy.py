"""Old-policy soft update and evaluation EMA."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trainers.policy import EMA, OldPolicy, ema_decay, old_policy_eta, soft_update_


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)
        self.register_buffer("count", torch.zeros(1))


def _set(net: _Net, value: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
        net.count.fill_(value)


def test_decay_schedules():
    assert old_policy_eta(0) == 0.0
    assert old_policy_eta(100) == pytest.approx(0.1)
    assert old_policy_eta(10_000) == 0.5
    assert old_policy_eta(10_000, rate=0.0) == 0.0
    assert ema_decay(0) == pytest.approx(0.1)
    assert ema_decay(5) == pytest.approx(6 / 15)
    assert ema_decay(1_000) == 0.9


def test_old_policy_update_and_swap():
    net = _Net()
    _set(net, 1.0)
    old = OldPolicy(net)
    _set(net, 3.0)
    eta = old.update(net, step=100)  # eta = 0.1
    assert eta == pytest.approx(0.1)
    torch.testing.assert_close(old.params["lin.weight"], torch.full((2, 3), 0.1 * 1 + 0.9 * 3))
    assert old.buffers["count"].item() == 3.0  # buffers are copied, not averaged
    with old.swapped_in(net):
        torch.testing.assert_close(net.lin.weight, torch.full((2, 3), 2.8))
    torch.testing.assert_close(net.lin.weight, torch.full((2, 3), 3.0))  # restored
    old.update(net, step=0)  # eta = 0: fully on-policy
    torch.testing.assert_close(old.params["lin.weight"], net.lin.weight.detach())


def test_trainable_only_and_state_dict_roundtrip():
    net = _Net()
    ema = EMA(net, trainable_only=True, dtype=torch.float64)
    assert set(ema.params) == {"lin.weight", "lin.bias"}
    assert ema.params["lin.weight"].dtype == torch.float64
    _set(net, 2.0)
    ema.update(net)
    ema.update(net)
    state = ema.state_dict()
    other = EMA(_Net(), trainable_only=True, dtype=torch.float64)
    other.load_state_dict(state)
    assert other.num_updates == 2
    torch.testing.assert_close(other.params["lin.bias"], ema.params["lin.bias"])
    state["params"]["lin.bias"].fill_(-1.0)  # the state dict is a copy
    assert (ema.params["lin.bias"] != -1.0).all()


def test_ema_decay_rule():
    net = _Net()
    _set(net, 0.0)
    ema = EMA(net)
    _set(net, 1.0)
    d = ema.update(net, step=0)  # decay 0.1
    assert d == pytest.approx(0.1)
    torch.testing.assert_close(ema.params["lin.bias"], torch.full((2,), 0.9))


def test_soft_update_modules():
    source, target = _Net(), _Net()
    _set(source, 4.0)
    _set(target, 0.0)
    reference = copy.deepcopy(target)
    soft_update_(target, source, eta=0.25)
    torch.testing.assert_close(target.lin.weight, torch.full((2, 3), 3.0))
    assert target.count.item() == 4.0
    soft_update_(reference, source, eta=0.0)
    torch.testing.assert_close(reference.lin.weight, source.lin.weight)
    with pytest.raises(ValueError):
        soft_update_(target, source, eta=1.5)
