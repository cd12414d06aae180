"""Evaluate a folder of generated clips with registered metrics.

    python -m omninft_bench.evaluate input=DIR [prompts=CSV_or_JSONL] [reference=DIR] \
        [metrics=[av_align,clip_score]] [backends=[all:synthbind]] out=DIR

Reads the JavisBench layout (prompts.csv + samples/sample_{i:04d}.mp4 and .wav), the VBench
layout ({prompt}-{i}.mp4) or a plain folder of clips (see :mod:`omninft_bench.evaluate_inputs`).
Writes ``out/results.json`` (per metric: value with a seeded 95% bootstrap CI and n; per
category when the CSV has categories; skipped clips with reasons) and ``out/per_sample.jsonl``
(one row per clip), and logs an MLflow run with both files as artifacts.

Everything that can be checked before the first clip is decoded is checked first: unknown metric
names (with suggestions), metrics that need prompts or a reference that was not given, encoder
backends without configured weights (naming the config key).  Then one pass over the clips:
each file is hashed, and features already in the feature cache (``cache_dir``) are reused
without decoding the clip.  An unreadable clip is skipped with its reason; a clip without audio
gets null audio metrics with a reason.  Exit status 0 when at least one clip was evaluated.

``backends=[clip_score:synthbind]`` moves one metric to another encoder backend;
``backends=[all:synthbind]`` moves every encoder metric (explicit ``METRIC:BACKEND`` entries win),
which is how SynthAV clips are scored on the shipped SynthBind weights.  Backends are never
switched automatically: a SynthAV folder whose metrics lack weights gets an error naming this fix.

Until the SynthBind encoder lands, the default metric set is the weight-free suite
(``av_align, av_offset, temporal_flickering, dynamic_degree, motion_smoothness``).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omninft_bench.config import CommonConfig, option, parse_cli, to_dict
from omninft_bench.data.layout import GROUND_TRUTH_JSONL, JAVISBENCH_CATEGORIES
from omninft_bench.encoders import (
    EncoderError,
    EncodersConfig,
    MissingWeightsError,
    available_backends,
)
from omninft_bench.evaluate_inputs import ClipSource, Inputs, discover
from omninft_bench.media import MediaError, read_clip
from omninft_bench.metrics import (
    ALL_ENCODER_METRICS,
    WEIGHT_FREE_SUITE,
    DistributionMetric,
    EvalContext,
    FeatureCache,
    Metric,
    PerSampleMetric,
    UnknownMetricError,
    build,
    content_hash,
    expand_backends,
    list_metrics,
    resolve_names,
)
from omninft_bench.metrics.cache import Features
from omninft_bench.stats import Estimate, bootstrap_mean, bootstrap_statistic

__all__ = ["EvaluateConfig", "EvaluateError", "Plan", "evaluate", "main", "plan_evaluation"]


@dataclass
class EvaluateConfig(CommonConfig):
    input: str = option("", "folder of generated clips (JavisBench, VBench or plain layout)")
    prompts: str = option("", "prompt CSV (JavisBench columns) or JSONL; default: input/prompts.csv if present")
    reference: str = option("", "folder of reference clips (needed by fvd, kvd, fad and *_realism)")
    metrics: list[str] = option(
        [], "metric names, e.g. [av_align,clip_score]; empty = the weight-free suite, or every metric with backends=[all:X]"
    )
    backends: list[str] = option(
        [], "per-metric backend overrides, e.g. [clip_score:synthbind]; [all:synthbind] = every encoder metric"
    )
    experiment: str = option("evaluate", "MLflow experiment name")
    run_name: str = option("", "MLflow run name; empty = 'evaluate <input folder name>'")
    track: bool = option(True, "log an MLflow run (params, metrics, results files as artifacts)")
    cache_dir: str = option(".cache/omninft_bench/features", "feature cache directory; empty = no cache")
    n_bootstrap: int = option(1000, "bootstrap resamples for the CI of per-sample metrics")
    n_bootstrap_distribution: int = option(100, "bootstrap resamples for distribution metrics (each recomputes the metric)")
    confidence: float = option(0.95, "confidence level of the bootstrap intervals")
    seed: int = option(0, "seed of the bootstrap resampling")
    max_clips: int = option(0, "evaluate only the first N clips (0 = all)")
    progress: bool = option(True, "show a progress bar")
    encoders: EncodersConfig = option(EncodersConfig(), "encoder backends (weights, device)")


#: The encoder trained on the SynthAV domain (its weights ship with the package).
SYNTHAV_BACKEND = "synthbind"


class EvaluateError(ValueError):
    """A configuration problem found before any clip is processed."""


@dataclass
class Plan:
    """A validated evaluation: inputs found, metrics built, backends checked (nothing loaded)."""

    cfg: EvaluateConfig
    inputs: Inputs
    reference: Inputs | None
    metrics: list[Metric]
    ctx: EvalContext


def _parse_backends(items: Sequence[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        metric, sep, backend = item.partition(":")
        if not sep or not metric or not backend:
            raise EvaluateError(f"backends entry {item!r} is not METRIC:BACKEND (e.g. clip_score:synthbind, or all:synthbind)")
        overrides[metric.strip()] = backend.strip()
    return overrides


def default_metrics(backends: dict[str, str], has_reference: bool) -> list[str]:
    """The suite when ``metrics=`` is empty: the weight-free one, or, once ``backends=[all:X]``
    gives every encoder metric weights, every registered metric (those that compare against a
    reference set only when ``reference=`` is given)."""
    if ALL_ENCODER_METRICS not in backends:
        return list(WEIGHT_FREE_SUITE)
    return [s.name for s in list_metrics() if has_reference or "reference" not in s.needs]


def plan_evaluation(cfg: EvaluateConfig) -> Plan:
    """Validate everything that does not need the clips' content; raises before any work."""
    if not cfg.input:
        raise EvaluateError("input=DIR is required (a folder of generated clips)")
    parsed = _parse_backends(cfg.backends)
    names = resolve_names(cfg.metrics or default_metrics(parsed, has_reference=bool(cfg.reference)))
    overrides = expand_backends(parsed)
    if cfg.n_bootstrap < 1 or cfg.n_bootstrap_distribution < 1:
        raise EvaluateError("n_bootstrap and n_bootstrap_distribution must be >= 1")
    if not 0.0 < cfg.confidence < 1.0:
        raise EvaluateError(f"confidence must be in (0, 1), got {cfg.confidence}")
    inputs = discover(cfg.input, cfg.prompts or None)
    if cfg.max_clips > 0:
        inputs.sources = inputs.sources[: cfg.max_clips]

    cache = FeatureCache(cfg.cache_dir) if cfg.cache_dir else None
    ctx = EvalContext(cfg.encoders, cache=cache, backends=overrides)
    metrics = [build(name, ctx) for name in names]

    need_prompt = [m.name for m in metrics if "prompt" in m.spec.needs]
    if need_prompt and not inputs.has_prompts:
        raise EvaluateError(
            f"metric(s) {', '.join(need_prompt)} need a prompt per clip and {cfg.input} has none: "
            "pass prompts=CSV_or_JSONL (a 'text' column/field), or use the JavisBench/VBench layout"
        )
    need_ref = [m.name for m in metrics if "reference" in m.spec.needs]
    reference = None
    if need_ref:
        if not cfg.reference:
            raise EvaluateError(f"metric(s) {', '.join(need_ref)} need reference clips: pass reference=DIR")
        reference = discover(cfg.reference)
    try:
        ctx.check(metrics)
    except MissingWeightsError as exc:
        # SynthAV clips (write_javisbench leaves their ground truth beside them): say how to score
        # them on SynthBind, but never switch backends behind the user's back.
        synthav = (inputs.root / GROUND_TRUTH_JSONL).is_file()
        if synthav and exc.backend != SYNTHAV_BACKEND and SYNTHAV_BACKEND in available_backends():
            raise exc.with_hint(f"for SynthAV clips, backends=[{ALL_ENCODER_METRICS}:{SYNTHAV_BACKEND}]") from None
        raise
    return Plan(cfg, inputs, reference, metrics, ctx)


# ----------------------------------------------------------------------------- features


def _by_feature_key(metrics: Sequence[Metric]) -> dict[str, Metric]:
    """One metric per feature key (metrics sharing an extractor, e.g. fvd/kvd, extract once)."""
    groups: dict[str, Metric] = {}
    for m in metrics:
        groups.setdefault(m.feature_key(), m)
    return groups


def _clip_entries(
    source: ClipSource, extractors: dict[str, Metric], ctx: EvalContext
) -> tuple[dict[str, Features | str], str | None]:
    """Features of one clip for every feature key; ``(entries, None)`` or ``({}, skip reason)``.

    Cached keys are read without decoding the clip; the clip is decoded only for the rest.
    """
    digest = content_hash(source.files())
    entries: dict[str, Features | str] = {}
    cache = ctx.cache
    if cache is not None:
        for key in extractors:
            hit = cache.get(digest, key)
            if hit is not None:
                entries[key] = hit
    todo = [key for key in extractors if key not in entries]
    if not todo:
        return entries, None
    try:
        clip = read_clip(source.path)
    except MediaError as exc:
        return {}, exc.reason
    meta = dict(clip.meta, content_hash=digest, audio_text=source.audio_text, index=source.index)
    clip = clip.replace(prompt=source.prompt, meta=meta)
    for key in todo:
        try:
            entry = extractors[key].extract_or_reason(clip)
        except EncoderError:
            raise  # a backend that cannot load fails every clip: stop with its message
        except Exception as exc:  # one metric failing on one clip must not end the evaluation
            entries[key] = f"{extractors[key].name} failed: {exc.__class__.__name__}: {exc}"
            continue
        entries[key] = entry
        if cache is not None:
            cache.put(digest, key, entry)
    return entries, None


def _progress(items: Sequence[Any], desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="clip", disable=not enabled, dynamic_ncols=True)


# ----------------------------------------------------------------------------- aggregation


def _estimate_dict(est: Estimate, reason: str | None = None, notes: Sequence[str] = ()) -> dict[str, Any]:
    out = est.as_dict()
    if est.value is None and reason:
        out["reason"] = reason
    if notes:
        out["warnings"] = sorted(set(notes))
    return out


def _per_sample_estimate(
    values: list[float], reasons: list[str | None], positions: Sequence[int], cfg: EvaluateConfig
) -> dict[str, Any]:
    subset = [values[i] for i in positions]
    est = bootstrap_mean(subset, n_resamples=cfg.n_bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    why = Counter(reasons[i] for i in positions if reasons[i] is not None).most_common(1)
    return _estimate_dict(est, f"no clip could be scored ({why[0][0]})" if why else "no clip to score")


def _distribution_estimate(
    metric: DistributionMetric,
    generated: list[Features | str],
    reference: list[Features | str],
    positions: Sequence[int],
    cfg: EvaluateConfig,
) -> dict[str, Any]:
    gen = [generated[i] for i in positions if not isinstance(generated[i], str)]
    ref = [e for e in reference if not isinstance(e, str)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            metric._check_sizes(len(gen), len(ref))
            est = bootstrap_statistic(
                len(gen),
                lambda idx: metric.compute_features([gen[i] for i in idx], ref),
                n_resamples=cfg.n_bootstrap_distribution,
                confidence=cfg.confidence,
                seed=cfg.seed,
            )
        except Exception as exc:
            return _estimate_dict(Estimate(None, None, None, len(gen)), f"{exc.__class__.__name__}: {exc}")
    return _estimate_dict(est, "not finite", [str(w.message) for w in caught])


def _category_groups(sources: Sequence[ClipSource]) -> dict[str, dict[str, list[int]]]:
    """``{column: {category name: [positions]}}`` from the sources' category cells."""
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pos, src in enumerate(sources):
        for column, cell in src.categories.items():
            names = JAVISBENCH_CATEGORIES.get(column, ())
            for token in str(cell).split(","):
                token = token.strip()
                if not token:
                    continue
                label = names[int(token)] if token.isdigit() and int(token) < len(names) else token
                groups[column][label].append(pos)
    return {c: dict(g) for c, g in sorted(groups.items())}


# ----------------------------------------------------------------------------- main pass


def _reference_entries(plan: Plan) -> dict[str, list[Features | str]]:
    ref_metrics = [m for m in plan.metrics if "reference" in m.spec.needs]
    if not ref_metrics or plan.reference is None:
        return {}
    extractors = _by_feature_key(ref_metrics)
    out: dict[str, list[Features | str]] = {key: [] for key in extractors}
    for source in _progress(plan.reference.sources, "reference", plan.cfg.progress):
        entries, _ = _clip_entries(source, extractors, plan.ctx)
        for key, entry in entries.items():
            out[key].append(entry)
    for key, entries in out.items():
        plan.ctx.set_reference_features(key, entries)
    return out


def _score(metric: PerSampleMetric, entry: Features | str, source: ClipSource) -> tuple[float, str | None]:
    text = metric.text_for(source.prompt, {"audio_text": source.audio_text})
    if "prompt" in metric.spec.needs and not text.strip():
        return math.nan, "no prompt"
    try:
        return metric.value_or_reason(entry, text)
    except Exception as exc:
        return math.nan, f"{exc.__class__.__name__}: {exc}"


def _json_value(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class _Collected:
    """What the pass over the clips produced, before aggregation."""

    evaluated: list[ClipSource] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    reasons: dict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    entries: dict[str, list[Features | str]] = field(default_factory=lambda: defaultdict(list))
    null_reasons: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))


def _collect(plan: Plan) -> _Collected:
    """One pass over the clips: features (cached or extracted), per-sample values, rows."""
    extractors = _by_feature_key(plan.metrics)
    got = _Collected(skipped=list(plan.inputs.skipped))
    for source in _progress(plan.inputs.sources, "evaluate", plan.cfg.progress):
        entries, skip = _clip_entries(source, extractors, plan.ctx)
        if skip is not None:
            got.skipped.append({"path": source.rel, "reason": skip})
            continue
        got.evaluated.append(source)
        row: dict[str, Any] = {"index": source.index, "path": source.rel, "prompt": source.prompt}
        reasons: dict[str, str] = {}
        for m in plan.metrics:
            entry = entries[m.feature_key()]
            if isinstance(m, PerSampleMetric):
                value, reason = _score(m, entry, source)
                got.values[m.name].append(value)
                got.reasons[m.name].append(reason)
                row[m.name] = _json_value(value)
            else:
                got.entries[m.name].append(entry)
                reason = entry if isinstance(entry, str) else None
            if reason is not None:
                reasons[m.name] = reason
                got.null_reasons[m.name][reason] += 1
        if source.categories:
            row["categories"] = source.categories
        if reasons:
            row["reasons"] = reasons
        got.rows.append(row)
    return got


def _estimates(
    plan: Plan, got: _Collected, reference: dict[str, list[Features | str]], positions: Sequence[int]
) -> dict[str, Any]:
    """Every metric on the clips at ``positions`` (all of them, or one category)."""
    out: dict[str, Any] = {}
    for m in plan.metrics:
        if isinstance(m, PerSampleMetric):
            out[m.name] = _per_sample_estimate(got.values[m.name], got.reasons[m.name], positions, plan.cfg)
        else:
            ref = reference.get(m.feature_key(), [])
            out[m.name] = _distribution_estimate(m, got.entries[m.name], ref, positions, plan.cfg)
    return out


def _aggregate(plan: Plan, got: _Collected, reference: dict[str, list[Features | str]]) -> dict[str, Any]:
    results: dict[str, Any] = {"metrics": _estimates(plan, got, reference, range(len(got.evaluated)))}
    groups = _category_groups(got.evaluated)
    if groups:  # per category: the metric recomputed on that subset (JavisBench)
        results["by_category"] = {
            column: {label: _estimates(plan, got, reference, positions) for label, positions in cats.items()}
            for column, cats in groups.items()
        }
    results["skipped"] = got.skipped
    results["null_reasons"] = {k: dict(v) for k, v in got.null_reasons.items()}
    results["metric_specs"] = {
        m.name: {
            "modality": m.spec.modality,
            "kind": m.spec.kind,
            "higher_is_better": m.spec.higher_is_better,
            "backend": m.backend_name,
        }
        for m in plan.metrics
    }
    results.update(
        layout=plan.inputs.layout,
        input=str(plan.inputs.root),
        prompt_file=str(plan.inputs.prompt_file) if plan.inputs.prompt_file else None,
        reference=plan.cfg.reference or None,
        n_clips=len(plan.inputs.sources) + len(plan.inputs.skipped),
        n_evaluated=len(got.evaluated),
        n_skipped=len(got.skipped),
    )
    if plan.ctx.cache is not None:
        cache = plan.ctx.cache
        results["cache"] = {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses}
    return results


def evaluate(plan: Plan) -> dict[str, Any]:
    """Run a validated plan; writes ``out/results.json`` and ``out/per_sample.jsonl``, logs MLflow."""
    cfg = plan.cfg
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _tracking(cfg, cfg.run_name or f"evaluate {Path(cfg.input).name}") as run:
        if run is not None:
            from omninft_bench.tracking import log_params

            log_params({**to_dict(cfg), "layout": plan.inputs.layout, "n_clips": len(plan.inputs.sources)})
        reference = _reference_entries(plan)
        got = _collect(plan)
        results = _aggregate(plan, got, reference)
        results["mlflow_run_id"] = run.info.run_id if run is not None else None

        results_file = out_dir / "results.json"
        per_sample_file = out_dir / "per_sample.jsonl"
        results_file.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        with open(per_sample_file, "w", encoding="utf-8") as f:
            for row in got.rows:
                f.write(json.dumps(row, allow_nan=False) + "\n")
        if run is not None:
            _log_run(results, results_file, per_sample_file)
    return results


def _tracking(cfg: EvaluateConfig, run_name: str) -> Any:
    if not cfg.track:
        return nullcontext(None)
    from omninft_bench.tracking import mlflow_run

    return mlflow_run(cfg.tracking_uri, cfg.experiment, run_name=run_name, tags={"command": "evaluate"})


def _log_run(results: dict[str, Any], results_file: Path, per_sample_file: Path) -> None:
    from omninft_bench.tracking import log_artifact, log_metrics

    flat: dict[str, float | None] = {}
    for name, est in results["metrics"].items():
        flat[name] = est["value"]
        flat[f"{name}/ci_low"] = est["ci_low"]
        flat[f"{name}/ci_high"] = est["ci_high"]
        flat[f"{name}/n"] = est["n"]
    flat["clips/evaluated"] = results["n_evaluated"]
    flat["clips/skipped"] = results["n_skipped"]
    log_metrics(flat)
    log_artifact(results_file)
    log_artifact(per_sample_file)


def _summary(results: dict[str, Any]) -> str:
    lines = []
    width = max((len(n) for n in results["metrics"]), default=0)
    for name, est in results["metrics"].items():
        if est["value"] is None:
            lines.append(f"{name:<{width}}  null  ({est.get('reason', 'no value')})")
        else:
            lines.append(
                f"{name:<{width}}  {est['value']:.4f}  [{est['ci_low']:.4f}, {est['ci_high']:.4f}]  n={est['n']}"
            )
    lines.append(f"{results['n_evaluated']} clip(s) evaluated, {results['n_skipped']} skipped ({results['layout']} layout)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(EvaluateConfig, argv, command="omninft_bench.evaluate")
    try:
        plan = plan_evaluation(cfg)
    except (ValueError, UnknownMetricError, EncoderError, MediaError) as exc:  # config problems
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        results = evaluate(plan)
    except EncoderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if results["n_evaluated"] == 0:
        first = results["skipped"][0] if results["skipped"] else None
        detail = f" (first: {first['path']}: {first['reason']})" if first else ""
        print(
            f"error: no clip could be evaluated: {results['n_skipped']} skipped{detail}; see {Path(cfg.out) / 'results.json'}",
            file=sys.stderr,
        )
        return 1
    print(_summary(results))
    print(f"results: {Path(cfg.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
