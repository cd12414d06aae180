"""Weight-free sync and quality metrics respond monotonically to graded SynthAV perturbations."""

from __future__ import annotations

import numpy as np
import pytest

from omninft_bench.data import synthav
from omninft_bench.data.perturb import apply_perturbation
from omninft_bench.metrics import build

CLIPS = synthav.eval_set(n=12)


def _mean_score(metric: str, perturbation: str, severity: float) -> float:
    m = build(metric)
    batch = [apply_perturbation(perturbation, c, severity, seed=i) for i, c in enumerate(CLIPS)]
    return float(np.nanmean(m.score(batch).numpy()))


@pytest.mark.parametrize(
    ("metric", "perturbation", "severities", "direction"),
    [
        ("av_offset", "audio_shift", [0.0, 0.25, 0.5], +1),  # |offset| grows with the shift
        ("temporal_flickering", "video_flicker", [0.0, 0.3, 0.6], -1),
        ("motion_smoothness", "video_noise", [0.0, 0.05, 0.15], -1),
    ],
)
def test_monotone_response(metric: str, perturbation: str, severities: list[float], direction: int) -> None:
    scores = [_mean_score(metric, perturbation, s) for s in severities]
    steps = np.diff(scores) * direction
    assert (steps > 0).all(), f"{metric} under {perturbation} {severities}: {scores}"
