"""LoRA post-training: adapters start as the identity, only they train, the frozen base is the KL
reference, a trivial reward goes up, and a resumed LoRA run matches an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_trainer import config, rewards, small_backbone
from trainers.lora import DEFAULT_TARGETS, adapters_disabled, add_lora, target_modules
from trainers.omninft import OmniNFTConfig, StepLog, Variant, lora_rank, train


def _velocity(backbone, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    (nv, cv), (na, ca) = backbone.video_token_shape, backbone.audio_token_shape
    x_v, x_a = torch.randn(2, nv, cv, generator=g), torch.randn(2, na, ca, generator=g)
    with torch.no_grad():
        return backbone.velocity(x_v, x_a, 0.6, None, backbone.encode_text(["red ball", "ball bounces"]))


def test_adapters_start_as_identity_and_only_they_train() -> None:
    backbone = small_backbone()
    before = _velocity(backbone)
    params = add_lora(backbone.transformer, rank=2)
    after = _velocity(backbone)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))  # B = 0 at init
    trainable = {n for n, p in backbone.transformer.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(params) == len(trainable)
    # one A and one B per adapted linear layer
    assert len(params) == 2 * len(target_modules(small_backbone().transformer, DEFAULT_TARGETS))


def test_adapters_disabled_is_the_frozen_base() -> None:
    backbone = small_backbone()
    base = _velocity(backbone)
    add_lora(backbone.transformer, rank=2)
    with torch.no_grad():
        for name, p in backbone.transformer.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    adapted = _velocity(backbone)
    assert not torch.allclose(adapted[0], base[0])
    with adapters_disabled(backbone.transformer):
        ref = _velocity(backbone)
    assert all(torch.equal(a, b) for a, b in zip(base, ref, strict=True))
    assert torch.equal(_velocity(backbone)[0], adapted[0])  # enabled again after the block


def test_unknown_target_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="audio_ff"):
        target_modules(small_backbone().transformer, ["attn9"])
    with pytest.raises(ValueError, match="lora_rank"):
        add_lora(small_backbone().transformer, rank=0)
    with pytest.raises(ValueError, match="train.lora_rank"):
        OmniNFTConfig(lora_rank=-2)


def test_auto_rank_is_full_tiny_and_released_ltx2() -> None:
    assert lora_rank(OmniNFTConfig(), "tiny") == 0
    assert lora_rank(OmniNFTConfig(), "ltx2") == 32
    assert lora_rank(OmniNFTConfig(lora_rank=4), "ltx2") == 4


def _lora_run(run_dir: Path, cfg: OmniNFTConfig, log=None, resume: bool = False):
    rs, weights = rewards(audio=False)
    return train(small_backbone(), Variant("gdpo"), cfg, rs, weights, seed=0, run_dir=run_dir, log=log,
                 progress=False, resume=resume)


def test_lora_run_trains_adapters_only_and_the_reward_goes_up(tmp_path: Path) -> None:
    frozen = {k: v.clone() for k, v in small_backbone().transformer.state_dict().items()}
    logs: list[StepLog] = []
    backbone, ema = _lora_run(tmp_path, config(steps=30, lora_rank=4, lr=1e-2), log=logs.append)
    state = backbone.transformer.state_dict()
    base_keys = [k for k in state if "lora_" not in k]
    for k in base_keys:  # peft renames adapted layers' weights to ``*.base_layer.weight``
        assert torch.equal(state[k], frozen[k.replace(".base_layer", "")]), k
    assert any(state[k].abs().sum() > 0 for k in state if "lora_B" in k)
    assert set(ema.params) == {n for n, p in backbone.transformer.named_parameters() if p.requires_grad}
    bright = [log.metrics["reward/test_brightness"] for log in logs]
    assert np.mean(bright[-3:]) > np.mean(bright[:3]) + 0.005
    assert all(log.metrics["loss/kl"] >= 0 for log in logs) and logs[-1].metrics["loss/kl"] > 0


def test_lora_resume_gives_identical_adapters(tmp_path: Path) -> None:
    cfg = config(steps=4, lora_rank=2, lr=1e-2)
    full, _ = _lora_run(tmp_path / "full", cfg)

    class Crash(Exception):
        pass

    def crash(entry: StepLog) -> None:
        if entry.step == 2:
            raise Crash

    with pytest.raises(Crash):
        _lora_run(tmp_path / "crash", cfg, log=crash)
    resumed, _ = _lora_run(tmp_path / "crash", cfg, resume=True)
    for (k, a), b in zip(full.transformer.state_dict().items(), resumed.transformer.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
