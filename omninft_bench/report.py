"""Ablation report: MLflow runs -> structured results (report.json) -> report.md and report.html.

Usage::

    python -m omninft_bench.report experiment=NAME [out=reports/NAME] [validity=PATH]

Reads the runs that ``run`` logged under the schema of ``docs/CONTRACTS.md`` (one parent run, a
``base`` child, one child per variant x seed) and writes, into ``out``:

* ``report.json``: every number the report shows (store first, render second);
* ``report.md``: the tables, with the figures (``rewards.png``, ``losses.png``) and the sample
  clips (``samples/``) as files beside it;
* ``report.html``: the same, self-contained: figures as base64 PNG, sample clips as base64
  ``data:`` URIs in ``<video controls>``.

Both documents are Jinja2 templates shipped in ``omninft_bench/templates`` with StrictUndefined
(a field the data lacks is an error, never a blank).  Everything that comes from a run (prompts,
variant names, config values) is untrusted text: the HTML is autoescaped, and the Markdown
escapes HTML *and* Markdown punctuation, so a prompt such as ``<script>`` stays text in a
Markdown renderer too.

Statistics.  A variant's metric is the mean over seeds with a Student-t 95% interval over seeds;
with a single seed the interval is the run's own bootstrap interval over prompts
(``eval/<metric>/ci_low``/``ci_high``) and the table says so.  Factorial effects come from
:mod:`omninft_bench.factorial`.  The change from the base model is run value minus base value,
with a Student-t 95% interval over every variant x seed run (and per variant, over seeds).

Metric validity comes from ``validity=PATH``, else the parent run's ``validity.json`` artifact,
else the validity study shipped with the SynthBind weights (:data:`SHIPPED_VALIDITY`).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from omninft_bench.config import DEFAULT_TRACKING_URI, CommonConfig, option, parse_cli
from omninft_bench.factorial import (
    FACTORS,
    TInterval,
    factorial_effects,
    missing_cells,
    t_interval,
    two_way_t_interval,
)

__all__ = [
    "ReportConfig",
    "ReportError",
    "ReportPaths",
    "build_report_data",
    "main",
    "make_environment",
    "render_report",
    "render_template",
]

CONFIDENCE = 0.95
ROLE_TAG = "omninft.role"
COMMAND_TAG = "omninft.command"
# Names of JavisBench's category columns (omninft_bench.data.layout.JAVISBENCH_CATEGORIES).
JAVISBENCH_ASPECTS = {
    "cat0_ind": "event scenario",
    "cat1_ind": "visual style",
    "cat2_ind": "sound type",
    "cat3_ind": "temporal composition",
    "cat4_ind": "spatial composition",
}
CURVE_KEYS = {
    "rewards": "reward/",
    "losses": ("loss/total", "loss/video", "loss/audio", "loss/kl"),
}
REWARD_PARAM = "params.rewards."  # the parent run's reward weights: params.rewards.<name> = weight
CONTROL_PARAM = "params.train.reward_control"  # "shuffle" marks a placebo ablation (trainers.omninft.placebo_rewards)
#: The metric-validity study shipped with the SynthBind weights (``python -m omninft_bench.validate``).
SHIPPED_VALIDITY = Path(__file__).resolve().parent / "encoders" / "synthbind" / "weights" / "validity.json"
SHIPPED_VALIDITY_SOURCE = (
    "the validity study shipped with the SynthBind weights (omninft_bench/encoders/synthbind/weights/validity.json)"
)


class ReportError(RuntimeError):
    """The tracking store does not hold what the report needs; the message says what is missing."""


@dataclass
class ReportConfig(CommonConfig):
    """``python -m omninft_bench.report``."""

    experiment: str = option("omninft-default", "MLflow experiment (one ablation) to report on")
    out: str = option("", "output directory (default: reports/<experiment>)")
    validity: str = option("", "validity.json from the metric-validity study (optional)")
    max_samples: int = option(4, "sample clips per side (base vs full OmniNFT) in the report")
    parent_run_id: str = option("", "parent run to report on (default: the latest parent run)")


@dataclass(frozen=True)
class ReportPaths:
    """What :func:`render_report` wrote."""

    markdown: Path
    html: Path
    data: Path
    figures: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Rendering


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}|#~!])")
_EMPTY = "–"


def _md_text(value: Any) -> Any:
    """``finalize`` hook of the Markdown environment: untrusted text -> inert Markdown.

    Markdown punctuation gets a backslash (a ``|`` would split a table cell, ``[..](..)`` would
    make a link), line breaks become spaces (they would end a table row), then HTML is escaped to
    entities so that a renderer shows ``<script>`` instead of passing it through.  Values already
    marked safe (:class:`~markupsafe.Markup`, made by the filters below) pass unchanged.
    """
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(value.splitlines()))
    return Markup(escape(text))


def _md_code(text: str, lang: str = "") -> Markup:
    """A fenced Markdown code block holding ``text`` verbatim.

    Inside a fence Markdown shows everything literally (HTML included), so no escaping is done;
    the fence is one backtick longer than any backtick run in the text, so the text cannot close it.
    """
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markup(f"{fence}{lang}\n{text}\n{fence}")


def _num(value: float | None, signed: bool = False, decimals: int | None = None) -> str:
    """A number for a table: 3 decimals (3 significant digits outside [1e-3, 1e4]), or exactly
    ``decimals`` decimals where a row shares one precision (:func:`_row_decimals`)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _EMPTY
    x = float(value)
    sign = "+" if signed else ""
    if decimals is not None and abs(x) < 1e4:
        return f"{x:{sign}.{decimals}f}"
    if x == 0:
        return "0.000"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:{sign}.3f}"
    return f"{x:{sign}.3g}"


def _row_decimals(values: Iterable[float | None]) -> int:
    """Decimals that show the largest magnitude among ``values`` to two significant digits, at
    least 3 and at most 8.  Every number of a row (a change, its intervals, its per-seed and
    per-variant values) is then printed to the same precision, so "-0.000544 to +0.002" cannot
    happen."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))]
    largest = max(finite, default=0.0)
    if largest == 0.0:
        return 3
    return max(3, min(8, 1 - math.floor(math.log10(largest))))


def _mark_sub_precision(effects: list[dict], decimals: int) -> None:
    """An effect whose mean prints as 0 at ``decimals`` gets the verb "changes" and ``below``,
    the bound it is under (half a unit of the last decimal), instead of "lowers ... by 0.000";
    every other effect gets ``below = None``."""
    for e in effects:
        e["below"] = None
        if e["sign"] and e["mean"] is not None and round(abs(e["mean"]), decimals) == 0:
            e["verb"], e["below"] = "changes", 0.5 * 10.0 ** -decimals


def _arrow(higher_is_better: bool | None) -> str:
    return {True: "↑", False: "↓"}.get(higher_is_better, "?")


def make_environment(kind: str) -> Environment:
    """The Jinja2 environment for ``kind`` = ``"html"`` or ``"md"`` (StrictUndefined, escaping)."""
    if kind not in ("html", "md"):
        raise ValueError(f"kind must be 'html' or 'md', got {kind!r}")
    env = Environment(
        loader=PackageLoader("omninft_bench", "templates"),
        undefined=StrictUndefined,
        autoescape=True,
        finalize=_md_text if kind == "md" else None,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = _num
    env.filters["arrow"] = _arrow
    env.filters["code"] = _md_code
    return env


def render_template(kind: str, report: Mapping[str, Any]) -> str:
    """Render ``report.<kind>.j2`` with the structured ``report``; a missing field raises."""
    return make_environment(kind).get_template(f"report.{kind}.j2").render(report=report)


# ---------------------------------------------------------------------------------------------
# Reading the tracking store


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """``mlflow.search_runs`` reads the global tracking URI: set it for the call, then restore it
    (and ``MLFLOW_TRACKING_URI``, which ``set_tracking_uri`` also writes) for the caller."""
    import mlflow

    env_key = "MLFLOW_TRACKING_URI"
    env_before = os.environ.get(env_key)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if env_before is None:
            os.environ.pop(env_key, None)
        else:
            os.environ[env_key] = env_before


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No tqdm bar per downloaded artifact (a report downloads dozens of small files)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _search_runs(experiment: str, tracking_uri: str) -> pd.DataFrame:
    import mlflow

    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"no MLflow experiment {experiment!r} in {tracking_uri}; experiments there: {names or 'none'}"
        )
    with _tracking(tracking_uri):
        runs = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="pandas")
    if runs.empty:
        raise ReportError(f"experiment {experiment!r} in {tracking_uri} has no runs")
    return runs


def _tag(row: pd.Series, name: str, default: str = "") -> str:
    value = row.get(f"tags.{name}")
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _bool_tag(row: pd.Series, name: str) -> bool | None:
    return {"true": True, "false": False}.get(_tag(row, name).strip().lower())


def _seed(row: pd.Series) -> int:
    text = _tag(row, "seed") or str(row.get("params.seed", "") or "")
    try:
        return int(float(text))
    except ValueError:
        raise ReportError(f"run {row['run_id']} has no integer 'seed' tag (got {text!r})") from None


def _select(runs: pd.DataFrame, parent_run_id: str | None) -> tuple[pd.Series | None, pd.DataFrame]:
    """The parent run and its children (base + variants), latest run per (variant, seed)."""
    role = runs.get(f"tags.{ROLE_TAG}", pd.Series("", index=runs.index)).fillna("")
    parents = runs[role == "parent"].sort_values("start_time", ascending=False)
    parent = None
    if parent_run_id:
        match = runs[runs["run_id"] == parent_run_id]
        if match.empty:
            raise ReportError(f"parent run {parent_run_id!r} is not in this experiment")
        parent = match.iloc[0]
    elif not parents.empty:
        parent = parents.iloc[0]
    children = runs[role.isin(["base", "variant"])]
    if parent is not None and "tags.mlflow.parentRunId" in runs:
        children = children[children["tags.mlflow.parentRunId"] == parent["run_id"]]
    if children.empty:
        where = f"under parent run {parent['run_id']}" if parent is not None else "in the experiment"
        raise ReportError(f"no base or variant runs ({ROLE_TAG}=base|variant) {where}")
    children = children.assign(
        _variant=[_tag(r, "variant") or _tag(r, ROLE_TAG) for _, r in children.iterrows()],
        _seed=[_seed(r) for _, r in children.iterrows()],
    )
    children = children.sort_values("start_time").drop_duplicates(["_variant", "_seed"], keep="last")
    return parent, children.reset_index(drop=True)


class _Artifacts:
    """One run's artifacts, addressed through its artifact URI (no tracking-store lookup per file)."""

    def __init__(self, row: pd.Series, tracking_uri: str, tmp: Path):
        self.root = str(row["artifact_uri"]).rstrip("/")
        self.tracking_uri = tracking_uri
        self.tmp = tmp / str(row["run_id"])

    def names(self, folder: str = "") -> set[str]:
        """File names (not paths) directly inside ``folder`` of the run's artifacts."""
        import mlflow.artifacts

        uri = f"{self.root}/{folder}" if folder else self.root
        try:
            infos = mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=self.tracking_uri)
        except OSError:  # a run that never logged an artifact has no folder at all
            return set()
        return {PurePosixPath(f.path).name for f in infos if not f.is_dir}

    def download(self, path: str) -> Path | None:
        folder = str(PurePosixPath(path).parent).strip(".")
        if PurePosixPath(path).name not in self.names(folder):
            return None
        import mlflow.artifacts

        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{self.root}/{path}", dst_path=str(self.tmp), tracking_uri=self.tracking_uri
        )
        return Path(local)

    def text(self, path: str) -> str | None:
        local = self.download(path)
        return None if local is None else local.read_text(encoding="utf-8")

    def json(self, path: str) -> Any | None:
        text = self.text(path)
        return None if text is None else json.loads(text)


# ---------------------------------------------------------------------------------------------
# Structured results


@cache
def _registry_direction(name: str) -> bool | None:
    """``higher_is_better`` from the metric registry, or None where it does not know the name."""
    try:
        import omninft_bench.metrics  # noqa: F401 - importing the package registers its metrics
        from omninft_bench.metrics.registry import get_spec
    except ImportError:
        return None
    try:
        return bool(get_spec(name).higher_is_better)
    except KeyError:
        return None


def _results_metric_entries(results: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{metric: info}`` from a results.json: its ``metric_specs`` block (direction, modality;
    what ``omninft_bench.evaluate`` writes) merged over its ``metrics`` block (the estimates)."""
    results = results or {}
    out: dict[str, dict[str, Any]] = {}
    for block_name in ("metrics", "metric_specs"):
        block = results.get(block_name, {})
        if isinstance(block, Mapping):
            for name, entry in block.items():
                if isinstance(entry, Mapping):
                    out.setdefault(str(name), {}).update(entry)
    return out


def _is_estimate(x: Any) -> bool:
    return (isinstance(x, int | float) and not isinstance(x, bool)) or (isinstance(x, Mapping) and "value" in x)


def _leaf_value(x: Any) -> float | None:
    if isinstance(x, Mapping):
        x = x.get("value")
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _flatten_categories(by_category: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """``{(aspect, category): {metric: value}}`` from results.json ``by_category``.

    ``omninft_bench.evaluate`` writes ``{column: {category: {metric: estimate}}}`` with the
    JavisBench category columns (``cat0_ind`` ...), named here by :data:`JAVISBENCH_ASPECTS`; a
    flat ``{category: {metric: estimate}}`` is accepted too.  An estimate is a number or a dict
    with ``value``; a null value (metric not computable on that subset) is left out.
    """
    out: dict[tuple[str, str], dict[str, float]] = {}
    for key, inner in (by_category or {}).items():
        if not isinstance(inner, Mapping) or not inner:
            continue
        if all(_is_estimate(v) for v in inner.values()):  # two levels: category -> metric
            groups = {("", str(key)): inner}
        else:
            aspect = JAVISBENCH_ASPECTS.get(str(key), str(key))
            groups = {(aspect, str(c)): m for c, m in inner.items() if isinstance(m, Mapping)}
        for group, metrics in groups.items():
            values = {str(m): _leaf_value(v) for m, v in metrics.items() if _is_estimate(v)}
            out[group] = {m: v for m, v in values.items() if v is not None}
    return out


def _variant_order(children: pd.DataFrame) -> list[str]:
    """Base first, then by number of switches on, then by the switches, then by name."""
    info = {}
    for _, r in children.iterrows():
        switches = tuple(_bool_tag(r, f) for f in FACTORS)
        base = _tag(r, ROLE_TAG) == "base"
        info[r["_variant"]] = (not base, sum(bool(s) for s in switches), [not s for s in switches], r["_variant"])
    return sorted(info, key=lambda v: info[v])


def _eval_metrics(children: pd.DataFrame) -> list[str]:
    names = []
    for col in children.columns:
        if col.startswith("metrics.eval/"):
            key = col[len("metrics.eval/") :]
            if not key.endswith(("/ci_low", "/ci_high")) and children[col].notna().any():
                names.append(key)
    return sorted(names)


def _value(row: pd.Series, column: str) -> float | None:
    v = row.get(column)
    return None if v is None or pd.isna(v) else float(v)


def _results_table(children: pd.DataFrame, order: list[str], metrics: list[dict]) -> list[dict]:
    rows = []
    for variant in order:
        runs = children[children["_variant"] == variant].sort_values("_seed")
        first = runs.iloc[0]
        cells = []
        for m in metrics:
            col = f"metrics.eval/{m['name']}"
            per_seed = {int(r["_seed"]): _value(r, col) for _, r in runs.iterrows()}
            finite = [v for v in per_seed.values() if v is not None]
            ci = t_interval(finite, CONFIDENCE)
            cell = {
                "metric": m["name"], "mean": ci.mean, "ci_low": ci.ci_low, "ci_high": ci.ci_high,
                "half_width": ci.half_width, "n": ci.n, "ci_kind": "t" if ci.n >= 2 else "none",
                "per_seed": {str(s): v for s, v in per_seed.items()}, "best": False,
            }
            if ci.n == 1:
                row = next(r for _, r in runs.iterrows() if _value(r, col) is not None)
                lo, hi = _value(row, f"{col}/ci_low"), _value(row, f"{col}/ci_high")
                if lo is not None and hi is not None:
                    cell.update(ci_low=lo, ci_high=hi, half_width=None, ci_kind="bootstrap")
            cells.append(cell)
        rows.append({
            "variant": variant,
            "role": _tag(first, ROLE_TAG),
            "switches": {f: _bool_tag(first, f) for f in FACTORS},
            "seeds": [int(s) for s in runs["_seed"]],
            "cells": cells,
        })
    for j, m in enumerate(metrics):
        _mark_best([r["cells"][j] for r in rows], m["higher_is_better"])
    return rows


def _mark_best(cells: list[dict], higher_is_better: bool | None) -> None:
    values = [c["mean"] for c in cells if c["mean"] is not None]
    if higher_is_better is None or not values:
        return
    best = max(values) if higher_is_better else min(values)
    for c in cells:
        c["best"] = c["mean"] is not None and math.isclose(c["mean"], best, rel_tol=1e-12, abs_tol=1e-15)


def _effects(children: pd.DataFrame, metrics: list[dict]) -> dict:
    variants = children[children[f"tags.{ROLE_TAG}"] == "variant"]
    by_metric = []
    seeds_used: set[int] = set()
    df = 0
    reason = ""
    for m in metrics:
        col = f"metrics.eval/{m['name']}"
        by_seed: dict[int, dict] = {}
        for _, r in variants.iterrows():
            if _tag(r, "advantage", "gdpo") != "gdpo":  # nft: every switch off, but not the gdpo cell
                continue
            cell = tuple(_bool_tag(r, f) for f in FACTORS)
            value = _value(r, col)
            if None not in cell and value is not None:
                by_seed.setdefault(int(r["_seed"]), {})[cell] = value
        complete = {s: v for s, v in by_seed.items() if not missing_cells(v)}
        if not complete:
            gaps = sorted({c for v in by_seed.values() for c in missing_cells(v)}) if by_seed else []
            reason = (
                "the variant runs do not form a full 2^3 factorial of "
                f"{', '.join(FACTORS)}" + (f" (missing cells: {gaps})" if gaps else "")
            )
            continue
        seeds_used |= set(complete)
        effects = []
        for e in factorial_effects(complete, FACTORS, max_order=2, confidence=CONFIDENCE):
            df = max(df, e.df)
            better = None
            if e.sign and m["higher_is_better"] is not None:
                better = (e.sign > 0) == m["higher_is_better"]
            effects.append({
                "name": e.name, "term": list(e.term), "order": e.order,
                "mean": e.estimate.mean, "ci_low": e.estimate.ci_low, "ci_high": e.estimate.ci_high,
                "half_width": e.estimate.half_width, "n": e.estimate.n, "df": e.df,
                "per_seed": {str(k): v for k, v in e.per_seed.items()},
                "sign": e.sign, "excludes_zero": e.excludes_zero, "better": better,
                "verb": {1: "raises", -1: "lowers", 0: "does not change"}[e.sign],
                "difference": None if e.estimate.mean is None else 2.0 * e.estimate.mean,
            })
        decimals = _row_decimals(
            [e[k] for e in effects for k in ("mean", "ci_low", "ci_high", "difference")]
            + [v for e in effects for v in e["per_seed"].values()]
        )
        _mark_sub_precision(effects, decimals)
        by_metric.append({**m, "effects": effects, "decimals": decimals})
    return {
        "available": bool(by_metric),
        "reason": "" if by_metric else (reason or "no variant runs carry the switch tags"),
        "factors": list(FACTORS),
        "seeds": sorted(seeds_used),
        "df": df,
        "by_metric": by_metric,
    }


def _categories(results: dict[str, list[dict]], order: list[str], metrics: list[dict]) -> dict:
    """Per-category means over seeds: one table per metric, rows = categories, columns = variants."""
    per_variant: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for variant in order:
        sums: dict[tuple[str, str], dict[str, list[float]]] = {}
        for res in results.get(variant, []):
            for key, values in _flatten_categories(res.get("by_category", {})).items():
                for metric, v in values.items():
                    sums.setdefault(key, {}).setdefault(metric, []).append(v)
        per_variant[variant] = {k: {m: sum(v) / len(v) for m, v in d.items()} for k, d in sums.items()}
    keys = list(dict.fromkeys(k for d in per_variant.values() for k in d))  # results.json order
    tables = []
    for m in metrics:
        rows = []
        for aspect, category in keys:
            values = [per_variant[v].get((aspect, category), {}).get(m["name"]) for v in order]
            if all(v is None for v in values):
                continue
            cells = [{"mean": v, "best": False} for v in values]
            _mark_best(cells, m["higher_is_better"])
            rows.append({"aspect": aspect, "category": category, "cells": cells})
        if rows:
            tables.append({**m, "rows": rows})
    return {"available": bool(tables), "variants": order, "by_metric": tables}


def _reward_weights(parent: pd.Series | None) -> dict[str, float]:
    """``{reward name: weight}`` from the parent run's ``rewards.<name>`` params; empty without them."""
    if parent is None:
        return {}
    weights = {}
    for key, value in parent.items():
        if not str(key).startswith(REWARD_PARAM) or value is None or pd.isna(value):
            continue
        try:
            weights[str(key)[len(REWARD_PARAM) :]] = float(value)
        except (TypeError, ValueError):
            continue
    return weights


def _placebo(parent: pd.Series | None) -> bool:
    """Whether the parent run trained on shuffled rewards (``train.reward_control=shuffle``)."""
    if parent is None:
        return False
    value = parent.get(CONTROL_PARAM)
    return isinstance(value, str) and value.strip().lower() == "shuffle"


def _parent_params(parent: pd.Series) -> dict[str, str]:
    """The parent run's logged params (its flattened config), without the ``params.`` prefix."""
    return {str(k)[len("params."):]: str(v) for k, v in parent.items()
            if str(k).startswith("params.") and v is not None and not pd.isna(v)}


def _recipe(parent: pd.Series | None) -> list[dict]:
    """The run's recipe next to the released OmniNFT/DiffusionNFT ones (trainers.recipe), from the
    parent run's params; empty without a parent run."""
    from trainers.recipe import recipe_comparison

    if parent is None:
        return []
    return [dataclasses.asdict(row) for row in recipe_comparison(_parent_params(parent))]


# Verdicts of a change from the base, in the order the summary lists them.
CHANGE_VERDICTS = ("better", "worse", "higher", "lower", "no clear change", "one run", "not compared")


def _data_stream(row: pd.Series) -> str:
    """The run's replicate key: its ``data_seed`` tag; runs logged before that tag existed
    shared their seed's prompts and noise, so their seed is the key."""
    return _tag(row, "data_seed") or f"seed {int(row['_seed'])}"


def _change_verdict(ci: TInterval, higher_is_better: bool | None) -> str:
    """``better``/``worse`` when the interval excludes zero (``higher``/``lower`` when the
    metric's direction is unknown), ``no clear change`` when it holds zero, ``one run`` without one."""
    if ci.n == 0:
        return "not compared"
    if ci.ci_low is None or ci.ci_high is None:
        return "one run"
    if not (ci.ci_low > 0 or ci.ci_high < 0):
        return "no clear change"
    up = ci.ci_low > 0
    if higher_is_better is None:
        return "higher" if up else "lower"
    return "better" if up == higher_is_better else "worse"


PerSample = Mapping[str, Mapping[int, Mapping[str, Any]]]  # run id -> prompt index -> metric -> value


def _per_sample_rows(text: str | None) -> dict[int, dict[str, Any]]:
    """``eval/per_sample.jsonl`` as ``{prompt index: record}`` (empty when the run has none)."""
    rows: dict[int, dict[str, Any]] = {}
    for line in (text or "").splitlines():
        if line.strip():
            record = json.loads(line)
            rows[int(record["index"])] = record
    return rows


def _per_prompt(per_sample: PerSample, run_id: str, metric: str) -> dict[int, float] | None:
    """``{prompt index: value}`` of ``metric`` in one run's per-sample rows; None when it has none."""
    rows = per_sample.get(run_id) or {}
    out = {i: float(r[metric]) for i, r in rows.items() if isinstance(r.get(metric), int | float)}
    return out or None


def _base_spread(base_ids: Sequence[str], metric: str, per_sample: PerSample) -> float | None:
    """Standard deviation (n - 1) over the evaluation prompts of the base's per-clip values of
    ``metric`` (several base runs averaged per prompt); None without two prompts or with no spread."""
    base = [_per_prompt(per_sample, b, metric) for b in base_ids]
    if not base or any(v is None for v in base):
        return None
    idx = sorted(set.intersection(*(set(v) for v in base)))
    if len(idx) < 2:
        return None
    sd = float(np.std([np.mean([v[i] for v in base]) for i in idx], ddof=1))
    return sd if sd > 0 else None


def _prompt_matrix(base_ids: Sequence[str], replicates: Mapping[str, Sequence[str]], metric: str,
                   per_sample: PerSample) -> np.ndarray | None:
    """``[replicates, prompts]`` matrix of run value minus base value per evaluation prompt (the
    runs of a replicate averaged), over the prompts every run and the base scored; None when a
    run has no per-sample values of ``metric``."""
    base = [_per_prompt(per_sample, b, metric) for b in base_ids]
    runs = {k: [_per_prompt(per_sample, r, metric) for r in ids] for k, ids in replicates.items()}
    if any(v is None for v in base) or any(v is None for ids in runs.values() for v in ids):
        return None
    common = set.intersection(*(set(v) for v in base), *(set(v) for ids in runs.values() for v in ids))
    if not common:
        return None
    idx = sorted(common)
    base_row = np.mean([[v[i] for i in idx] for v in base], axis=0)
    return np.array([np.mean([[v[i] for i in idx] for v in ids], axis=0) - base_row for ids in runs.values()])


def _change_from_base(children: pd.DataFrame, metrics: list[dict], rewards: Mapping[str, float],
                      per_sample: PerSample | None = None) -> dict:
    """Run value minus base value, per metric: over all variant x seed runs, and per variant.

    ``rewards`` is ``{name: weight}`` (:func:`_reward_weights`); a metric with a nonzero weight
    is *rewarded*: rewarded metrics come first, each group in ``metrics`` order.  The base value
    is the base run's (the mean, should there be several base runs); it is a constant in every
    difference, so the t interval is over the RL runs only (training seeds and variants).

    The replicate is the run's data stream (its ``data_seed`` tag, :func:`trainers.ablation.data_seed`):
    runs that drew the same prompts and noise are averaged into one replicate before the t
    interval, so runs that share their seed's draws (``streams=per_seed``, and every run logged
    before the tag existed) count once per seed, not once per run.  ``per_seed`` (mean change
    over the variants of one seed) and ``seeds_agree`` (False when the per-seed means do not
    all have the pooled mean's sign) show how the seeds compare.

    With ``per_sample`` (run id -> the run's ``eval/per_sample.jsonl``), per-sample metrics also
    get ``ci2_low``/``ci2_high``/``verdict2``: a t interval that treats the replicates and the
    evaluation prompts both as random (:func:`~omninft_bench.factorial.two_way_t_interval`), so
    it also counts the luck of the prompts and sampling noise that every run shares.
    """
    role = children[f"tags.{ROLE_TAG}"]
    base, variants = children[role == "base"], children[role == "variant"].sort_values("_seed")
    weights = {str(n): float(w) for n, w in rewards.items() if math.isfinite(float(w)) and float(w) != 0.0}
    present = set(variants["_variant"])
    order = [v for v in _variant_order(children) if v in present]
    result = {
        "available": False, "reason": "", "rewards_known": bool(rewards), "variants": order,
        "n_runs": int(len(variants)), "n_base_runs": int(len(base)),
        "seeds": sorted({int(s) for s in variants["_seed"]}), "rows": [], "summary": [],
        "rewards_not_evaluated": sorted(set(weights) - {m["name"] for m in metrics}),
    }
    if base.empty or variants.empty:
        return {**result, "reason": "no base run" if base.empty else "no variant runs"}
    rows = []
    shared = False  # some runs share a data stream (counted as one replicate)
    ordered = [m for m in metrics if m["name"] in weights] + [m for m in metrics if m["name"] not in weights]
    for m in ordered:
        col = f"metrics.eval/{m['name']}"
        base_values = [v for v in (_value(r, col) for _, r in base.iterrows()) if v is not None]
        base_value = math.fsum(base_values) / len(base_values) if base_values else None
        diffs = []  # (variant, seed, data stream, run value - base value)
        if base_value is not None:
            for _, r in variants.iterrows():
                value = _value(r, col)
                if value is not None:
                    diffs.append((r["_variant"], int(r["_seed"]), _data_stream(r), value - base_value))
        per_variant = []
        for variant in order:
            ci = t_interval([d for v, *_, d in diffs if v == variant], CONFIDENCE)
            per_variant.append({"variant": variant, "mean": ci.mean, "half_width": ci.half_width, "n": ci.n})
        by_seed = {s: [d for _, seed, _, d in diffs if seed == s] for s in result["seeds"]}
        per_seed = {str(s): math.fsum(ds) / len(ds) for s, ds in by_seed.items() if ds}
        replicates: dict[str, list[float]] = {}
        for *_, stream, d in diffs:
            replicates.setdefault(stream, []).append(d)
        ci = t_interval([math.fsum(ds) / len(ds) for ds in replicates.values()], CONFIDENCE)
        shared = shared or any(len(ds) > 1 for ds in replicates.values())
        two_way = TInterval(None, None, None, 0)
        base_sd = _base_spread([str(b) for b in base["run_id"]], m["name"], per_sample) if per_sample else None
        if per_sample is not None and diffs:
            run_ids: dict[str, list[str]] = {}
            for _, r in variants.iterrows():
                if _value(r, col) is not None:
                    run_ids.setdefault(_data_stream(r), []).append(str(r["run_id"]))
            matrix = _prompt_matrix([str(b) for b in base["run_id"]], run_ids, m["name"], per_sample)
            if matrix is not None:
                two_way = two_way_t_interval(matrix, CONFIDENCE)
        agree = None if ci.mean is None or len(per_seed) < 2 else all(x * ci.mean > 0 for x in per_seed.values())
        # the row's precision follows its headline numbers (a variant's wide interval over two seeds
        # must not round the change itself to one significant digit)
        decimals = _row_decimals([ci.mean, ci.ci_low, ci.ci_high, two_way.ci_low, two_way.ci_high])
        rows.append({
            "name": m["name"], "higher_is_better": m["higher_is_better"],
            "rewarded": m["name"] in weights, "weight": weights.get(m["name"]), "base": base_value,
            "mean": ci.mean, "ci_low": ci.ci_low, "ci_high": ci.ci_high, "half_width": ci.half_width,
            "n": ci.n, "n_runs": len(diffs), "verdict": _change_verdict(ci, m["higher_is_better"]),
            "ci2_low": two_way.ci_low, "ci2_high": two_way.ci_high,
            "verdict2": _change_verdict(two_way, m["higher_is_better"]) if two_way.ci_low is not None else None,
            "per_seed": per_seed, "seeds_agree": agree, "per_variant": per_variant, "decimals": decimals,
            "base_sd": base_sd, "effect": None if base_sd is None or ci.mean is None else ci.mean / base_sd,
        })
    summary = []
    for verdict in CHANGE_VERDICTS:
        named = [r for r in rows if r["rewarded"] and r["verdict"] == verdict]
        if named:
            summary.append({"verdict": verdict, "metrics": [
                {k: r[k] for k in ("name", "mean", "ci_low", "ci_high", "n", "per_seed", "seeds_agree",
                                   "ci2_low", "ci2_high", "verdict2", "decimals")}
                for r in named
            ]})
    return {**result, "available": True, "rows": rows, "summary": summary, "shared_streams": shared,
            "two_way": any(r["verdict2"] is not None for r in rows),
            "effect_sizes": any(r["effect"] is not None for r in rows)}


def _validity(data: Mapping[str, Any] | None, source: str) -> dict:
    if not data:
        return {"available": False, "source": source, "perturbations": [], "rows": [], "n_pass": 0, "n_total": 0}
    perturbations = sorted({p for checks in data.values() for p in checks})
    rows, n_pass, n_total = [], 0, 0
    for metric in sorted(data):
        checks = []
        for p in perturbations:
            c = data[metric].get(p)
            if c is None:
                checks.append(None)
                continue
            passed = bool(c.get("pass"))
            n_pass, n_total = n_pass + passed, n_total + 1
            rho = c.get("spearman")
            checks.append({
                "perturbation": p, "spearman": None if rho is None else float(rho),
                "expected": str(c.get("expected", "")), "pass": passed,
            })
        rows.append({"metric": metric, "checks": checks, "all_pass": all(c is None or c["pass"] for c in checks)})
    return {
        "available": True, "source": source, "perturbations": perturbations,
        "rows": rows, "n_pass": n_pass, "n_total": n_total,
    }


def _environment_rows(env: Any) -> list[dict]:
    rows: list[dict] = []
    if not isinstance(env, Mapping):
        return rows
    for key, value in env.items():
        if isinstance(value, Mapping):
            rows += [{"name": str(k), "version": str(v)} for k, v in sorted(value.items())]
        else:
            rows.append({"name": str(key), "version": str(value)})
    return rows


def _prompts(text: str | None) -> dict[int, str]:
    """``{sample index: prompt}`` from samples/prompts.csv (columns ``index``? and ``prompt``/``text``)."""
    if not text:
        return {}
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    column = next((c for c in ("prompt", "text", "video_prompt") if c in fields), fields[0] if fields else None)
    out = {}
    for i, row in enumerate(reader):
        index = int(row["index"]) if row.get("index", "").strip().isdigit() else i
        out[index] = row.get(column, "") if column else ""
    return out


def _sample_files(artifacts: _Artifacts) -> dict[int, str]:
    files = {}
    for name in artifacts.names("samples"):
        m = re.fullmatch(r"sample_(\d+)\.mp4", name)
        if m:
            files[int(m.group(1))] = f"samples/{name}"
    return files


def _samples(children: pd.DataFrame, max_samples: int, out: Path, tracking_uri: str, tmp: Path) -> dict:
    base = children[children[f"tags.{ROLE_TAG}"] == "base"].sort_values("_seed")
    on = children[
        (children[f"tags.{ROLE_TAG}"] == "variant")
        & pd.Series([all(_bool_tag(r, f) for f in FACTORS) for _, r in children.iterrows()], index=children.index)
    ].sort_values("_seed")
    empty = {"available": False, "base_variant": "", "full_variant": "", "seed": None, "clips": []}
    if base.empty or on.empty:
        missing = "base run" if base.empty else "variant with routing, surgery and reweighting all on"
        return {**empty, "reason": f"no {missing}"}
    b, f = base.iloc[0], on.iloc[0]
    b_art, f_art = _Artifacts(b, tracking_uri, tmp), _Artifacts(f, tracking_uri, tmp)
    b_files, f_files = _sample_files(b_art), _sample_files(f_art)
    shared = sorted(set(b_files) & set(f_files))[: max(0, max_samples)]
    if not shared:
        return {**empty, "reason": "no samples/sample_NNNN.mp4 artifacts shared by the base and full runs"}
    prompts = _prompts(b_art.text("samples/prompts.csv"))
    prompts_full = _prompts(f_art.text("samples/prompts.csv"))
    sample_dir = out / "samples"
    sample_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for i in shared:
        sides = {}
        for side, run, art, files in (("base", b, b_art, b_files), ("full", f, f_art, f_files)):
            local = art.download(files[i])
            dest = sample_dir / f"{_safe(run['_variant'])}_seed{int(run['_seed'])}_{local.name}"
            shutil.copyfile(local, dest)
            sides[side] = {"variant": run["_variant"], "seed": int(run["_seed"]), "file": f"samples/{dest.name}"}
        prompt = prompts.get(i, prompts_full.get(i, ""))
        mismatch = i in prompts and i in prompts_full and prompts[i] != prompts_full[i]
        items.append({"index": i, "prompt": prompt, "prompt_mismatch": mismatch, **sides})
    return {
        "available": True, "reason": "", "base_variant": b["_variant"], "full_variant": f["_variant"],
        "seed": int(f["_seed"]), "clips": items,
    }


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def _curves(client, children: pd.DataFrame, order: list[str], out: Path) -> list[dict]:
    """Reward and loss curves (mean over seeds per variant), saved as PNG files in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    variants = children[children[f"tags.{ROLE_TAG}"] == "variant"]
    present = {c[len("metrics.") :] for c in variants.columns if c.startswith("metrics.") and variants[c].notna().any()}
    figures = []
    for name, spec in CURVE_KEYS.items():
        keys = sorted(k for k in present if k.startswith(spec)) if isinstance(spec, str) else [k for k in spec if k in present]
        if not keys:
            continue
        ncols = min(2, len(keys))
        nrows = math.ceil(len(keys) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.2 * nrows + 0.4), squeeze=False)
        for ax in axes.flat[len(keys) :]:
            ax.set_visible(False)
        for ax, key in zip(axes.flat, keys, strict=False):
            for variant in order:
                runs = variants[variants["_variant"] == variant]
                history = [
                    (m.step, m.value) for run_id in runs["run_id"] for m in client.get_metric_history(run_id, key)
                ]
                if history:
                    curve = pd.DataFrame(history, columns=["step", "value"]).groupby("step")["value"].mean()
                    ax.plot(curve.index, curve.values, label=variant, linewidth=1.4)
            ax.set_title(key)
            ax.set_xlabel("optimizer step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{name} (mean over seeds)")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figures.append({"name": name, "title": f"{name.capitalize()} per step", "metric_keys": keys, "file": path.name})
    return figures


def _metric_specs(names: list[str], results: dict[str, list[dict]]) -> list[dict]:
    """Name, direction and modality per eval metric: the registry first, results.json second."""
    entries = [_results_metric_entries(res) for rs in results.values() for res in rs]
    metrics = []
    for name in names:
        entry = next((e[name] for e in entries if name in e), {})
        direction, source = _registry_direction(name), "registry"
        if direction is None and isinstance(entry.get("higher_is_better"), bool):
            direction, source = entry["higher_is_better"], "results.json"
        metrics.append({
            "name": name,
            "higher_is_better": direction,
            "direction_source": source if direction is not None else "unknown",
            "modality": str(entry.get("modality", "")),
        })
    return metrics


def _load_validity(path: str | Path | None, parent: _Artifacts | None) -> tuple[Any, str]:
    """validity.json from ``path`` (an error if it is missing), else from the parent run's
    artifacts, else the study shipped with the SynthBind weights (:data:`SHIPPED_VALIDITY`)."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise ReportError(f"validity file {path} does not exist")
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    data = parent.json("validity.json") if parent is not None else None
    if data:
        return data, "the parent run's validity.json artifact"
    if SHIPPED_VALIDITY.is_file():
        return json.loads(SHIPPED_VALIDITY.read_text(encoding="utf-8")), SHIPPED_VALIDITY_SOURCE
    return None, ""


def _provenance(parent: pd.Series | None, artifacts: _Artifacts | None, children: pd.DataFrame) -> dict:
    commits = sorted({_tag(r, "git_commit") for _, r in children.iterrows()} - {""})
    if parent is None or artifacts is None:
        return {"parent_run_id": "", "command": "", "git_commit": "", "child_commits": commits,
                "config_json": "", "environment": []}
    config_json = artifacts.text("config.json")
    if config_json is None:  # fall back to the flattened params the parent logged
        config_json = json.dumps(_parent_params(parent), indent=2, sort_keys=True)
    return {
        "parent_run_id": str(parent["run_id"]),
        "command": _tag(parent, COMMAND_TAG),
        "git_commit": _tag(parent, "git_commit"),
        "child_commits": commits,
        "config_json": config_json,
        "environment": _environment_rows(artifacts.json("environment.json")),
    }


def build_report_data(
    experiment: str,
    out: Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    *,
    parent_run_id: str | None = None,
    validity: str | Path | None = None,
    max_samples: int = 4,
) -> dict[str, Any]:
    """Read the experiment from MLflow into the report's structured results.

    Side files (figures, sample clips) are written into ``out``; the returned dict is what
    ``report.json`` holds and what the templates render (HTML-only blobs are added later).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = _search_runs(experiment, tracking_uri)
    parent, children = _select(runs, parent_run_id or None)
    order = _variant_order(children)
    names = _eval_metrics(children)
    if not names:
        raise ReportError(f"no eval/<metric> values in the runs of experiment {experiment!r}")
    with _quiet_downloads(), tempfile.TemporaryDirectory(prefix="omninft-report-") as tmp_dir:
        tmp = Path(tmp_dir)
        results: dict[str, list[dict]] = {}
        per_sample: dict[str, dict[int, dict[str, Any]]] = {}
        for _, r in children.iterrows():
            run_artifacts = _Artifacts(r, tracking_uri, tmp)
            res = run_artifacts.json("eval/results.json")
            if res is not None:
                results.setdefault(r["_variant"], []).append(res)
            per_sample[str(r["run_id"])] = _per_sample_rows(run_artifacts.text("eval/per_sample.jsonl"))
        parent_artifacts = None if parent is None else _Artifacts(parent, tracking_uri, tmp)
        validity_data, validity_source = _load_validity(validity, parent_artifacts)
        provenance = _provenance(parent, parent_artifacts, children)
        samples = _samples(children, max_samples, out, tracking_uri, tmp)
    metrics = _metric_specs(names, results)
    table = _results_table(children, order, metrics)
    return {
        "title": f"OmniNFT ablation report: {experiment}",
        "experiment": experiment,
        "tracking_uri": tracking_uri,
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "confidence": CONFIDENCE,
        "factors": list(FACTORS),
        "metrics": metrics,
        "table": {
            "rows": table,
            "any_bootstrap": any(c["ci_kind"] == "bootstrap" for r in table for c in r["cells"]),
        },
        "placebo": _placebo(parent),
        "recipe": _recipe(parent),
        "change": _change_from_base(children, metrics, _reward_weights(parent), per_sample),
        "effects": _effects(children, metrics),
        "categories": _categories(results, order, metrics),
        "validity": _validity(validity_data, validity_source),
        "samples": samples,
        "curves": _curves(_client(tracking_uri), children, order, out),
        "provenance": provenance,
    }


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_view(report: dict[str, Any], out: Path) -> dict[str, Any]:
    """The report plus the base64 blobs that only the self-contained HTML carries."""
    view = json.loads(json.dumps(report))  # deep copy; report.json stays blob-free
    for fig in view["curves"]:
        fig["data_uri"] = _data_uri(out / fig["file"], "image/png")
    for item in view["samples"]["clips"]:
        for side in ("base", "full"):
            item[side]["data_uri"] = _data_uri(out / item[side]["file"], "video/mp4")
    return view


def render_report(
    experiment: str,
    out: str | Path | None = None,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    *,
    parent_run_id: str | None = None,
    validity: str | Path | None = None,
    max_samples: int = 4,
) -> ReportPaths:
    """Write report.json, report.md (+ figures and sample files) and report.html into ``out``.

    ``out`` defaults to ``reports/<experiment>``; ``parent_run_id`` defaults to the latest parent
    run of the experiment.  Raises :class:`ReportError` when the store lacks what is needed.
    """
    out = Path(out) if out else Path("reports") / _safe(experiment)
    report = build_report_data(
        experiment, out, tracking_uri, parent_run_id=parent_run_id, validity=validity, max_samples=max_samples
    )
    data_path = out / "report.json"
    data_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(render_template("md", report), encoding="utf-8")
    html_path.write_text(render_template("html", _html_view(report, out)), encoding="utf-8")
    return ReportPaths(
        markdown=md_path,
        html=html_path,
        data=data_path,
        figures=[out / f["file"] for f in report["curves"]],
        samples=[out / item[s]["file"] for item in report["samples"]["clips"] for s in ("base", "full")],
    )


def main(argv: list[str] | None = None) -> ReportPaths:
    cfg = parse_cli(ReportConfig, argv, command="omninft_bench.report")
    try:
        paths = render_report(
            cfg.experiment,
            cfg.out or None,
            cfg.tracking_uri,
            parent_run_id=cfg.parent_run_id or None,
            validity=cfg.validity or None,
            max_samples=cfg.max_samples,
        )
    except ReportError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {paths.markdown}\nwrote {paths.html}")
    return paths


if __name__ == "__main__":
    main()
