"""Backbone: shapes forward and backward, codecs round-trip, parameter groups, checkpoint I/O,
and the LTX-2 path wired on random-init tiny configs of the released classes (no downloads)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omninft_bench.config import compose_config
from omninft_bench.data import synthav
from trainers.backbone import (
    DEFAULT_WEIGHTS,
    Backbone,
    BackboneConfig,
    MelAudioCodec,
    PatchVideoCodec,
    TinyConfig,
    WordTextEncoder,
    param_group,
)

VOCAB = ["a", "ball", "bounces", "knock", "red", "small", "twice", ","]


def small_config(**changes) -> TinyConfig:
    cfg = dict(
        layers=2,
        video_heads=2,
        video_head_dim=16,
        audio_heads=2,
        audio_head_dim=8,
        text_dim=16,
        text_layers=1,
        text_heads=2,
        griffin_lim_iters=2,
        vocab=VOCAB,
    )
    cfg.update(changes)
    return TinyConfig(**cfg)


@pytest.fixture(scope="module")
def small() -> Backbone:
    return Backbone.tiny(small_config(), seed=0)


@pytest.fixture(scope="module")
def clips():
    return synthav.eval_set(n=3)


def test_encode_decode_shapes_and_video_roundtrip(small, clips):
    xv, xa = small.encode(clips)
    assert xv.shape == (3, 128, 384) and small.video_token_shape == (128, 384)
    assert xa.shape == (3, 50, 128) and small.audio_token_shape == (50, 128)
    assert small.video_grid == (8, 4, 4)
    out = small.decode(xv, xa, [c.prompt for c in clips], [{"k": 1}] * 3)
    assert len(out) == 3 and out[0].prompt == clips[0].prompt and out[0].meta == {"k": 1}
    assert out[0].video.shape == (16, 32, 32, 3) and out[0].video.dtype == np.uint8
    assert out[0].audio.shape == (1, 32000) and out[0].sample_rate == 16000 and out[0].fps == 8.0
    np.testing.assert_array_equal(out[0].video, clips[0].video)  # pixel patches are exact
    assert np.abs(out[0].audio).max() <= 1.0


def test_mel_codec_inverts_approximately():
    codec = MelAudioCodec(griffin_lim_iters=16)
    audio = torch.from_numpy(np.stack([c.audio_mono() for c in synthav.eval_set(n=2)]))
    tokens = codec.encode(audio)
    again = codec.encode(codec.decode(tokens))
    loud = tokens > 0.0  # where there is sound (silence sits at the floor, about -1.1)
    assert (again - tokens)[loud].abs().mean() < 0.15
    assert torch.equal(codec.decode(tokens), codec.decode(tokens))  # deterministic Griffin-Lim


def test_coords_are_seconds_on_both_streams():
    video = PatchVideoCodec().coords(2)
    audio = MelAudioCodec().coords(2)
    assert video.shape == (2, 3, 128, 2) and audio.shape == (2, 1, 50, 2)
    assert video[0, 0, -1, 1] == pytest.approx(2.0)  # last video token ends at the clip end
    assert audio[0, 0, :, :].mean(-1)[-1] == pytest.approx(49 * 0.04 + 0.01)


def test_forward_backward_shapes_and_per_modality_sigma(small, clips):
    xv, xa = small.encode(clips)
    cond = small.encode_text([c.prompt for c in clips])
    assert cond.video.shape[0] == 3 and cond.mask.shape == cond.video.shape[:2]
    v, a = small.velocity(xv, xa, torch.full((3,), 0.5), torch.full((3,), 0.2), cond)
    assert v.shape == xv.shape and a.shape == xa.shape
    (v.square().mean() + a.square().mean()).backward()
    grads = {n: p.grad for n, p in small.transformer.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert small.text_encoder.embed.weight.grad is not None
    small.zero_grad(set_to_none=True)
    with torch.no_grad():
        v_shared, _ = small.velocity(xv, xa, 0.5, None, cond)
        _, a_other = small.velocity(xv, xa, 0.5, 0.9, cond)
        _, a_same = small.velocity(xv, xa, 0.5, 0.5, cond)
    assert not torch.allclose(a_other, a_same)
    assert torch.allclose(v_shared, small.velocity(xv, xa, 0.5, 0.5, cond)[0].detach())


def test_text_encoder_handles_unknown_words_and_null_prompt():
    enc = WordTextEncoder(VOCAB, dim=16, layers=1, heads=2, max_len=6, hash_buckets=8)
    ids, mask = enc.token_ids(["a red ball bounces", "", "a zebra xylophone plays loudly today"])
    assert ids[0, 0] == 1 and mask[1].sum() == 1  # [BOS] only for the null prompt
    assert ids.shape[1] == 6 and (ids[2] >= 2 + len(VOCAB)).sum() >= 3  # hashed unknowns, cut at 6
    cond = enc(["a red ball", ""])
    assert cond.video.shape == (2, 4, 16) and torch.all(cond.video[1, 1:] == 0)


def test_param_groups_partition_every_parameter_once(small):
    groups = small.param_groups()
    names = [n for g in groups.values() for n in g]
    all_names = [n for n, _ in small.transformer.named_parameters()]
    assert sorted(names) == sorted(all_names) and len(names) == len(set(names))
    assert all(groups[g] for g in ("video", "audio", "cross"))
    assert "transformer_blocks.0.audio_to_video_attn.to_k.weight" in groups["cross"]
    assert "transformer_blocks.1.video_a2v_cross_attn_scale_shift_table" in groups["cross"]
    assert "av_cross_attn_audio_v2a_gate.linear.weight" in groups["cross"]
    assert "transformer_blocks.0.audio_ff.net.0.proj.weight" in groups["audio"]
    assert "audio_proj_in.weight" in groups["audio"]
    assert "transformer_blocks.0.attn1.to_q.weight" in groups["video"] and "proj_out.bias" in groups["video"]
    assert param_group("base_model.model.transformer_blocks.3.audio_attn1.to_q.lora_A.default.weight") == "audio"
    by_group = small.parameters_by_group()
    assert sum(len(v) for v in by_group.values()) == len(all_names)


def test_cross_modal_blocks_name_real_modules(small):
    blocks = small.cross_modal_blocks()
    assert [(b.index, b.direction) for b in blocks] == [(0, "a2v"), (0, "v2a"), (1, "a2v"), (1, "v2a")]
    for b in blocks:
        module = small.transformer.get_submodule(b.name)
        assert module is getattr(small.transformer.transformer_blocks[b.index], b.name.rsplit(".", 1)[1])


def test_save_load_roundtrip(tmp_path, small, clips):
    path = small.save(tmp_path / "m.safetensors", extra={"note": "x"})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["kind"] == "tiny" and meta["note"] == "x" and meta["config"]["vocab"] == VOCAB
    loaded = Backbone.load(path)
    for (n1, p1), (n2, p2) in zip(small.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    with pytest.raises(FileNotFoundError, match="stage=pretrain"):
        Backbone.load(tmp_path / "missing.safetensors")


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="shipped checkpoint not built yet")
def test_shipped_checkpoint_loads():
    assert DEFAULT_WEIGHTS.stat().st_size < 20e6
    backbone = BackboneConfig().build()
    assert backbone.kind == "tiny" and not backbone.training
    meta = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert meta["pretrain"]["steps"] > 0 and len(backbone.config.vocab) > 50
    cond = backbone.encode_text(["a small red ball bounces twice"])
    with torch.no_grad():
        v, a = backbone.velocity(torch.zeros(1, 128, 384), torch.zeros(1, 50, 128), 0.5, None, cond)
    assert torch.isfinite(v).all() and torch.isfinite(a).all()


def test_backbone_config_cli_shorthand():
    from trainers.sample import SampleConfig

    cfg = compose_config(SampleConfig, ["backbone=ltx2", "backbone.pretrained=/models/ltx2"])
    assert (cfg.backbone.name, cfg.backbone.pretrained) == ("ltx2", "/models/ltx2")
    with pytest.raises(ValueError, match="pretrained"):
        compose_config(SampleConfig, ["backbone=ltx2"])
    with pytest.raises(ValueError, match="unknown backbone|expected tiny"):
        Backbone.build("sd3")


# --------------------------------------------------------------------------- LTX-2 wiring


def tiny_ltx2_pipeline():
    """LTX2Pipeline from random-init tiny configs of the released classes (offline)."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors, LTX2Vocoder
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3TextConfig, Gemma3TextModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    words = ["<pad>", "<eos>", "<unk>", "a", "red", "ball", "bounces"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    tokenizer.model_max_length = 8
    text_encoder = Gemma3TextModel(
        Gemma3TextConfig(
            vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
        )
    ).eval()
    connectors = LTX2TextConnectors(
        caption_channels=16, text_proj_in_factor=3,
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=8,
        video_connector_num_layers=1, video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1, audio_connector_num_learnable_registers=None,
    )
    vae = AutoencoderKLLTX2Video(
        latent_channels=4, block_out_channels=(8,), decoder_block_out_channels=(8,), layers_per_block=(1,),
        decoder_layers_per_block=(1, 1), spatio_temporal_scaling=(True,), decoder_spatio_temporal_scaling=(True,),
        decoder_inject_noise=(False, False), downsample_type=("spatiotemporal",), upsample_residual=(False,),
        upsample_factor=(1,), patch_size=1, patch_size_t=1, decoder_causal=False,
    )
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, in_channels=2, resolution=32,
        latent_channels=2, mel_bins=8,
    )
    vocoder = LTX2Vocoder(
        in_channels=2 * 8, hidden_channels=8, out_channels=2, upsample_kernel_sizes=[4, 4],
        upsample_factors=[2, 2], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3]], output_sampling_rate=16000,
    )
    audio_channels = audio_vae.config.latent_channels * (8 // audio_vae.mel_compression_ratio)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        audio_in_channels=audio_channels, audio_out_channels=audio_channels, audio_num_attention_heads=2,
        audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2, caption_channels=16,
    )
    return LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
        tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder,
    )


def test_ltx2_path_wiring_on_random_tiny_configs():
    from trainers.sampling import SamplerConfig, sample

    pipe = tiny_ltx2_pipeline()
    backbone = Backbone.from_ltx2_pipeline(pipe, num_frames=9, height=32, width=32, fps=8.0)
    assert backbone.kind == "ltx2"
    nv, cv = backbone.video_token_shape
    na, ca = backbone.audio_token_shape
    assert cv == 4 and nv == int(np.prod(backbone.video_grid))
    cond = backbone.encode_text(["a red ball bounces", "a ball"])
    assert cond.video.shape[0] == 2 and cond.mask.shape == cond.video.shape[:2]
    result = sample(backbone, cond, SamplerConfig(steps=2), seed=0)
    assert result.video.shape == (2, nv, cv) and result.audio.shape == (2, na, ca)
    clips = backbone.decode(result.video, result.audio, ["a", "b"])
    assert clips[0].video.shape == (9, 32, 32, 3) and clips[0].audio.shape[0] == 1
    assert clips[0].audio.shape[1] == round(9 / 8.0 * 16000)
    xv, xa = backbone.encode(clips)
    assert xv.shape == (2, nv, cv) and xa.shape == (2, na, ca)
    groups = backbone.param_groups()
    assert sum(len(g) for g in groups.values()) == len(list(backbone.transformer.named_parameters()))
    assert len(backbone.cross_modal_blocks()) == 4
    assert set(backbone.codec_modules) == {"video_vae", "audio_vae", "vocoder"}  # moved by .to()


def test_tiny_backbone_predicts_x0_and_returns_velocity(small, clips):
    xv, xa = small.encode(clips)
    cond = small.encode_text([c.prompt for c in clips])
    sigma = torch.tensor([0.3, 0.6, 1.0])
    x_v, x_a = xv + sigma.view(3, 1, 1) * 0.1, xa
    with torch.no_grad():
        v, a = small.velocity(x_v, x_a, sigma, None, cond)
        x0_v, x0_a = small._forward(x_v, x_a, sigma, sigma, cond)
    assert small.prediction == "x0"
    assert torch.allclose(x_v - sigma.view(3, 1, 1) * v, x0_v, atol=1e-5)
    assert torch.allclose(x_a - sigma.view(3, 1, 1) * a, x0_a, atol=1e-5)
