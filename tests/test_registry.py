"""The metric registry: specs, errors with suggestions, lazy cached backends, the CLI table."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import runpy

import pytest
import torch

from omninft_bench.encoders import EncodersConfig, MissingWeightsError, UnknownBackendError
from omninft_bench.metrics import (
    DEFAULT_BACKEND,
    DuplicateMetricError,
    EvalContext,
    FeatureCache,
    PerSampleMetric,
    UnknownMetricError,
    build,
    encoder_metrics,
    expand_backends,
    get_spec,
    list_metrics,
    register,
    resolve_names,
    unregister,
)
from omninft_bench.metrics.testing import toy_clip

REQUIRED = {
    "fvd", "kvd", "fad", "clip_score", "clap_score", "av_score", "avh_score", "javis_score", "av_align",
    "av_offset", "temporal_flickering", "dynamic_degree", "motion_smoothness", "subject_consistency",
    "background_consistency", "audio_realism", "video_realism",
}  # fmt: skip


def test_every_required_metric_is_registered():
    assert REQUIRED <= {s.name for s in list_metrics()}


def test_filters():
    assert {s.name for s in list_metrics(kind="distribution")} >= {"fvd", "kvd", "fad"}
    assert all(s.modality == "sync" for s in list_metrics(modality="sync"))


def test_duplicate_name_is_an_error():
    @register("zz_dummy", modality="video", higher_is_better=True, kind="per_sample", needs=["video"])
    class Dummy(PerSampleMetric):
        """A throwaway metric."""

    try:
        with pytest.raises(DuplicateMetricError, match="zz_dummy"):

            @register("zz_dummy", modality="video", higher_is_better=True, kind="per_sample", needs=["video"])
            class Again(PerSampleMetric):
                """Same name."""

        with pytest.raises(DuplicateMetricError, match="av_align"):

            @register("av_align", modality="sync", higher_is_better=True, kind="per_sample", needs=["video"])
            class Clash(PerSampleMetric):
                """An existing name."""
    finally:
        unregister("zz_dummy")
    assert "zz_dummy" not in {s.name for s in list_metrics()}


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownMetricError) as info:
        build("clip_scor")
    message = str(info.value)
    assert "Did you mean 'clip_score'" in message and not message.startswith('"')
    assert isinstance(info.value, KeyError) and info.value.suggestions[0] == "clip_score"
    with pytest.raises(UnknownMetricError, match="av_offset"):
        resolve_names(["av_align", "av_ofset"])
    with pytest.raises(UnknownMetricError, match="Registered: "):
        get_spec("completely_unrelated")


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="modality"):
        register("zz_bad", modality="visual", higher_is_better=True, kind="per_sample", needs=[])(PerSampleMetric)
    with pytest.raises(ValueError, match="needs"):
        register("zz_bad", modality="video", higher_is_better=True, kind="per_sample", needs=["pixels"])(PerSampleMetric)
    with pytest.raises(TypeError, match="DistributionMetric"):
        register("zz_bad", modality="video", higher_is_better=True, kind="distribution", needs=[])(PerSampleMetric)
    assert "zz_bad" not in {s.name for s in list_metrics()}


def test_backends_load_lazily_and_are_cached():
    ctx = EvalContext()  # no weights configured at all
    metric = build("clip_score", ctx)  # building does not load or check anything
    assert ctx._backends == {}
    with pytest.raises(MissingWeightsError, match="encoders.open_clip.pretrained"):
        ctx.check([metric])
    assert ctx.backend("random") is ctx.backend("random")


def test_default_backend_and_overrides():
    cfg = EncodersConfig(default="random")
    ctx = EvalContext(cfg, backends={"clip_score": "random"})
    assert get_spec("av_score").backend == DEFAULT_BACKEND
    assert build("av_score", ctx).backend_name == "random"
    assert build("clip_score", ctx).backend_name == "random"
    assert build("av_align", ctx).backend_name is None
    with pytest.raises(UnknownMetricError):
        EvalContext(backends={"clip_scor": "random"})


# The encoder metrics as trainers/experiment.py listed them by hand before the shorthand existed.
ENCODER_METRICS = {
    "clip_score", "clap_score", "av_score", "avh_score", "javis_score", "video_realism", "audio_realism",
    "fvd", "kvd", "fad", "subject_consistency", "background_consistency",
}  # fmt: skip


def test_all_shorthand_expands_to_exactly_the_encoder_metrics():
    with_backend = {s.name for s in list_metrics() if s.backend is not None}
    assert set(encoder_metrics()) == with_backend == ENCODER_METRICS
    assert expand_backends({"all": "random"}) == {name: "random" for name in ENCODER_METRICS}
    ctx = EvalContext(backends={"all": "random"})
    for spec in list_metrics():
        assert build(spec.name, ctx).backend_name == ("random" if spec.name in ENCODER_METRICS else None)
    # validate.py's form: only the given names, only where the backend can embed what they need
    assert expand_backends({"all": "dino"}, ["clip_score", "subject_consistency", "av_align"], capable_only=True) == {
        "subject_consistency": "dino"
    }
    assert expand_backends({}, ["clip_score"], capable_only=True) == {}
    with pytest.raises(ValueError, match="reserved"):
        register("all", modality="video", higher_is_better=True, kind="per_sample", needs=[])(PerSampleMetric)


def test_explicit_backend_entry_overrides_the_shorthand():
    for backends in ({"all": "random", "fvd": "i3d"}, {"fvd": "i3d", "all": "random"}):
        expanded = expand_backends(backends)
        assert expanded["fvd"] == "i3d"
        assert {k for k, v in expanded.items() if v == "random"} == ENCODER_METRICS - {"fvd"}
    ctx = EvalContext(backends={"all": "random", "clip_score": "open_clip"})
    assert build("clip_score", ctx).backend_name == "open_clip"
    assert build("clap_score", ctx).backend_name == "random"
    with pytest.raises(UnknownMetricError, match="clip_score"):
        expand_backends({"all": "random", "clip_scor": "random"})


def test_unknown_shorthand_backend_names_it_and_the_valid_ones():
    with pytest.raises(UnknownBackendError) as info:
        expand_backends({"all": "synthbnd"})
    message = str(info.value)
    assert "unknown encoder backend 'synthbnd'" in message and "Did you mean 'synthbind'" in message
    assert "Available: " in message and "open_clip" in message and "\n" not in message
    with pytest.raises(UnknownBackendError, match="'synthbnd'"):
        EvalContext(backends={"all": "synthbnd"})


def test_feature_cache_round_trip(tmp_path):
    ctx = EvalContext(EncodersConfig(default="random"), cache=FeatureCache(tmp_path))
    clip = toy_clip(0)
    clip.meta["content_hash"] = "ab" * 16
    metric = build("avh_score", ctx)
    first = metric.score([clip])
    assert ctx.cache.misses == 1 and ctx.cache.hits == 0
    again = build("avh_score", EvalContext(EncodersConfig(default="random"), cache=FeatureCache(tmp_path)))
    assert torch.equal(again.score([clip]), first) and again.ctx.cache.hits == 1
    silent = toy_clip(1, audio=False)
    silent.meta["content_hash"] = "cd" * 16
    assert torch.isnan(metric.score([silent])).all()
    assert FeatureCache(tmp_path).get("cd" * 16, metric.feature_key()) == "no audio track"


def test_python_m_metrics_prints_the_table(capsys):
    with pytest.raises(SystemExit) as info:
        runpy.run_module("omninft_bench.metrics", run_name="__main__")
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert name in out
    assert "modality" in out and "higher" in out and "distribution" in out
