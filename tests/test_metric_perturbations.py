"""Sync and quality metrics respond monotonically to graded SynthAV perturbations."""

from __future__ import annotations

import numpy as np
import pytest

from omninft_bench.data import synthav
from omninft_bench.data.perturb import SEVERITIES, apply_perturbation
from omninft_bench.metrics import EvalContext, build, get_spec, list_metrics
from omninft_bench.validate import expected_direction

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


# --------------------------------------------------------------------------- every metric
#
# Every registered per-sample sync, video and audio metric, on the perturbations of the issue's
# rules for its modality (sync: the audio shifted or crossfaded toward another clip's, and a
# blurred video; video quality: blur, noise, flicker, freeze; audio: noise, dropped and inserted
# events), wherever ``validate.expected_direction`` says the metric should move.  The direction
# is validate's, never re-derived here.  One severity ladder for all: the clean clips, then the
# 2nd and 4th of validate's default severities (``perturb.SEVERITIES``).  Encoder metrics run on
# SynthBind, the realism metrics against a small SynthAV reference set.  The mean over CLIPS
# must move strictly at each step: no ties are allowed (none is needed: the only binary metric,
# dynamic_degree, moves 1 -> 0.75 -> 0 under video_freeze).

SWEEP_MODALITIES = ("sync", "video", "audio")
SWEEP_METRICS = [
    s.name for s in list_metrics(kind="per_sample") if s.modality in SWEEP_MODALITIES
]
PERTURBATIONS_FOR = {
    "sync": ("audio_shift", "audio_swap", "video_blur"),
    "video": ("video_blur", "video_noise", "video_flicker", "video_freeze"),
    "audio": ("audio_noise", "audio_drop_events", "audio_insert_events"),
}
N_REFERENCE = 32


def _ladder(perturbation: str) -> tuple[float | None, ...]:
    """None = the clean clips, then two of validate's default severities (increasing damage)."""
    severities = SEVERITIES[perturbation]
    return (None, severities[1], severities[3])


def _sign(metric: str, perturbation: str) -> int:
    """+1 when validate expects the metric's value to rise under the perturbation, -1 to fall."""
    spec = get_spec(metric)
    expected, _ = expected_direction(spec, perturbation)
    if expected == "none":
        raise ValueError(f"validate expects {metric} to be blind to {perturbation}")
    worse = -1 if spec.higher_is_better else 1
    return worse if expected == "worse" else -worse


SWEEP_CASES = [
    (metric, perturbation)
    for metric in SWEEP_METRICS
    for perturbation in PERTURBATIONS_FOR[get_spec(metric).modality]
    if expected_direction(get_spec(metric), perturbation)[0] != "none"
]

# Measured on this module's setup (12 clips, seed = clip index, reference_set(n=32)); the values
# are the means at the clean clips and at the ladder's two severities.  Strict: an XPASS (the
# metric or the encoder changed) fails, so that the entry is re-measured and removed.
KNOWN_FAILURES = {
    ("av_align", "video_blur"): (
        "expected worse, rises then falls: 0.478 -> 0.520 -> 0.476 (sigma 0 / 1 / 4 px); "
        "mild blur smooths the optical flow and its peaks match the audio onsets better "
        "(also failing in validate's report)"
    ),
    ("av_score", "audio_shift"): (
        "step response, then a noisy plateau: 0.394 -> 0.143 -> 0.150 (0 / 0.2 / 0.8 s); "
        "0.143 / 0.133 / 0.133 at 0.02 / 0.1 / 0.4 s (a circular roll by 0.02 s drops it as "
        "much), so any shift reads as 'not aligned' and larger ones cannot score lower"
    ),
    ("avh_score", "audio_shift"): (
        "step response, then a noisy plateau: 0.388 -> 0.131 -> 0.141 (0 / 0.2 / 0.8 s); "
        "0.133 / 0.122 / 0.123 at 0.02 / 0.1 / 0.4 s"
    ),
    ("javis_score", "audio_shift"): (
        "step response, then a noisy plateau: 0.367 -> 0.107 -> 0.116 (0 / 0.2 / 0.8 s); "
        "0.109 / 0.097 / 0.099 at 0.02 / 0.1 / 0.4 s"
    ),
    ("subject_consistency", "video_blur"): (
        "expected worse, rises: 0.9557 -> 0.9648 -> 0.9632 (sigma 0 / 1 / 4 px); blurred frames "
        "embed more alike (also failing in validate's report)"
    ),
    ("background_consistency", "video_blur"): (
        "expected worse, rises: 0.9557 -> 0.9648 -> 0.9632 (sigma 0 / 1 / 4 px); same formula "
        "and encoder as subject_consistency (also failing in validate's report)"
    ),
    ("subject_consistency", "video_noise"): (
        "drops then recovers: 0.9557 -> 0.9205 -> 0.9250 (std 0 / 0.05 / 0.2); the same at 32 "
        "clips (0.9603 -> 0.9237 -> 0.9257)"
    ),
    ("background_consistency", "video_noise"): (
        "drops then recovers: 0.9557 -> 0.9205 -> 0.9250 (std 0 / 0.05 / 0.2); the same at 32 "
        "clips (0.9603 -> 0.9237 -> 0.9257)"
    ),
    ("video_realism", "video_noise"): (
        "expected worse (higher), jumps then improves: 0.654 -> 1.273 -> 1.237 "
        "(std 0 / 0.05 / 0.2); also with 64 reference clips and with 32 eval clips"
    ),
    ("video_realism", "video_flicker"): (
        "expected worse (higher), jumps then improves: 0.654 -> 0.978 -> 0.919 "
        "(gain 0 / 0.1 / 0.4); also with 64 reference clips and with 32 eval clips"
    ),
    ("motion_smoothness", "video_freeze"): (
        "expected better, dips at the mild level: 0.99327 -> 0.99308 -> 0.99778 (0 / 25 / 75 % "
        "of frames frozen); the jump at the end of a short stall costs about what the still "
        "stretch gains (a near tie: +0.0002 with 32 clips)"
    ),
}


def _sweep_param(metric: str, perturbation: str):
    reason = KNOWN_FAILURES.get((metric, perturbation))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(metric, perturbation, marks=marks, id=f"{metric}-{perturbation}")


class _Sweep:
    """Metrics on one shared context; perturbed clip sets and level means cached for the module."""

    def __init__(self) -> None:
        overrides = {name: "synthbind" for name in SWEEP_METRICS if get_spec(name).backend}
        reference = synthav.reference_set(n=N_REFERENCE)
        self.ctx = EvalContext(reference=reference, backends=overrides)
        self.metrics = {name: build(name, self.ctx) for name in SWEEP_METRICS}
        self.ctx.check(self.metrics.values())  # no metric silently loses its backend
        self._clips: dict[tuple[str, float], list] = {}
        self._means: dict[tuple[str, str | None, float | None], float] = {}

    def clips(self, perturbation: str, severity: float | None) -> list:
        if severity is None:
            return CLIPS
        key = (perturbation, severity)
        if key not in self._clips:
            # Swaps borrow the next clip's audio, as validate's sweep does.
            self._clips[key] = [
                apply_perturbation(
                    perturbation, c, severity, seed=i, other=CLIPS[(i + 1) % len(CLIPS)]
                )
                for i, c in enumerate(CLIPS)
            ]
        return self._clips[key]

    def mean(self, metric: str, perturbation: str, severity: float | None) -> float:
        key = (metric, None if severity is None else perturbation, severity)
        if key not in self._means:
            values = self.metrics[metric].score(self.clips(perturbation, severity)).numpy()
            assert np.isfinite(values).all(), f"{metric} left clips unscored: {values}"
            self._means[key] = float(values.mean())
        return self._means[key]


@pytest.fixture(scope="module")
def sweep() -> _Sweep:
    return _Sweep()


def test_sweep_covers_every_metric() -> None:
    assert SWEEP_METRICS, "no per-sample sync, video or audio metric is registered"
    for metric in SWEEP_METRICS:
        passing = [c for c in SWEEP_CASES if c[0] == metric and c not in KNOWN_FAILURES]
        assert passing, f"{metric} has no perturbation it is expected to pass"
    stale = set(KNOWN_FAILURES) - set(SWEEP_CASES)
    assert not stale, f"KNOWN_FAILURES entries that are not swept: {sorted(stale)}"


@pytest.mark.parametrize(("metric", "perturbation"), [_sweep_param(*c) for c in SWEEP_CASES])
def test_every_metric_responds_monotonically(sweep: _Sweep, metric: str, perturbation: str) -> None:
    ladder = _ladder(perturbation)
    scores = [sweep.mean(metric, perturbation, s) for s in ladder]
    steps = np.diff(scores) * _sign(metric, perturbation)
    expected = expected_direction(get_spec(metric), perturbation)[0]
    assert (steps > 0).all(), f"{metric} under {perturbation} {ladder} ({expected}): {scores}"
