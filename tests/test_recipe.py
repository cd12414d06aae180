"""The recipe table: our settings next to the released OmniNFT/DiffusionNFT ones."""

from __future__ import annotations

import pytest
import torch

from omninft_bench.config import compose_config, flatten, to_dict
from trainers.experiment import AblationConfig
from trainers.omninft import OmniNFTConfig, trainable_sigmas
from trainers.recipe import recipe_comparison, trained_sigma_count


def params(*overrides: str) -> dict[str, str]:
    """A run's params as the parent MLflow run holds them: flattened config, every value a string."""
    cfg = compose_config(AblationConfig, list(overrides))
    return {k: str(v) for k, v in flatten(to_dict(cfg)).items()}


def rows(*overrides: str) -> dict:
    return {r.setting: r for r in recipe_comparison(params(*overrides))}


@pytest.mark.parametrize(("steps", "fraction", "count"), [(10, 0.3, 3), (20, 0.4, 8), (10, 0.9, 9), (10, 0.01, 1), (10, 1.0, 10)])
def test_trained_sigma_count(steps, fraction, count):
    assert trained_sigma_count(steps, fraction) == count


def test_trainable_sigmas_use_the_same_count():
    sig = trainable_sigmas(OmniNFTConfig())
    torch.testing.assert_close(sig, torch.tensor([1.0, 0.9, 0.8]))


def test_default_departures():
    r = rows()
    departs = {name for name, row in r.items() if row.departs}
    assert {"backbone", "rewards (weights)", "fine-tuning", "trained noise levels",
            "re-noising the clips of a group", "reweighting w_max ramp", "NFT beta", "learning rate"} <= departs
    assert not {"advantage clip", "KL to the reference", "old-policy decay", "rollouts scored as"} & departs
    assert r["learning rate"].ours == "3e-05 (video x0.5)"
    assert not rows("train.lr_scales={}")["learning rate"].departs
    assert r["rollouts scored as"].ours == "the decoded tensors"
    assert rows("train.score_written=true")["rollouts scored as"].departs
    assert r["trained noise levels"].ours == "the 3 highest of 10 (1, 0.9, 0.8)"  # audio at the video's sigma
    assert r["fine-tuning"].ours == "full"
    assert r["rewards (weights)"].ours == (
        "audio_realism 1, clap_score 1, clip_score 1, javis_score 1, video_realism 1")
    assert all(row.why for row in r.values() if row.departs)


def test_overrides_flip_the_verdicts():
    r = rows("train.lr=1e-4", "train.shared_noise=false", "train.adv_clip=3")
    assert r["learning rate"].departs and r["learning rate"].ours == "0.0001 (video x0.5)"
    assert not r["re-noising the clips of a group"].departs
    assert r["advantage clip"].departs
    r = rows("train.train_sigma_fraction=0.4", "train.sampler.steps=20", "train.train_timesteps=8", "train.audio_sigmas=[]")
    assert r["trained noise levels"].ours == "the 8 highest of 20 (1, 0.95, 0.9, 0.85, ...)"
    assert not r["rollout sampler steps"].departs and not r["noise levels per clip and step"].departs
    assert not rows("train.nft_beta=0.1")["NFT beta"].departs  # DiffusionNFT's multi-reward value
    assert not rows("rewards={clip_score:1.0}")["NFT beta"].departs  # and its single-reward one
    r = rows("train.audio_kl_coef=10")
    assert r["KL to the reference"].departs and r["KL to the reference"].ours == "0.0001, audio 10"
    assert not rows("train.audio_kl_coef=0.0001")["KL to the reference"].departs
    r = rows("train.audio_sigmas=[1.0,0.4,0.2]")
    assert r["trained noise levels"].ours == "video: the 3 highest of 10 (1, 0.9, 0.8); audio: its own level, one of 1, 0.4, 0.2"


def test_lora_row_resolves_auto_rank():
    assert not rows("backbone.name=ltx2")["fine-tuning"].departs  # auto = the released r=32, alpha 64
    assert rows("backbone.name=ltx2")["fine-tuning"].ours == "LoRA r=32, alpha 64"
    r = rows("train.lora_rank=8")["fine-tuning"]
    assert r.departs and r.ours == "LoRA r=8, alpha 16"


def test_rows_of_settings_a_run_did_not_log_are_left_out():
    p = params()
    del p["train.shared_noise"], p["backbone.name"], p["train.audio_kl_coef"]
    names = {r.setting for r in recipe_comparison(p)}
    assert "KL to the reference" in names  # logged before the audio KL existed: one weight
    assert "re-noising the clips of a group" not in names and "backbone" not in names
    assert "learning rate" in names
