"""Encoder backends on tiny random-init weights: shapes, determinism, errors that name the key."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from omninft_bench.encoders import (
    CapabilityError,
    EncoderBackend,
    EncodersConfig,
    MissingWeightsError,
    UnknownBackendError,
    available_backends,
    check_backend,
    load_backend,
    register_backend,
)
from omninft_bench.encoders.base import resize_center_crop, uniform_indices
from omninft_bench.encoders.testing import write_tiny_encoders

VIDEO = np.random.default_rng(0).integers(0, 256, size=(10, 36, 44, 3), dtype=np.uint8)
AUDIO = (0.1 * np.random.default_rng(1).standard_normal((1, 40000))).astype(np.float32)  # 2.5 s


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> EncodersConfig:
    return write_tiny_encoders(tmp_path_factory.getbasetemp() / "tiny-encoders")


@pytest.fixture(scope="module")
def backends(tiny) -> dict[str, EncoderBackend]:
    return {name: load_backend(name, tiny) for name in ("open_clip", "clap", "dino", "i3d", "random")}


def test_registered_backends():
    assert {"open_clip", "clap", "i3d", "dino", "random"} <= set(available_backends())


@pytest.mark.parametrize("name", ["open_clip", "clap", "dino", "i3d", "random"])
def test_shapes_dtype_and_determinism(backends, name):
    b = backends[name]
    if b.supports("frames"):
        out = b.embed_frames(VIDEO)
        assert out.shape[0] == 10 and out.ndim == 2 and out.dtype == torch.float32
        assert torch.equal(out, b.embed_frames(VIDEO))
        # float input in [0, 1] is the same video
        assert torch.allclose(out, b.embed_frames(VIDEO.astype(np.float32) / 255.0), atol=1e-5)
    if b.supports("video"):
        out = b.embed_video(VIDEO, 8.0)
        assert out.ndim == 1 and torch.isfinite(out).all()
        assert torch.equal(out, b.embed_video(VIDEO, 8.0))
    if b.supports("audio"):
        out = b.embed_audio(AUDIO, 16000)
        assert out.ndim == 1 and torch.isfinite(out).all()
        assert torch.equal(out, b.embed_audio(AUDIO, 16000))
        windows = b.embed_audio_windows(AUDIO, 16000, [(0.0, 1.0), (0.5, 1.5), (2.0, 3.0)])
        assert windows.shape == (3, out.shape[0])
    if b.supports("text"):
        out = b.embed_text(["a red ball bounces", "soft drum"])
        assert out.shape[0] == 2 and out.ndim == 2
        assert torch.equal(out, b.embed_text(["a red ball bounces", "soft drum"]))


@pytest.mark.parametrize(
    ("name", "method", "args"),
    [
        ("clap", "embed_frames", (VIDEO,)),
        ("open_clip", "embed_audio", (AUDIO, 16000)),
        ("i3d", "embed_text", (["x"],)),
        ("dino", "embed_audio_windows", (AUDIO, 16000, [(0.0, 1.0)])),
    ],
)
def test_unsupported_modality_is_a_clear_error(backends, name, method, args):
    with pytest.raises(CapabilityError, match=name):
        getattr(backends[name], method)(*args)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("clap", "encoders.clap.path=DIR (a local copy of laion/clap-htsat-unfused)"),
        ("i3d", "encoders.i3d.path="),
        ("open_clip", "encoders.open_clip.pretrained="),
        ("dino", "encoders.dino.path="),
    ],
)
def test_missing_weights_name_the_config_key(name, key):
    with pytest.raises(MissingWeightsError) as info:
        check_backend(name, EncodersConfig())
    assert key in str(info.value)
    assert info.value.key == key.split("=")[0]


def test_wrong_weight_paths(tmp_path):
    cfg = EncodersConfig()
    cfg.clap.path = str(tmp_path / "nowhere")
    with pytest.raises(MissingWeightsError, match="encoders.clap.path"):
        check_backend("clap", cfg)
    cfg.i3d.path = str(tmp_path)
    with pytest.raises(MissingWeightsError, match="is not a file"):
        check_backend("i3d", cfg)


def test_unknown_backend_suggests():
    with pytest.raises(UnknownBackendError, match="Did you mean 'clap'"):
        load_backend("clpa", EncodersConfig())
    if "synthbind" not in available_backends():
        with pytest.raises(UnknownBackendError, match="not in this version yet"):
            load_backend("synthbind", EncodersConfig())


def test_duplicate_backend_name_is_an_error():
    class Impostor(EncoderBackend):
        name = "random"

        @classmethod
        def fingerprint(cls, config):
            return "x"

    with pytest.raises(ValueError, match="already registered"):
        register_backend(Impostor)


def test_fingerprint_follows_the_config(tiny):
    from omninft_bench.encoders import backend_class

    other = EncodersConfig()
    other.random.seed = 1
    assert backend_class("random").fingerprint(tiny) != backend_class("random").fingerprint(other)
    assert backend_class("clap").fingerprint(tiny) == backend_class("clap").fingerprint(tiny)


def test_random_backend_seed_changes_embeddings():
    a, b = EncodersConfig(), EncodersConfig()
    b.random.seed = 7
    ea = load_backend("random", a).embed_text(["hello"])
    eb = load_backend("random", b).embed_text(["hello"])
    assert not torch.allclose(ea, eb)


def test_clap_long_audio_is_chunked_deterministically(backends):
    long = np.tile(AUDIO, (1, 3))  # 7.5 s > the tiny extractor's 2 s window
    out = backends["clap"].embed_audio(long, 16000)
    assert torch.equal(out, backends["clap"].embed_audio(long, 16000))
    assert out.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_i3d_short_clip_and_helpers(backends):
    assert backends["i3d"].embed_video(VIDEO[:3], 8.0).shape == (16,)
    assert uniform_indices(5, 8).tolist() == [0, 1, 2, 3, 4]
    assert uniform_indices(10, 3).tolist() == [0, 4, 9]
    x = torch.rand(2, 3, 30, 50)
    assert resize_center_crop(x, 16).shape == (2, 3, 16, 16)
