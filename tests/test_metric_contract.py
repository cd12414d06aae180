"""Contract every registered metric passes (parametrized over the registry).

Per-sample metrics: shape [B], float, finite on clips that have what the metric needs,
deterministic, the same alone as in a batch, metadata declared, NaN with a reason when audio is
missing.  Distribution metrics: finite, deterministic, need at least two clips per set.
Encoders are tiny random-init models (no network); the default backend is ``random``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import math

import pytest
import torch

from omninft_bench.encoders import EncodersConfig, available_backends
from omninft_bench.encoders.testing import write_tiny_encoders
from omninft_bench.metrics import (
    DEFAULT_BACKEND,
    MODALITIES,
    NEEDS,
    DistributionMetric,
    EvalContext,
    NotEnoughSamplesError,
    PerSampleMetric,
    build,
    get_metric_class,
    list_metrics,
)
from omninft_bench.metrics.testing import toy_clips

PER_SAMPLE = [s.name for s in list_metrics(kind="per_sample")]
DISTRIBUTION = [s.name for s in list_metrics(kind="distribution")]
BATCH = toy_clips(2)
REFERENCE = toy_clips(3, start=100)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> EncodersConfig:
    return write_tiny_encoders(tmp_path_factory.getbasetemp() / "tiny-encoders", default="random")


def _context(encoders: EncodersConfig) -> EvalContext:
    return EvalContext(encoders, reference=REFERENCE)


@pytest.fixture(scope="module")
def ctx(encoders) -> EvalContext:
    return _context(encoders)


@pytest.mark.parametrize("name", PER_SAMPLE + DISTRIBUTION)
def test_metadata_declared(name):
    cls = get_metric_class(name)
    spec = cls.spec
    assert spec.name == name and spec.modality in MODALITIES and set(spec.needs) <= set(NEEDS)
    assert isinstance(spec.higher_is_better, bool) and spec.description
    assert cls.__doc__ and len(cls.__doc__.strip()) > 20
    assert issubclass(cls, PerSampleMetric if spec.kind == "per_sample" else DistributionMetric)
    if spec.backend is not None:
        assert spec.backend == DEFAULT_BACKEND or spec.backend in available_backends()
        assert cls.requires, "a metric on an encoder declares the capabilities it uses"
    if spec.modality in ("audio", "text_audio", "sync"):
        assert "audio" in spec.needs
    if spec.modality.startswith("text_"):
        assert "prompt" in spec.needs
    if spec.kind == "distribution":
        assert "reference" in spec.needs


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_per_sample_contract(name, ctx, encoders):
    metric = build(name, ctx)
    scores = metric.score(BATCH)
    assert scores.shape == (len(BATCH),) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all(), f"{name}: {scores}"
    # deterministic: a fresh context recomputes everything from scratch
    again = build(name, _context(encoders)).score(BATCH)
    torch.testing.assert_close(again, scores, rtol=1e-5, atol=1e-6)
    # batch-size invariant: a clip alone scores what it scores in the batch
    alone = torch.cat([metric.score([clip]) for clip in BATCH[::-1]]).flip(0)
    torch.testing.assert_close(alone, scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_missing_audio_gives_nan_with_reason(name, ctx):
    metric = build(name, ctx)
    silent = BATCH[0].replace(audio=None, sample_rate=None)
    values, reasons = metric.score_with_reasons([silent, BATCH[1]])
    if "audio" in metric.spec.needs:
        assert math.isnan(values[0]) and reasons[0] == "no audio track"
    else:
        assert math.isfinite(values[0]) and reasons[0] is None
    assert math.isfinite(values[1])


@pytest.mark.parametrize("name", [s.name for s in list_metrics(kind="per_sample") if "prompt" in s.needs])
def test_missing_prompt_gives_nan_with_reason(name, ctx):
    values, reasons = build(name, ctx).score_with_reasons([BATCH[0].replace(prompt="")])
    assert math.isnan(values[0]) and reasons[0] == "no prompt"


@pytest.mark.filterwarnings("ignore:frechet_distance:UserWarning")
@pytest.mark.parametrize("name", DISTRIBUTION)
def test_distribution_contract(name, ctx, encoders):
    metric = build(name, ctx)
    value = metric.compute(BATCH)  # against the context's reference set
    assert isinstance(value, float) and math.isfinite(value)
    assert build(name, _context(encoders)).compute(BATCH, REFERENCE) == pytest.approx(value, rel=1e-6, abs=1e-9)
    with pytest.raises(NotEnoughSamplesError):
        metric.compute(BATCH[:1], REFERENCE)


@pytest.mark.filterwarnings("ignore:frechet_distance:UserWarning")
def test_distance_of_a_set_to_itself_is_smallest(ctx):
    fvd = build("fvd", ctx)
    assert fvd.compute(REFERENCE, REFERENCE) == pytest.approx(0.0, abs=1e-6)
    assert fvd.compute(BATCH, REFERENCE) > fvd.compute(REFERENCE, REFERENCE)
