"""Metric-validity report: do the metrics move the way they should when SynthAV clips are damaged?

    python -m omninft_bench.validate [n=64] [metrics=[...]] [perturbations=[...]] out=DIR

Every registered SynthAV perturbation (``omninft_bench.data.perturb``) is applied at each of its
severities to ``n`` clips of the SynthAV eval split, and every registered metric scores the clean
set (level 0) and each damaged set.  Per (metric, perturbation):

* ``spearman``: Spearman correlation between the damage level (0 = clean, then the severities
  in order of increasing damage) and the metric's per-level value (mean over clips for
  per-sample metrics, the set value for distribution metrics), *signed so that positive means
  the metric got worse* (multiplied by -1 for higher-is-better metrics);
* ``expected``: ``worse``, ``better`` or ``none`` (the metric should be blind to it), from
  :func:`expected_direction`;
* ``effect``: the change from clean at the strongest severity, signed like ``spearman``, in
  units of the spread of the clean per-clip values (per-sample metrics) or of the clean value
  itself (distribution metrics);
* ``pass``: ``worse`` passes when ``spearman >= min_spearman``, or when the metric is worse by
  more than ``none_tolerance`` at the strongest severity and better by no more than that at any
  severity (a response that saturates at the mildest level has a noisy rank order but moves
  the right way); ``better`` mirrors it; ``none`` passes unless the metric moves both
  consistently (``|spearman| >= min_spearman``) and materially (some level's change beyond
  ``none_tolerance``).

When a perturbation leaves every input a metric reads bit-identical (video metrics under an
audio perturbation, ...), the clean values are reused: the metric is blind by construction.
``audio_shift`` is judged on the clips whose sounds all stay inside the clip at every severity
(per SynthAV ground truth), so that it tests timing alone; ``clips`` in each cell says how many
clips a judgement rests on.

Every embedding metric runs on ``backend`` (SynthBind by default: no other weights ship).  The
reference set for distribution and realism metrics is ``n_reference`` clips of the SynthAV
reference split.  Outputs: ``DIR/validity.json`` ({metric: {perturbation: {spearman, expected,
pass, ...}}}), ``DIR/ground_truth.json`` (av_offset against the planted offset) and
``DIR/validity.md`` (rendered from ``templates/validity.md.j2``); an MLflow run when ``track``.

The report also asks whether a per-sample metric marks *undamaged* clips down for what they
contain: ``content_bias`` is the Spearman correlation, over the clean clips, between the metric
and each content count of the SynthAV ground truth (:data:`CONTENT_COUNTS`: objects, sounds,
visual events), signed so that positive means richer clips score worse.  It is a reading, not a
pass/fail rule: an alignment score may legitimately find a busy prompt harder, but a realism
score that prefers sparse clips rewards the generator for leaving things out.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

from omninft_bench.config import CommonConfig, option, parse_cli, to_dict
from omninft_bench.data import perturb, synthav
from omninft_bench.encoders import EncoderError, EncodersConfig
from omninft_bench.media import AVClip
from omninft_bench.metrics import (
    ALL_ENCODER_METRICS,
    DistributionMetric,
    EvalContext,
    Metric,
    MetricSpec,
    PerSampleMetric,
    build,
    expand_backends,
    list_metrics,
    resolve_names,
)

__all__ = [
    "CONTENT_COUNTS",
    "DEFAULT_REWARD_METRICS",
    "ValidateConfig",
    "content_bias",
    "expected_direction",
    "judge",
    "main",
    "render_markdown",
    "validate",
]

#: The metrics the trainer uses as default rewards; the report flags them, and they must pass.
DEFAULT_REWARD_METRICS = ("clip_score", "video_realism", "clap_score", "audio_realism", "av_offset", "javis_score")

# Which metric modalities a perturbation should make worse, by what it damages
# (``perturb.AFFECTS``).  The rules (audio shift -> sync metrics; audio noise -> audio
# metrics; blur/noise -> video metrics; prompt swap -> text metrics; another clip's audio -> AV
# metrics) generalize to: damaging a stream lowers every score that judges that stream, alone,
# against the prompt or against the other stream; breaking only the AV relation lowers the sync
# scores (and the text-audio score when the sound is replaced); a wrong prompt lowers the text
# scores.  Everything else is expected to be blind ("none").
_WORSE_BY_KIND: dict[str, frozenset[str]] = {
    "audio": frozenset({"audio", "text_audio", "sync"}),
    "video": frozenset({"video", "text_video", "sync"}),
    "sync": frozenset({"sync"}),
    "text": frozenset({"text_video", "text_audio"}),
}
_WORSE_EXTRA: dict[str, frozenset[str]] = {"audio_swap": frozenset({"text_audio"})}  # the sound itself is replaced


# Known, documented responses that differ from the modality rule, with the reason shown in the
# report.  They are fixed from what the metric measures, not from observed results.
_EXCEPTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("temporal_flickering", "video_blur"): ("better", "smoothing lowers frame-to-frame differences"),
    ("temporal_flickering", "video_freeze"): ("better", "identical frames do not flicker (VBench favours static video)"),
    ("motion_smoothness", "video_blur"): ("better", "smoother frames interpolate better"),
    ("motion_smoothness", "video_freeze"): ("better", "a still stretch interpolates perfectly"),
    ("subject_consistency", "video_freeze"): ("better", "identical frames are maximally consistent"),
    ("background_consistency", "video_freeze"): ("better", "identical frames are maximally consistent"),
    ("dynamic_degree", "video_blur"): ("none", "measures the amount of motion, not its quality"),
    ("dynamic_degree", "video_noise"): ("none", "measures the amount of motion, not its quality"),
    ("dynamic_degree", "video_flicker"): ("none", "measures the amount of motion, not its quality"),
}

# audio_shift is meant to change timing only, but a large shift also pushes sounds out of the
# 2 s clip (ground truth: ``removed_audio_events``), which is a content change.  It is judged
# on the clips whose sounds all stay inside at every severity, so that "blind to timing" is
# tested where only timing changed.  (The full set still feeds the ground-truth table.)
_JUDGED_ON_INTACT = frozenset({"audio_shift"})


def _intact(levels: Sequence[_Level]) -> list[int]:
    """Clips that no damaged level lost a sound from (per SynthAV ground truth)."""
    keep = []
    for i in range(len(levels[0].clips)):
        gts = [lv.clips[i].meta.get("gt") or {} for lv in levels[1:]]
        if all(not gt.get("removed_audio_events") for gt in gts):
            keep.append(i)
    return keep


# What each perturbation kind (``perturb.AFFECTS``) changes in a clip.
_TOUCHES = {"audio": "audio", "sync": "audio", "video": "video", "text": "prompt"}


@dataclass
class ValidateConfig(CommonConfig):
    out: str = option("outputs/validity", "output directory (validity.json, validity.md, ground_truth.json)")
    n: int = option(64, "SynthAV eval clips that every perturbation is applied to")
    n_reference: int = option(128, "SynthAV reference clips (distribution and realism metrics)")
    metrics: list[str] = option([], "metrics to validate; empty = every registered metric")
    perturbations: list[str] = option([], "perturbations to apply; empty = every registered one")
    severities: dict[str, list[float]] = option(
        {}, "severity overrides per perturbation, e.g. severities={audio_shift:[0.2,0.8]}"
    )
    backend: str = option("synthbind", "encoder backend of every embedding metric; empty = the metrics' own")
    encoders: EncodersConfig = option(EncodersConfig(), "encoder backends (weights, device)")
    seed: int = option(0, "seed of the perturbations' randomness")
    min_spearman: float = option(0.8, "a metric 'moves' when its signed Spearman reaches this")
    none_tolerance: float = option(0.5, "largest effect (in clean spreads) still called blind")
    experiment: str = option("validate", "MLflow experiment name")
    track: bool = option(True, "log an MLflow run (pass/fail counts, the report files as artifacts)")
    progress: bool = option(True, "show a progress bar")


# ----------------------------------------------------------------------------- expectations


def reads(spec: MetricSpec) -> set[str]:
    """The clip inputs a metric reads (video, audio, prompt)."""
    return set(spec.needs) & {"video", "audio", "prompt"}


def expected_direction(spec: MetricSpec, perturbation: str) -> tuple[str, str]:
    """``(expected, reason)`` for a metric under a perturbation."""
    touched = _TOUCHES[perturb.AFFECTS[perturbation]]
    if touched not in reads(spec):
        return "none", f"reads no {touched}"
    if (spec.name, perturbation) in _EXCEPTIONS:
        return _EXCEPTIONS[(spec.name, perturbation)]
    worse = _WORSE_BY_KIND[perturb.AFFECTS[perturbation]] | _WORSE_EXTRA.get(perturbation, frozenset())
    if spec.modality in worse:
        return "worse", f"damages what a {spec.modality} metric judges"
    return "none", f"leaves what a {spec.modality} metric judges intact"


def judge(
    expected: str,
    spearman: float,
    effects: Sequence[float],
    *,
    min_spearman: float,
    none_tolerance: float,
) -> bool:
    """Pass rule (see the module docstring).

    ``effects``: per damaged level (mildest first), the change from clean in clean spreads,
    signed so that positive = worse.  A NaN Spearman (a flat metric) counts as 0.
    """
    rho = 0.0 if not math.isfinite(spearman) else spearman
    finite = [e for e in effects if math.isfinite(e)]
    if expected in ("worse", "better"):
        sign = 1.0 if expected == "worse" else -1.0
        if sign * rho >= min_spearman:
            return True
        # A saturating response (all the damage done at the mildest level, then noise) has a
        # poor rank correlation but still moves the right way: materially at the strongest
        # level and never materially the wrong way.
        return bool(finite) and sign * finite[-1] > none_tolerance and min(sign * e for e in finite) >= -none_tolerance
    largest = max((abs(e) for e in finite), default=0.0)
    return not (abs(rho) >= min_spearman and largest > none_tolerance)


# ----------------------------------------------------------------------------- content bias

#: How much a SynthAV clip holds, from its ground truth (``clip.meta["gt"]``).
CONTENT_COUNTS: dict[str, Any] = {
    "objects": lambda gt: len(gt.get("objects", [])),
    "sounds": lambda gt: len(gt.get("audio_events", [])),
    "visual events": lambda gt: len(gt.get("visual_events", [])),
}


def content_bias(
    per_clip: dict[str, np.ndarray], clips: Sequence[AVClip], specs: dict[str, MetricSpec]
) -> dict[str, dict[str, float | None]]:
    """Per metric and content count: Spearman over the clips, positive = richer clips score worse.

    ``per_clip`` holds each per-sample metric's values on ``clips`` (NaN = unscorable, left out).
    A count that does not vary over the scorable clips, or a constant metric, gives ``None``.
    """
    gts = [c.meta.get("gt") or {} for c in clips]
    counts = {name: np.array([fn(gt) for gt in gts], dtype=float) for name, fn in CONTENT_COUNTS.items()}
    out: dict[str, dict[str, float | None]] = {}
    for name, values in per_clip.items():
        sign = -1.0 if specs[name].higher_is_better else 1.0
        ok = np.isfinite(values)
        row: dict[str, float | None] = {}
        for count_name, count in counts.items():
            x, y = count[ok], values[ok]
            if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
                row[count_name] = None
            else:
                row[count_name] = _finite(sign * float(spearmanr(x, y).statistic))
        out[name] = row
    return out


# ----------------------------------------------------------------------------- scoring


@dataclass
class _Level:
    """One damage level of one perturbation: its clips and, per metric, its value(s)."""

    severity: float | None  # None = clean
    clips: list[AVClip]
    per_clip: dict[str, np.ndarray]  # per-sample metrics: [n] values (NaN = unscorable)
    value: dict[str, float]  # every metric: the level's value (mean, or the set value)
    entries: dict[str, list]  # distribution metrics: per-clip features (to re-score a subset)

    def subset(self, keep: Sequence[int], metrics: Sequence[Metric], ctx: EvalContext) -> _Level:
        """The same level scored on clips ``keep`` only."""
        per_clip = {name: v[list(keep)] for name, v in self.per_clip.items()}
        value = {name: _mean(v) for name, v in per_clip.items()}
        entries = {name: [e[i] for i in keep] for name, e in self.entries.items()}
        for m in metrics:
            if m.name in entries:
                value[m.name] = _distribution_value(m, entries[m.name], ctx)
        return _Level(self.severity, [self.clips[i] for i in keep], per_clip, value, entries)


def _levels(cfg: ValidateConfig, names: Sequence[str]) -> dict[str, list[float]]:
    out = {}
    for name in names:
        values = cfg.severities.get(name, perturb.SEVERITIES[name])
        out[name] = [float(v) for v in values]
    return out


def _perturb_all(name: str, severity: float, clips: list[AVClip], seed: int) -> list[AVClip]:
    """Damage every clip; swaps borrow from the next clip of the set (a fixed, real partner)."""
    out = []
    for i, clip in enumerate(clips):
        other = clips[(i + 1) % len(clips)]
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        out.append(perturb.apply_perturbation(name, clip, severity, rng=rng, other=other))
    return out


def _score_level(
    metrics: Sequence[Metric], clips: list[AVClip], ctx: EvalContext, bar: Any
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, list]]:
    """Clip by clip, every metric (so the context's memo shares one encoder pass per clip)."""
    per_sample = [m for m in metrics if isinstance(m, PerSampleMetric)]
    distribution = [m for m in metrics if isinstance(m, DistributionMetric)]
    values = {m.name: np.full(len(clips), np.nan) for m in per_sample}
    entries: dict[str, list] = {m.name: [] for m in distribution}
    for i, clip in enumerate(clips):
        for m in per_sample:
            values[m.name][i] = float(m.score([clip])[0])
        for m in distribution:
            entries[m.name].append(m.features(clip))
        bar.update(1)
    level_values = {name: _mean(v) for name, v in values.items()}
    for m in distribution:
        level_values[m.name] = _distribution_value(m, entries[m.name], ctx)
    return values, level_values, entries


def _mean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def _distribution_value(metric: Metric, entries: list, ctx: EvalContext) -> float:
    try:
        return metric.compute_from_entries(entries, ctx.reference_features(metric))
    except ValueError:  # too few scorable clips
        return math.nan


def _effects(metric: Metric, levels: list[_Level]) -> list[float]:
    """Change from clean at each damaged level, signed so that positive = worse, in units of
    the spread of the clean per-clip values (per-sample) or of the clean value (distribution)."""
    clean = levels[0]
    name = metric.name
    if isinstance(metric, PerSampleMetric):
        finite = clean.per_clip[name][np.isfinite(clean.per_clip[name])]
        scale = float(finite.std()) if finite.size > 1 else 0.0
    else:
        scale = abs(clean.value[name])
    sign = -1.0 if metric.spec.higher_is_better else 1.0
    return [sign * (lv.value[name] - clean.value[name]) / max(scale, 1e-12) for lv in levels[1:]]


def _spearman(metric: Metric, levels: list[_Level]) -> float:
    ys = [lv.value[metric.name] for lv in levels]
    xs = list(range(len(levels)))
    keep = [i for i, y in enumerate(ys) if math.isfinite(y)]
    if len(keep) < 2 or len({ys[i] for i in keep}) < 2:
        return math.nan
    rho = float(spearmanr([xs[i] for i in keep], [ys[i] for i in keep]).statistic)
    return -rho if metric.spec.higher_is_better else rho


def _ground_truth(levels: list[_Level], av_offset: Metric | None) -> dict[str, Any] | None:
    """av_offset's signed estimate against the planted offset of each audio_shift level."""
    if av_offset is None:
        return None
    rows = []
    for lv in levels:
        est, true = [], []
        for clip in lv.clips:
            features = av_offset.features(clip)
            if isinstance(features, str):
                continue
            est.append(float(features[0]))
            true.append(float(clip.meta["gt"]["offset"]))
        err = np.abs(np.array(est) - np.array(true))
        rows.append(
            {
                "severity": lv.severity or 0.0,
                "true_offset_s": float(np.mean(true)) if true else math.nan,
                "mean_estimate_s": float(np.mean(est)) if est else math.nan,
                "mean_abs_error_s": float(err.mean()) if est else math.nan,
                "within_one_frame": float((err <= 1.0 / lv.clips[0].fps + 1e-9).mean()) if est else math.nan,
                "clips": len(est),
            }
        )
    return {"perturbation": "audio_shift", "metric": "av_offset", "levels": rows}


# ----------------------------------------------------------------------------- main work


def _backend_overrides(backend: str, names: Sequence[str]) -> dict[str, str]:
    """Send every embedding metric to ``backend`` when it can embed what the metric needs."""
    return expand_backends({ALL_ENCODER_METRICS: backend} if backend else {}, names, capable_only=True)


def validate(cfg: ValidateConfig) -> dict[str, Any]:
    """Run the sweep; returns ``{"validity": ..., "ground_truth": ..., "meta": ...}`` and writes files."""
    if cfg.n < 4:
        raise ValueError(f"n={cfg.n}: need at least 4 clips")
    names = resolve_names(cfg.metrics or [s.name for s in list_metrics()])
    pert_names = list(dict.fromkeys(cfg.perturbations or perturb.PERTURBATIONS))
    for p in pert_names + list(cfg.severities):
        if p not in perturb.PERTURBATIONS:
            raise ValueError(f"unknown perturbation {p!r}; known: {', '.join(perturb.PERTURBATIONS)}")
    levels_of = _levels(cfg, pert_names)
    overrides = _backend_overrides(cfg.backend, names)
    gen_cfg = synthav.SynthAVConfig()
    ctx = EvalContext(cfg.encoders, reference=synthav.reference_set(gen_cfg, cfg.n_reference), backends=overrides)
    metrics: list[Metric] = []
    skipped: dict[str, str] = {}
    for name in names:
        metric = build(name, ctx)
        try:
            ctx.check([metric])
        except EncoderError as exc:
            skipped[name] = str(exc)
            continue
        metrics.append(metric)

    start = time.perf_counter()
    clean = synthav.eval_set(gen_cfg, cfg.n)
    total = cfg.n * (1 + sum(len(v) for v in levels_of.values()))
    bar = tqdm(total=total, desc="validity sweep", unit="clip", disable=not cfg.progress)
    clean_level = _Level(None, clean, *_score_level(metrics, clean, ctx, bar))

    validity: dict[str, dict[str, Any]] = {m.name: {} for m in metrics}
    curves: dict[str, dict[str, list[float]]] = {m.name: {} for m in metrics}
    ground_truth = None
    judged: dict[str, int] = {}
    for p in pert_names:
        touched = _TOUCHES[perturb.AFFECTS[p]]
        live = [m for m in metrics if touched in reads(m.spec)]
        levels = [clean_level]
        for severity in levels_of[p]:
            clips = _perturb_all(p, severity, clean, cfg.seed)
            if live:
                per_clip, values, entries = _score_level(live, clips, ctx, bar)
            else:
                per_clip, values, entries = {}, {}, {}
                bar.update(len(clips))
            for m in metrics:  # inputs unchanged: the clean values, exactly
                if m not in live:
                    if m.name in clean_level.per_clip:
                        per_clip[m.name] = clean_level.per_clip[m.name]
                    if m.name in clean_level.entries:
                        entries[m.name] = clean_level.entries[m.name]
                    values[m.name] = clean_level.value[m.name]
            levels.append(_Level(severity, clips, per_clip, values, entries))
        if p == "audio_shift":
            ground_truth = _ground_truth(levels, next((m for m in metrics if m.name == "av_offset"), None))
        judged_on = len(clean)
        if p in _JUDGED_ON_INTACT:
            keep = _intact(levels)
            if len(keep) >= 4:
                levels = [lv.subset(keep, metrics, ctx) for lv in levels]
                judged_on = len(keep)
        judged[p] = judged_on
        for m in metrics:
            expected, reason = expected_direction(m.spec, p)
            rho, effects = _spearman(m, levels), _effects(m, levels)
            validity[m.name][p] = {
                "spearman": _finite(rho),
                "expected": expected,
                "pass": judge(expected, rho, effects, min_spearman=cfg.min_spearman, none_tolerance=cfg.none_tolerance),
                "effect": _finite(effects[-1]),
                "reason": reason,
                "blind_by_construction": m not in live,
                "clips": judged_on,
            }
            curves[m.name][p] = [_finite(lv.value[m.name]) for lv in levels]
    bar.close()
    meta = {
        "config": to_dict(cfg),
        "clips": cfg.n,
        "reference_clips": cfg.n_reference,
        "severities": levels_of,
        "judged_clips": judged,
        "backends": {m.name: m.backend_name for m in metrics},
        "specs": {
            m.name: {"modality": m.spec.modality, "kind": m.spec.kind, "higher_is_better": m.spec.higher_is_better}
            for m in metrics
        },
        "curves": curves,
        "skipped_metrics": skipped,
        "default_rewards": [n for n in DEFAULT_REWARD_METRICS if n in validity],
        "content_bias": content_bias(clean_level.per_clip, clean, {m.name: m.spec for m in metrics}),
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    return {"validity": validity, "ground_truth": ground_truth, "meta": meta}


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


# ----------------------------------------------------------------------------- rendering


def _fmt(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.3g}"


def render_markdown(result: dict[str, Any]) -> str:
    """``validity.md`` from the structured result (Jinja2, StrictUndefined)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("omninft_bench", "templates"),
        undefined=StrictUndefined,
        autoescape=False,  # Markdown; every value comes from our own registries and numbers
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    validity, meta = result["validity"], result["meta"]
    perturbations = list(meta["severities"])
    rows = []
    for name, cells in validity.items():
        failed = [p for p in perturbations if not cells[p]["pass"]]
        rows.append(
            {
                "name": name,
                "modality": meta["specs"][name]["modality"],
                "default_reward": name in meta["default_rewards"],
                "cells": [cells[p] for p in perturbations],
                "failed": failed,
            }
        )
    failures = [
        {"metric": r["name"], "perturbation": p, **validity[r["name"]][p]} for r in rows for p in r["failed"]
    ]
    default_failures = [f for f in failures if f["metric"] in meta["default_rewards"]]
    return env.get_template("validity.md.j2").render(
        meta=meta,
        perturbations=perturbations,
        rows=rows,
        failures=failures,
        default_failures=default_failures,
        ground_truth=result["ground_truth"],
        content_bias=meta.get("content_bias", {}),
        content_counts=list(CONTENT_COUNTS),
        cfg=meta["config"],
    )


def write_outputs(result: dict[str, Any], out: str | Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "validity": out / "validity.json",
        "ground_truth": out / "ground_truth.json",
        "markdown": out / "validity.md",
    }
    paths["validity"].write_text(json.dumps(result["validity"], indent=1) + "\n", encoding="utf-8")
    details = {"ground_truth": result["ground_truth"], "meta": result["meta"]}
    paths["ground_truth"].write_text(json.dumps(details, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(result), encoding="utf-8")
    return paths


def _log_run(result: dict[str, Any], paths: dict[str, Path]) -> None:
    from omninft_bench.tracking import log_artifact, log_metrics

    flat: dict[str, float | None] = {}
    for metric, cells in result["validity"].items():
        for p, cell in cells.items():
            flat[f"{metric}/{p}/spearman"] = cell["spearman"]
            flat[f"{metric}/{p}/pass"] = float(cell["pass"])
    cells = [c for row in result["validity"].values() for c in row.values()]
    flat["cells/total"] = len(cells)
    flat["cells/failed"] = sum(not c["pass"] for c in cells)
    log_metrics(flat)
    for path in paths.values():
        log_artifact(path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = parse_cli(ValidateConfig, argv, command="omninft_bench.validate")
    tracking: Any = nullcontext(None)
    if cfg.track:
        from omninft_bench.tracking import log_params, mlflow_run

        tracking = mlflow_run(cfg.tracking_uri, cfg.experiment, run_name=f"validate n={cfg.n}", tags={"command": "validate"})
    with tracking as run:
        if run is not None:
            log_params(to_dict(cfg))
        try:
            result = validate(cfg)
        except (ValueError, KeyError, EncoderError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        paths = write_outputs(result, cfg.out)
        if run is not None:
            _log_run(result, paths)
    failed = [(m, p) for m, row in result["validity"].items() for p, c in row.items() if not c["pass"]]
    bad_defaults = [(m, p) for m, p in failed if m in result["meta"]["default_rewards"]]
    print(f"wrote {paths['markdown']} and {paths['validity'].name}: {len(failed)} failing cells", end="")
    print(f", {len(bad_defaults)} of them on default rewards" + (f": {bad_defaults}" if bad_defaults else ""))
    return result


if __name__ == "__main__":
    main()
