"""Layer-wise gradient surgery on a random-init tiny LTX2VideoTransformer3DModel."""

from __future__ import annotations

import pytest
import torch
from diffusers import LTX2VideoTransformer3DModel

from trainers.surgery import (
    RELEASED_SCHEDULE_48,
    cross_modal_blocks,
    gradient_surgery,
    scale_gradient,
    surgery_schedule,
)

F, H, W, NA = 2, 3, 3, 6


def tiny_ltx2(num_layers: int) -> LTX2VideoTransformer3DModel:
    torch.manual_seed(0)
    model = LTX2VideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
        cross_attention_dim=32, audio_in_channels=16, audio_out_channels=16,
        audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16,
        num_layers=num_layers, caption_channels=24,
    )
    # random init leaves the a2v gate/scale tables tiny at some timesteps; make every path matter
    with torch.no_grad():
        for block in model.transformer_blocks:
            block.video_a2v_cross_attn_scale_shift_table.normal_()
            block.audio_a2v_cross_attn_scale_shift_table.normal_()
    return model.eval()


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(2, F * H * W, 16, generator=g)
    audio = torch.randn(2, NA, 16, generator=g, requires_grad=True)
    text = torch.randn(2, 4, 24, generator=g)
    return video, audio, text


def _forward(model, video, audio, text):
    return model(video, audio, text, text, torch.tensor([300.0, 700.0]), num_frames=F, height=H,
                 width=W, audio_num_frames=NA, return_dict=False)


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    # tiny matmuls: threads only add contention on the shared 2-core CI machines (10-100x slower)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def one_block():
    return tiny_ltx2(1)


@pytest.fixture(scope="module")
def four_blocks():
    return tiny_ltx2(4)


def test_schedule_shapes():
    assert surgery_schedule(48) == RELEASED_SCHEDULE_48
    assert len(RELEASED_SCHEDULE_48) == 48
    assert surgery_schedule(4) == (0.0, 1.0, 1.0, 0.3)
    assert surgery_schedule(8) == (0.0, 0.1, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3)
    assert surgery_schedule(12) == (0.0, 0.1, 0.1) + (1.0,) * 7 + (0.3, 0.3)
    assert surgery_schedule(3, [0.0, 0.5, 1.0]) == (0.0, 0.5, 1.0)
    assert surgery_schedule(2, 0.5) == (0.5, 0.5)
    with pytest.raises(ValueError, match="3 entries for 4"):
        surgery_schedule(4, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=">= 0"):
        surgery_schedule(2, [1.0, -1.0])


def test_forward_bitwise_unchanged(four_blocks):
    video, audio, text = _inputs()
    base = _forward(four_blocks, video, audio, text)
    with gradient_surgery(four_blocks, [0.0, 0.1, 0.37, 0.3]):
        hooked = _forward(four_blocks, video, audio, text)
    assert torch.equal(base[0], hooked[0]) and torch.equal(base[1], hooked[1])


def _video_loss_grads(model, schedule, params):
    video, audio, text = _inputs()
    if schedule is None:
        out = _forward(model, video, audio, text)
    else:
        with gradient_surgery(model, schedule):
            out = _forward(model, video, audio, text)
    loss = out[0].square().mean()  # video-only loss
    return torch.autograd.grad(loss, [audio, *params], allow_unused=True)


def test_single_block_audio_gradient_scaled(one_block):
    """With one block the video output depends on audio tokens only through the a2v context."""
    block = one_block.transformer_blocks[0]
    audio_params = [one_block.audio_proj_in.weight, block.audio_attn1.to_q.weight]
    kv_params = [block.audio_to_video_attn.to_k.weight, block.audio_to_video_attn.to_v.weight]
    video_params = [one_block.proj_in.weight, block.audio_to_video_attn.to_q.weight]
    params = audio_params + kv_params + video_params
    base = _video_loss_grads(one_block, None, params)
    half = _video_loss_grads(one_block, 0.5, params)
    zero = _video_loss_grads(one_block, 0.0, params)
    assert base[0].abs().max() > 1e-4
    for i in range(3):  # audio input and the audio-stream parameters
        torch.testing.assert_close(half[i], 0.5 * base[i], rtol=1e-5, atol=1e-9)
        assert zero[i].abs().max() == 0
    for i in range(3, len(params) + 1):  # a2v K/V weights and the video side: full gradient
        torch.testing.assert_close(half[i], base[i], rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(zero[i], base[i], rtol=1e-5, atol=1e-9)


def test_per_block_context_gradient_follows_schedule(four_blocks):
    schedule = (0.0, 0.25, 0.5, 1.0)
    blocks = cross_modal_blocks(four_blocks)
    before, after = [], []

    def grab(store):
        def hook(module, args, kwargs):
            c = kwargs["encoder_hidden_states"]
            c.retain_grad()
            store.append(c)
        return hook

    handles = [b.audio_to_video_attn.register_forward_pre_hook(grab(before), with_kwargs=True)
               for b in blocks]
    video, audio, text = _inputs()
    try:
        with gradient_surgery(four_blocks, schedule):
            handles += [b.audio_to_video_attn.register_forward_pre_hook(grab(after), with_kwargs=True)
                        for b in blocks]
            out = _forward(four_blocks, video, audio, text)
            out[0].square().mean().backward()
    finally:
        for h in handles:
            h.remove()
    for b, s in enumerate(schedule):
        assert after[b].grad.abs().max() > 0
        torch.testing.assert_close(before[b].grad, s * after[b].grad, rtol=0, atol=0)
    four_blocks.zero_grad(set_to_none=True)


def test_kv_weights_keep_full_gradient_in_deep_model(four_blocks):
    attn0 = four_blocks.transformer_blocks[0].audio_to_video_attn
    params = [attn0.to_k.weight, attn0.to_v.weight, four_blocks.audio_proj_in.weight]
    base = _video_loss_grads(four_blocks, None, params)
    cut = _video_loss_grads(four_blocks, [0.0, 1.0, 1.0, 1.0], params)
    torch.testing.assert_close(cut[1], base[1], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(cut[2], base[2], rtol=1e-5, atol=1e-9)
    assert not torch.allclose(cut[3], base[3])  # the audio stream itself does see the cut


def test_hooks_only_inside_context(four_blocks):
    attns = [b.audio_to_video_attn for b in cross_modal_blocks(four_blocks)]
    with gradient_surgery(four_blocks) as scales:
        assert scales == (0.0, 1.0, 1.0, 0.3)
        assert sum(len(a._forward_pre_hooks) for a in attns) == 2  # s = 1 blocks get none
    assert all(len(a._forward_pre_hooks) == 0 for a in attns)
    with gradient_surgery(four_blocks, enabled=False) as scales:
        assert scales == (1.0,) * 4
        assert all(len(a._forward_pre_hooks) == 0 for a in attns)
    with pytest.raises(RuntimeError), gradient_surgery(four_blocks):
        raise RuntimeError("boom")
    assert all(len(a._forward_pre_hooks) == 0 for a in attns)


def test_positional_context_and_scale_gradient(one_block):
    attn = one_block.transformer_blocks[0].audio_to_video_attn
    h = torch.randn(1, 4, 32)
    c = torch.randn(1, 3, 16, requires_grad=True)
    base = torch.autograd.grad(attn(h, c).sum(), c)[0]
    with gradient_surgery(one_block, 0.5):
        scaled = torch.autograd.grad(attn(h, c).sum(), c)[0]
    torch.testing.assert_close(scaled, 0.5 * base)
    x = torch.randn(3, requires_grad=True)
    y = scale_gradient(x, 0.3)
    assert torch.equal(y, x)
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.full((3,), 0.3))


def test_gradient_checkpointing_keeps_scaling_after_context_exit():
    """diffusers checkpoints non-reentrantly: the scaling is in the graph recorded at forward."""
    model = tiny_ltx2(2)
    params = [model.audio_proj_in.weight]
    plain = _video_loss_grads(model, [0.5, 0.25], params)
    model.enable_gradient_checkpointing()
    video, audio, text = _inputs()
    with gradient_surgery(model, [0.5, 0.25]):
        loss = _forward(model, video, audio, text)[0].square().mean()
    ckpt = torch.autograd.grad(loss, [audio, *params])  # backward outside the context
    unscaled = _video_loss_grads(model, None, params)
    for a, b, c in zip(plain, ckpt, unscaled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
        assert not torch.allclose(b, c)
