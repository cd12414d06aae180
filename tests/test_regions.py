"""Region weights and the video->audio attention capture on a tiny LTX2VideoTransformer3DModel."""

from __future__ import annotations

import pytest
import torch
from diffusers import LTX2VideoTransformer3DModel

from trainers.regions import (
    attention_probs,
    capture_v2a_attention,
    capture_window,
    region_weights,
    w_max_schedule,
)
from trainers.surgery import cross_modal_blocks

F, H, W, NA = 2, 3, 4, 5


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    # tiny matmuls: threads only add contention on the shared 2-core CI machines
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_ltx2(rope_type: str = "interleaved") -> LTX2VideoTransformer3DModel:
    torch.manual_seed(0)
    return LTX2VideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
        cross_attention_dim=32, audio_in_channels=16, audio_out_channels=16,
        audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16,
        num_layers=3, caption_channels=24, rope_type=rope_type,
    ).eval()


def _forward(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(2, F * H * W, 16, generator=g)
    audio = torch.randn(2, NA, 16, generator=g)
    text = torch.randn(2, 4, 24, generator=g)
    with torch.no_grad():
        return model(video, audio, text, text, torch.tensor([500.0, 800.0]), num_frames=F,
                     height=H, width=W, audio_num_frames=NA, return_dict=False)


def test_region_weights_range_and_shape():
    torch.manual_seed(0)
    scores = torch.rand(2, F * H * W) * 3
    a = region_weights(scores, (F, H, W), 1.5)
    assert a.shape == scores.shape and not a.requires_grad
    assert a.min() >= 1.0 and a.max() <= 1.5
    # monotone in the score within a frame
    frame = scores[0, : H * W]
    order = frame.argsort()
    assert (a[0, : H * W][order].diff() >= 0).all()
    assert torch.equal(region_weights(scores, (F, H, W), 1.0), torch.ones_like(scores))
    flat = region_weights(torch.ones(1, F * H * W), (F, H, W), 1.5)
    torch.testing.assert_close(flat, torch.full((1, F * H * W), 1.25))


def test_region_weights_zscore_is_per_frame():
    scores = torch.rand(1, F * H * W)
    shifted = scores.clone()
    shifted[:, H * W :] = shifted[:, H * W :] * 10 + 100  # affine change of frame 1 only
    torch.testing.assert_close(
        region_weights(scores, (F, H, W), 2.0), region_weights(shifted, (F, H, W), 2.0),
        rtol=1e-4, atol=1e-4,
    )
    with pytest.raises(ValueError, match="grid"):
        region_weights(scores, (F, H, W + 1), 1.5)


def test_w_max_schedule():
    assert w_max_schedule(0) == 1.0
    assert w_max_schedule(200) == pytest.approx(1.25)
    assert w_max_schedule(400) == pytest.approx(1.5)
    assert w_max_schedule(10_000) == pytest.approx(1.5)
    assert w_max_schedule(5, ramp_steps=0, w_max=2.0) == 2.0


def test_capture_window():
    assert list(capture_window(20)) == list(range(10, 19))
    assert list(capture_window(10)) == list(range(5, 10))


@pytest.mark.parametrize("rope_type", ["interleaved", "split"])
def test_captured_scores_equal_direct_attention(rope_type):
    model = tiny_ltx2(rope_type)
    blocks = cross_modal_blocks(model)
    calls = []

    def record(module, args, kwargs, output):
        calls.append((module, args, dict(kwargs), output))

    handles = [b.video_to_audio_attn.register_forward_hook(record, with_kwargs=True)
               for b in blocks]
    try:
        with capture_v2a_attention(model, enabled=True, max_elements=7) as capture:
            capture.set_step(12, 20)
            _forward(model, seed=0)
            capture.set_step(13, 20)
            _forward(model, seed=1)
    finally:
        for h in handles:
            h.remove()
    assert capture.num_captured == 2 * len(blocks) and len(calls) == 2 * len(blocks)

    column_sums = []
    for attn, args, kwargs, output in calls:
        probs = attention_probs(attn, args[0], kwargs["encoder_hidden_states"],
                                kwargs["query_rotary_emb"], kwargs["key_rotary_emb"])
        assert probs.shape == (2, attn.heads, NA, F * H * W)
        # these probabilities are the ones the processor used: P @ V -> to_out reproduces it
        value = attn.to_v(kwargs["encoder_hidden_states"]).unflatten(2, (attn.heads, -1))
        mixed = (probs @ value.transpose(1, 2)).transpose(1, 2).flatten(2)
        torch.testing.assert_close(attn.to_out[0](mixed), output, rtol=1e-4, atol=1e-5)
        column_sums.append(probs.mean(dim=1).sum(dim=1))
    expected = torch.stack(column_sums).mean(dim=0)
    scores = capture.scores()
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores.sum(dim=1), torch.full((2,), float(NA)))


def test_capture_off_outside_window_and_when_disabled():
    model = tiny_ltx2()
    attns = [b.video_to_audio_attn for b in cross_modal_blocks(model)]
    with capture_v2a_attention(model, enabled=True) as capture:
        for step in range(20):
            active = capture.set_step(step, 20)
            assert active == (10 <= step <= 18)
            if not active and step in (0, 9, 19):
                _forward(model)
        assert capture.num_captured == 0
        with pytest.raises(RuntimeError, match="no video->audio attention"):
            capture.scores()
        capture.set_step(10, 20)
        _forward(model)
        assert capture.num_captured == len(attns)
    assert all(len(a._forward_pre_hooks) == 0 for a in attns)
    assert capture.active_steps == list(range(10, 19)) + [10]
    with capture_v2a_attention(model, enabled=False) as capture:
        assert not capture.set_step(12, 20)
        assert all(len(a._forward_pre_hooks) == 0 for a in attns)
        _forward(model)
    assert capture.scores() is None
