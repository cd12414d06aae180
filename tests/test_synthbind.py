"""SynthBind: shipped weights, embedding contract, held-out retrieval, sync sensitivity, training code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omninft_bench.data import synthav
from omninft_bench.data.perturb import apply_perturbation
from omninft_bench.encoders import EncodersConfig, available_backends, load_backend
from omninft_bench.encoders.base import MissingWeightsError
from omninft_bench.encoders.config import SynthBindConfig
from omninft_bench.encoders.synthbind import (
    SynthBindBackend,
    WordTokenizer,
    load_reference_stats,
    load_synthbind,
)
from omninft_bench.encoders.synthbind.evaluate_retrieval import recall_at_k
from omninft_bench.encoders.synthbind.train import TrainConfig, shift_log_mel, train


@pytest.fixture(scope="module")
def backend() -> SynthBindBackend:
    return load_backend("synthbind", EncodersConfig())


@pytest.fixture(scope="module")
def clips() -> list:
    # The eval split: never seen in training (which draws from the train stream).
    return synthav.eval_set(n=20)


def _unit(x: torch.Tensor) -> bool:
    return torch.allclose(x.norm(dim=-1), torch.ones(x.shape[:-1]), atol=1e-4)


def test_registered_and_loads_shipped_weights(backend):
    assert "synthbind" in available_backends()
    assert isinstance(backend, SynthBindBackend)
    assert backend.capabilities == {"frames", "video", "audio", "text"}
    model = load_synthbind()
    assert not model.training
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 3_000_000
    assert SynthBindBackend.fingerprint(EncodersConfig()).startswith("synthbind:")


def test_missing_weights_name_the_config_key(tmp_path):
    config = EncodersConfig(synthbind=SynthBindConfig(path=str(tmp_path / "nope.safetensors")))
    with pytest.raises(MissingWeightsError, match="encoders.synthbind.path"):
        SynthBindBackend.check_config(config)


def test_embedding_shapes_and_normalization(backend, clips):
    clip = clips[0]
    d = backend.model.spec.dim
    frames = backend.embed_frames(clip.video)
    assert frames.shape == (clip.num_frames, d) and frames.dtype == torch.float32 and _unit(frames)
    video = backend.embed_video(clip.video, clip.fps)
    assert video.shape == (d,) and _unit(video)
    audio = backend.embed_audio(clip.audio, clip.sample_rate)
    assert audio.shape == (d,) and _unit(audio)
    windows = backend.embed_audio_windows(clip.audio, clip.sample_rate, [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)])
    assert windows.shape == (3, d) and _unit(windows)
    # A 2 s window of a 2 s clip is the whole track (JavisScore's single window).
    whole = backend.embed_audio_windows(clip.audio, clip.sample_rate, [(0.0, 2.0)])[0]
    assert torch.allclose(whole, audio, atol=1e-5)
    text = backend.embed_text(["a small red ball bounces twice", "zzz unknown words only", ""])
    assert text.shape == (3, d) and _unit(text) and torch.isfinite(text).all()


def test_other_sizes_rates_and_lengths(backend):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (60, 48, 64, 3), dtype=np.uint8)  # 2.5 s at 24 fps, not square
    audio = rng.standard_normal((2, 44100 * 5)).astype(np.float32) * 0.1  # 5 s stereo at 44.1 kHz
    d = backend.model.spec.dim
    assert backend.embed_frames(video).shape == (60, d)
    assert backend.embed_video(video, 24.0).shape == (d,)
    assert backend.embed_audio(audio, 44100).shape == (d,)
    assert backend.embed_audio(audio[:, :100], 44100).shape == (d,)
    assert backend.embed_frames(video[:3]).shape == (3, d)


def test_deterministic(backend, clips):
    clip = clips[1]
    assert torch.equal(backend.embed_frames(clip.video), backend.embed_frames(clip.video))
    assert torch.equal(backend.embed_audio(clip.audio, 16000), backend.embed_audio(clip.audio, 16000))


def test_retrieval_above_chance_on_held_out_clips(backend, clips):
    prompts = backend.embed_text([c.prompt for c in clips])
    video = torch.stack([backend.embed_video(c.video, c.fps) for c in clips])
    audio = torch.stack([backend.embed_audio(c.audio, c.sample_rate) for c in clips])
    # 20 candidates: chance R@1 = 0.05, R@5 = 0.25.
    assert recall_at_k(prompts @ video.T)["R@5"] >= 0.7
    assert recall_at_k(prompts @ audio.T)["R@5"] >= 0.6
    assert recall_at_k(audio @ video.T)["R@5"] >= 0.7


def test_aligned_beats_shifted_audio(backend, clips):
    wins = 0
    for i, clip in enumerate(clips):
        video = backend.embed_video(clip.video, clip.fps)
        aligned = video @ backend.embed_audio(clip.audio, clip.sample_rate)
        shifted = apply_perturbation("audio_shift", clip, 0.5 if i % 2 else -0.5, seed=i)
        wins += bool(aligned > video @ backend.embed_audio(shifted.audio, shifted.sample_rate))
    assert wins >= 0.8 * len(clips)


def test_reference_stats_shipped():
    stats = load_reference_stats()
    assert set(stats) == {"video", "frames", "audio", "audio_windows"}
    for s in stats.values():
        d = s.mean.shape[0]
        assert s.cov.shape == (d, d) and s.mean.dtype == torch.float64
        assert torch.allclose(s.cov, s.cov.T) and s.count >= d


def test_tokenizer_unknown_words_hash_deterministically():
    tok = WordTokenizer(["a", "ball", "red"], hash_buckets=8)
    ids, mask = tok(["a red ball", "a purple-ish BALL", ""])
    assert ids[0, :3].tolist() == [1, 3, 2]
    unknown = tok.token_id("purple-ish")
    assert 4 <= unknown < tok.size and unknown == tok.token_id("purple-ish")
    assert ids[1, :3].tolist() == [1, unknown, 2]
    assert mask.sum(1).tolist() == [3, 3, 0]


def test_shift_in_mel_domain_matches_shifting_the_waveform():
    model = load_synthbind()
    clip = synthav.eval_set(n=1)[0]
    wave = torch.from_numpy(clip.audio_mono())[None]
    hop = model.spec.hop
    k = 16  # 0.25 s
    delayed = torch.cat([torch.zeros(1, k * hop), wave[:, : -k * hop]], dim=1)
    with torch.no_grad():
        reference = model.audio.log_mel(delayed)
        silence = model.audio.log_mel(torch.zeros_like(wave))
        moved = shift_log_mel(model.audio.log_mel(wave), torch.tensor([k]), silence)
    # Away from the cut (a frame straddling it mixes both) and from the last frame (whose window
    # runs past the end of the signal and is reflect-padded), the frames are identical.
    assert torch.allclose(moved[..., k + 2 : -1], reference[..., k + 2 : -1], atol=1e-3)


def test_training_runs_and_is_seeded():
    cfg = TrainConfig(n_train=24, steps=2, batch=8, warmup=1, threads=1, vocab_clips=50)
    model_a, summary = train(cfg, progress=False)
    model_b, _ = train(cfg, progress=False)
    assert all(np.isfinite(v) for v in summary["final_losses"].values())
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
