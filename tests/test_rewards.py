"""Rewards are the metric: same values (after the documented transform), modality tag, flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omninft_bench.encoders import EncodersConfig
from omninft_bench.metrics import EvalContext, build
from omninft_bench.metrics.testing import toy_clip, toy_clips
from omninft_bench.rewards import TRANSFORMS, MetricReward, RewardResult, make_rewards

BATCH = toy_clips(3)


def test_reward_equals_metric_for_higher_is_better():
    ctx = EvalContext()
    reward = MetricReward("av_align", ctx)
    out = reward(BATCH)
    assert isinstance(out, RewardResult) and out.values.shape == (3,) and out.values.dtype == torch.float32
    torch.testing.assert_close(out.values, build("av_align", ctx).score(BATCH))
    assert out.valid.all() and reward.transform == "identity" and out.modality == "sync"


def test_lower_is_better_uses_the_reciprocal_transform():
    clips = [toy_clip(0), toy_clip(0, audio_offset_s=0.25), toy_clip(2)]
    reward = MetricReward("av_offset")
    out = reward(clips)
    metric = build("av_offset").score(clips)
    torch.testing.assert_close(out.values, 1.0 / (1.0 + metric))
    assert reward.transform == "reciprocal" and ((out.values > 0) & (out.values <= 1)).all()
    negated = MetricReward("av_offset", transform="negate")(clips)
    torch.testing.assert_close(negated.values, -metric)


def test_embedding_reward_matches_its_metric():
    ctx = EvalContext(EncodersConfig(default="random"))
    out = MetricReward("avh_score", ctx)(BATCH)
    torch.testing.assert_close(out.values, build("avh_score", ctx).score(BATCH))


def test_unscorable_clip_is_flagged_not_zero():
    batch = [BATCH[0], BATCH[1].replace(audio=None, sample_rate=None), BATCH[2]]
    out = MetricReward("av_align")(batch)
    assert out.valid.tolist() == [True, False, True] and out.num_invalid == 1
    assert math.isnan(out.values[1]) and out.reasons[1] == "no audio track"
    assert out.reasons[0] is None and torch.isfinite(out.values[out.valid]).all()


def test_eventless_clip_has_no_sync_reward():
    """A static, silent clip has no offset: flagged, not a perfect 0 s (which RL would exploit)."""
    still = BATCH[0].replace(video=np.repeat(BATCH[0].video[:1], BATCH[0].num_frames, axis=0),
                             audio=np.zeros_like(BATCH[0].audio))
    out = MetricReward("av_offset")([BATCH[0], still])
    assert out.valid.tolist() == [True, False] and math.isnan(out.values[1])
    assert "offset undefined" in out.reasons[1]


def test_modality_tags_come_from_the_metric():
    ctx = EvalContext(EncodersConfig(default="random"))
    tags = {r.name: r.modality for r in make_rewards(["av_align", "temporal_flickering", "avh_score"], ctx)}
    assert tags == {"av_align": "sync", "temporal_flickering": "video", "avh_score": "sync"}


def test_invalid_rewards():
    with pytest.raises(ValueError, match="per-sample"):
        MetricReward("fvd")
    with pytest.raises(ValueError, match="reward worse clips"):
        MetricReward("av_offset", transform="identity")
    with pytest.raises(ValueError, match="unknown reward transform"):
        MetricReward("av_align", transform="sigmoid")
    assert set(TRANSFORMS) == {"identity", "reciprocal", "negate"}


def test_reciprocal_clamps_negative_inputs():
    assert TRANSFORMS["reciprocal"](torch.tensor([-0.5, 0.0, 1.0])).tolist() == [1.0, 1.0, 0.5]
