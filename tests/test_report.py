"""The ablation report end to end on a real MLflow sqlite store with planted effects.

``build_experiment`` writes what ``run`` logs (docs/CONTRACTS.md, "MLflow schema"): a parent
run, a base child and the 8 variants x 2 seeds, with synthetic eval metrics whose factorial
effects are known, per-step curves, results.json with by_category, and tiny real mp4 samples.
``scripts/check_report_browser.py`` reuses it.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from jinja2 import UndefinedError

import omninft_bench.report as report_module
from omninft_bench.factorial import FACTORS, two_way_t_interval
from omninft_bench.media import AVClip, read_clip, write_clip
from omninft_bench.report import (
    SHIPPED_VALIDITY_SOURCE,
    ReportError,
    _change_from_base,
    _load_validity,
    _mark_sub_precision,
    _num,
    _reward_weights,
    _row_decimals,
    _validity,
    main,
    make_environment,
    render_report,
    render_template,
)

EXPERIMENT = "ablation-test"
SEEDS = (0, 1)
XSS_PROMPT = '<script>alert("pwned")</script> a dog | barks *loudly* [x](y)'
T_975_1 = 12.706204736174698  # Student t quantile, 0.975, 1 degree of freedom
T_975_3 = 3.182446305284263  # 0.975, 3 degrees of freedom
T_975_7 = 2.3646242510102993  # 0.975, 7 degrees of freedom: 2 seeds x 8 cells, blocked
VALIDITY = {
    "synth_offset": {"audio_shift": {"spearman": 0.93, "expected": "+", "pass": True},
                     "blur": {"spearman": 0.05, "expected": "0", "pass": True}},
    "synth_quality": {"audio_shift": {"spearman": -0.1, "expected": "0", "pass": True},
                      "blur": {"spearman": 0.4, "expected": "-", "pass": False}},
}
PROMPT_OFFSETS = (-0.3, 0.1, 0.1, 0.1)  # per-prompt deviations of every RL run (mean 0); the base has none
CATEGORIES = {"cat2_ind": ("ambient", "speech"), "cat3_ind": ("single", "sequential")}  # JavisBench columns


def variant_name(cell: tuple[bool, ...]) -> str:
    if all(cell):
        return "omninft"
    on = [f for f, v in zip(FACTORS, cell, strict=True) if v]
    return "+".join(on) if on else "gdpo"


def planted(cell: tuple[bool, ...], seed: int) -> dict[str, float]:
    """Eval metrics with known effects (codes c = +1 on / -1 off).

    synth_quality (higher is better): routing +0.30 (+-0.02 by seed: 0.28, 0.32), surgery +0.10,
    reweighting -0.05, routing x surgery +0.04, other interactions 0.
    synth_offset (lower is better): routing -0.10, reweighting +0.05, surgery +0.02 / -0.02 by
    seed (mean 0).  Seed offsets (0.1, 0.01) cancel within a seed.
    """
    r, s, w = (1.0 if v else -1.0 for v in cell)
    quality = 1.0 + 0.15 * r + 0.05 * s - 0.025 * w + 0.02 * r * s + 0.1 * seed
    quality += (-0.02 if seed == 0 else 0.02) * (r > 0)
    offset = 0.5 - 0.05 * r + 0.025 * w + (0.01 if seed == 0 else -0.01) * s + 0.01 * seed
    return {"synth_quality": quality, "synth_offset": offset}


def _clip(seed: int, prompt: str) -> AVClip:
    rng = np.random.default_rng(seed)
    video = np.zeros((8, 32, 32, 3), np.uint8)
    for t in range(8):
        video[t, :, 4 * t : 4 * t + 4] = rng.integers(64, 255, size=3, dtype=np.uint8)
    sr = 16000
    tone = 0.3 * np.sin(2 * np.pi * (330 + 110 * seed) * np.arange(sr) / sr).astype(np.float32)
    return AVClip(video=video, fps=8.0, audio=tone[None], sample_rate=sr, prompt=prompt)


def _results_json(values: dict[str, float], offset: float) -> dict:
    """Shaped like omninft_bench.evaluate's results.json (estimates, by_category, metric_specs)."""
    def estimate(v: float) -> dict:
        return {"value": v, "ci_low": v - 0.05, "ci_high": v + 0.05, "n": 4}

    return {
        "metrics": {m: estimate(v) for m, v in values.items()},
        "by_category": {
            column: {cat: {m: estimate(v + offset + 0.01 * j) for m, v in values.items()} for j, cat in enumerate(cats)}
            for column, cats in CATEGORIES.items()
        },
        "metric_specs": {
            "synth_quality": {"modality": "video", "kind": "per_sample", "higher_is_better": True},
            "synth_offset": {"modality": "sync", "kind": "per_sample", "higher_is_better": False},
        },
    }


def build_experiment(root: Path, n_samples: int = 2, placebo_with_nft: bool = False) -> tuple[str, dict]:
    """Write the synthetic ablation into ``root/mlflow.db``; returns (tracking_uri, expected).

    ``placebo_with_nft`` marks the parent as a placebo ablation and adds an ``nft`` run per seed
    (every switch off, like ``gdpo``) whose values are far from every factorial cell's.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    media = root / "media"
    media.mkdir(exist_ok=True)
    prompts = [XSS_PROMPT] + [f"prompt {i}" for i in range(1, n_samples)]
    prompts_csv = root / "prompts.csv"
    prompts_csv.write_text(
        "index,prompt\n" + "".join(f'{i},"{p.replace(chr(34), chr(34) * 2)}"\n' for i, p in enumerate(prompts)),
        encoding="utf-8",
    )

    parent = client.create_run(exp_id, run_name="ablation", tags={
        "omninft.role": "parent", "git_commit": "0123abc", "omninft.command": "python -m omninft_bench.run experiment=ablation-test seeds=[0,1]",
    })
    pid = parent.info.run_id
    client.log_param(pid, "trainer.lr", "3e-05")
    client.log_param(pid, "rewards.synth_offset", "1.0")  # config.flatten of rewards={synth_offset: 1.0}
    client.log_param(pid, "train.lr", "0.0001")  # departs from the released 3e-5: the recipe table says so
    if placebo_with_nft:
        client.log_param(pid, "train.reward_control", "shuffle")
    client.log_dict(pid, {"trainer": {"lr": 3e-5, "note": "<b>not bold</b>"}, "seeds": [0, 1]}, "config.json")
    client.log_dict(pid, {"python": "3.11.7", "packages": {"mlflow": "3.17.2", "torch": "2.14.1"}}, "environment.json")
    client.log_dict(pid, VALIDITY, "validity.json")

    def child(name: str, role: str, seed: int, values: dict[str, float], cell=None, samples=False,
              advantage: str = "gdpo") -> None:
        tags = {"mlflow.parentRunId": pid, "omninft.role": role, "variant": name, "seed": str(seed), "git_commit": "0123abc"}
        if cell is not None:
            tags.update({f: str(v).lower() for f, v in zip(FACTORS, cell, strict=True)}, advantage=advantage)
            tags["data_seed"] = f"{name}/{seed}"  # streams=per_run: every run draws its own data
        run_id = client.create_run(exp_id, run_name=f"{name}-s{seed}", tags=tags).info.run_id
        metrics = []
        for m, v in values.items():
            metrics += [Metric(f"eval/{m}", v, 0, 0), Metric(f"eval/{m}/ci_low", v - 0.05, 0, 0),
                        Metric(f"eval/{m}/ci_high", v + 0.05, 0, 0)]
        if role == "variant":
            for step in range(5):
                metrics += [Metric(f"reward/{m}", v * (0.6 + 0.1 * step), 0, step) for m, v in values.items()]
                metrics += [Metric(k, 1.0 / (1 + step) + 0.1 * seed, 0, step)
                            for k in ("loss/total", "loss/video", "loss/audio", "loss/kl")]
        client.log_batch(run_id, metrics=metrics)
        client.log_dict(run_id, _results_json(values, 0.1 * sum(cell or ())), "eval/results.json")
        offsets = PROMPT_OFFSETS if role == "variant" else (0.0,) * len(PROMPT_OFFSETS)
        client.log_text(run_id, "".join(json.dumps({"index": i, **{m: v + o for m, v in values.items()}}) + "\n"
                                        for i, o in enumerate(offsets)), "eval/per_sample.jsonl")
        if samples:
            for i, p in enumerate(prompts):
                path = write_clip(media / f"{name}_{seed}" / f"sample_{i:04d}.mp4", _clip(i + 3 * (role == "base"), p))
                client.log_artifact(run_id, str(path), "samples")
                client.log_artifact(run_id, str(path.with_suffix(".wav")), "samples")
            client.log_artifact(run_id, str(prompts_csv), "samples")
        client.set_terminated(run_id)

    child("base", "base", 0, {"synth_quality": 0.7, "synth_offset": 0.8}, samples=True)
    for cell in itertools.product((False, True), repeat=3):
        for seed in SEEDS:
            child(variant_name(cell), "variant", seed, planted(cell, seed), cell=cell, samples=all(cell) and seed == 0)
    if placebo_with_nft:
        for seed in SEEDS:
            child("nft", "variant", seed, {"synth_quality": 9.0, "synth_offset": 9.0}, cell=(False,) * 3, advantage="nft")
    client.set_terminated(pid)
    return uri, {"parent_run_id": pid}


@contextmanager
def store_root(fallback: Path) -> Iterator[Path]:
    """A folder for an MLflow store: on tmpfs when there is one (creating a sqlite store runs
    ~400 schema statements, each synced to disk: ~8 s on this machine's disk, ~1 s in memory),
    else ``fallback``."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield fallback
        return
    root = Path(tempfile.mkdtemp(prefix="omninft-report-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with store_root(tmp_path_factory.mktemp("store")) as root:
        uri, expected = build_experiment(root)
        validity = root / "validity.json"
        validity.write_text(json.dumps({**VALIDITY, "synth_extra": {"blur": {"spearman": 0.9, "expected": "-", "pass": False}}}))
        yield {"uri": uri, "root": root, "validity": validity, **expected}


@pytest.fixture(scope="module")
def rendered(store):
    out = store["root"] / "report"
    paths = render_report(EXPERIMENT, out, store["uri"], validity=store["validity"], max_samples=2)
    data = json.loads(paths.data.read_text())
    return {
        "paths": paths, "data": data,
        "md": paths.markdown.read_text(encoding="utf-8"), "html": paths.html.read_text(encoding="utf-8"),
    }


def _cell(data: dict, variant: str, metric: str) -> dict:
    row = next(r for r in data["table"]["rows"] if r["variant"] == variant)
    return next(c for c in row["cells"] if c["metric"] == metric)


def _effect(data: dict, metric: str, name: str) -> dict:
    block = next(m for m in data["effects"]["by_metric"] if m["name"] == metric)
    return next(e for e in block["effects"] if e["name"] == name)


def test_every_variant_in_the_table(rendered):
    names = ["base"] + [variant_name(c) for c in itertools.product((False, True), repeat=3)]
    rows = [r["variant"] for r in rendered["data"]["table"]["rows"]]
    assert rows[0] == "base" and sorted(rows) == sorted(names) and rows[-1] == "omninft"
    for name in names:
        assert re.search(rf"^\| {re.escape(name)} \|", rendered["md"], re.M), name
        assert f"<tr><th>{html.escape(name)}</th>" in rendered["html"], name


def test_directions_from_results_json_fallback(rendered):
    metrics = {m["name"]: m for m in rendered["data"]["metrics"]}
    assert metrics["synth_quality"]["higher_is_better"] is True
    assert metrics["synth_offset"]["higher_is_better"] is False
    assert "synth\\_quality ↑" in rendered["md"] and "synth\\_offset ↓" in rendered["md"]


def test_ci_over_seeds_matches_hand_computation(rendered):
    # omninft, synth_quality: seed 0 = 1 + .15 + .05 - .025 + .02 - .02 = 1.175; seed 1 = 1.315.
    # mean 1.245; s = 0.14/sqrt(2); half-width = t(.975, 1) * s / sqrt(2) = 12.7062 * 0.07.
    c = _cell(rendered["data"], "omninft", "synth_quality")
    assert c["ci_kind"] == "t" and c["n"] == 2
    assert c["mean"] == pytest.approx(1.245)
    assert c["half_width"] == pytest.approx(T_975_1 * 0.07)
    assert c["ci_low"] == pytest.approx(1.245 - T_975_1 * 0.07)
    assert "1.245 ± 0.889" in rendered["md"]
    assert "1.245<span class=\"ci\"> ± 0.889</span>" in rendered["html"]


def test_one_seed_uses_bootstrap_ci_and_says_so(rendered):
    c = _cell(rendered["data"], "base", "synth_quality")
    assert c["ci_kind"] == "bootstrap" and (c["ci_low"], c["ci_high"]) == pytest.approx((0.65, 0.75))
    assert "0.700 [0.650, 0.750]†" in rendered["md"]
    assert "bootstrap CI over prompts" in rendered["md"] and "bootstrap CI over prompts" in rendered["html"]


def test_best_per_column_follows_direction(rendered):
    data = rendered["data"]
    best_q = [r["variant"] for r in data["table"]["rows"] if _cell(data, r["variant"], "synth_quality")["best"]]
    best_o = [r["variant"] for r in data["table"]["rows"] if _cell(data, r["variant"], "synth_offset")["best"]]
    assert best_q == ["routing+surgery"]  # reweighting lowers quality
    assert best_o == ["routing", "routing+surgery"]  # tie: surgery has no mean effect on offset
    assert "**1.295 ± " in rendered["md"]


def test_main_effects_recover_planted_effects(rendered):
    data = rendered["data"]
    assert data["effects"]["available"] and data["effects"]["seeds"] == [0, 1]
    q = {n: _effect(data, "synth_quality", n) for n in ("routing", "surgery", "reweighting")}
    assert q["routing"]["per_seed"] == {"0": pytest.approx(0.28), "1": pytest.approx(0.32)}
    assert q["routing"]["mean"] == pytest.approx(0.30)
    # seed x cell residual: +-0.01 in all 16 runs (the +-0.02 routing term), MSE = 16e-4 / 7,
    # SE = 2 sqrt(MSE / 16) = 0.02 / sqrt(7)
    assert data["effects"]["df"] == 7 and q["routing"]["df"] == 7
    assert q["routing"]["half_width"] == pytest.approx(T_975_7 * 0.02 / math.sqrt(7))
    assert q["surgery"]["mean"] == pytest.approx(0.10)
    assert q["reweighting"]["mean"] == pytest.approx(-0.05) and q["reweighting"]["sign"] == -1
    assert _effect(data, "synth_quality", "routing × surgery")["mean"] == pytest.approx(0.04)
    assert _effect(data, "synth_quality", "routing × reweighting")["mean"] == pytest.approx(0.0, abs=1e-12)
    o = {n: _effect(data, "synth_offset", n) for n in ("routing", "surgery", "reweighting")}
    assert o["routing"]["mean"] == pytest.approx(-0.10) and o["routing"]["better"] is True
    assert o["reweighting"]["mean"] == pytest.approx(0.05) and o["reweighting"]["better"] is False
    assert o["surgery"]["mean"] == pytest.approx(0.0, abs=1e-12) and o["surgery"]["excludes_zero"] is False


def test_effect_signs_stated_plainly(rendered):
    md = rendered["md"]
    assert "Turning **routing** on lowers synth\\_offset by 0.100" in md
    assert "Turning **reweighting** on raises synth\\_offset by 0.050" in md and ": worse (↓ is better)" in md
    assert "Turning **reweighting** on lowers synth\\_quality by 0.050" in md
    assert "The CI includes zero, so the sign is not established." in md
    assert "the effect of routing on synth\\_quality is 0.080 larger with surgery on" in md
    assert "Turning <b>routing</b> on lowers synth_offset by 0.100" in rendered["html"]


def test_prompt_is_inert_text_in_md_and_html(rendered):
    md, page = rendered["md"], rendered["html"]
    assert "<script" not in md.lower() and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    # Markdown: HTML turned into entities and Markdown punctuation backslash-escaped
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; a dog \\| barks \\*loudly\\* \\[x\\](y)" in md
    # config values are untrusted too: shown verbatim inside a fenced block / escaped <pre>
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and '"note": "<b>not bold</b>"' in md.split("```json")[1]


def test_markdown_renderer_shows_the_prompt_as_text(rendered):
    markdown_it = pytest.importorskip("markdown_it")
    # the CommonMark preset passes raw HTML through: the dangerous setting for a report
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(rendered["md"])
    assert "<script" not in page.lower()
    row = next(r for r in page.split("<tr>") if "pwned" in r)
    assert row.count("<td") == 4  # the "|" in the prompt did not split the cell
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; a dog | barks *loudly* [x](y)" in row
    assert '<img src="rewards.png"' in page and 'href="samples/base_seed0_sample_0000.mp4"' in page


def test_html_is_self_contained_with_playable_videos(rendered):
    page = rendered["html"]
    videos = re.findall(r'<video controls preload="auto" src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"></video>', page)
    assert len(videos) == 4  # 2 prompts x (base, omninft)
    assert re.search(r'<img class="curve" alt="[^"]*" src="data:image/png;base64,', page)
    assert not re.search(r'(src|href)="(https?:|//|file:)', page)
    assert 'href="#' in page  # in-page navigation only


def test_side_files_for_markdown(rendered):
    paths, md = rendered["paths"], rendered["md"]
    assert sorted(p.name for p in paths.figures) == ["losses.png", "rewards.png"]
    for p in paths.figures:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({p.name})" in md
    assert len(paths.samples) == 4
    clip = read_clip(paths.samples[0])
    assert clip.has_audio and clip.num_frames == 8


def test_categories_validity_and_provenance(rendered):
    data, md = rendered["data"], rendered["md"]
    cats = data["categories"]
    assert cats["available"] and cats["variants"][0] == "base"
    table = next(t for t in cats["by_metric"] if t["name"] == "synth_quality")
    ambient = next(r for r in table["rows"] if r["category"] == "ambient")
    # omninft: mean over seeds (1.175, 1.315) + 0.1 * 3 switches = 1.545
    assert ambient["aspect"] == "sound type" and ambient["cells"][-1]["mean"] == pytest.approx(1.545)
    v = data["validity"]  # the explicit validity=PATH wins over the parent's artifact
    assert v["source"].endswith("validity.json") and "synth_extra" in [r["metric"] for r in v["rows"]]
    assert (v["n_pass"], v["n_total"]) == (3, 5) and "**FAIL**" in md
    prov = data["provenance"]
    assert prov["git_commit"] == "0123abc" and "seeds=\\[0,1\\]" not in md
    assert "python -m omninft_bench.run experiment=ablation-test seeds=[0,1]" in md
    assert {"name": "mlflow", "version": "3.17.2"} in prov["environment"]


def test_recipe_table_states_departures(rendered):
    rows = {r["setting"]: r for r in rendered["data"]["recipe"]}
    # only the settings whose params the parent logged: no backbone.* or sampler params here
    assert set(rows) == {"rewards (weights)", "learning rate"}
    assert rows["learning rate"]["departs"] and rows["learning rate"]["omninft"] == "3e-05"
    assert "| learning rate | 0.0001 | 3e-05 | – | **yes** |" in rendered["md"]
    assert "synth\\_offset 1" in rendered["md"]
    assert 'id="recipe"' in rendered["html"] and "<td>0.0001</td>" in rendered["html"]


def test_missing_field_raises_instead_of_rendering_blank(rendered):
    data = json.loads(json.dumps(rendered["data"]))
    del data["effects"]["seeds"]
    for kind in ("md", "html"):
        with pytest.raises(UndefinedError, match="seeds"):
            render_template(kind, data)
    with pytest.raises(UndefinedError, match="titel"):
        make_environment("html").from_string("<h1>{{ report.titel }}</h1>").render(report=rendered["data"])


def test_registry_direction_wins_over_results_json():
    from omninft_bench.metrics.registry import list_metrics
    from omninft_bench.report import _metric_specs

    specs = list_metrics()
    if not specs:
        pytest.skip("no metric registered")
    spec = specs[0]
    results = {"v": [{"metrics": {spec.name: {"higher_is_better": not spec.higher_is_better},
                                  "unregistered_x": {"higher_is_better": True}}}]}
    got = {m["name"]: m for m in _metric_specs([spec.name, "unregistered_x", "unknown_y"], results)}
    assert (got[spec.name]["higher_is_better"], got[spec.name]["direction_source"]) == (spec.higher_is_better, "registry")
    assert (got["unregistered_x"]["higher_is_better"], got["unregistered_x"]["direction_source"]) == (True, "results.json")
    assert (got["unknown_y"]["higher_is_better"], got["unknown_y"]["direction_source"]) == (None, "unknown")


def test_unknown_experiment_and_cli(store, tmp_path, capsys, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    with pytest.raises(ReportError, match="no MLflow experiment 'nope'.*ablation-test"):
        render_report("nope", tmp_path / "x", store["uri"])
    with pytest.raises(SystemExit) as exc:
        main([f"experiment={EXPERIMENT}", "outt=x"])
    assert exc.value.code == 2 and "Did you mean out" in capsys.readouterr().err
    paths = main([f"experiment={EXPERIMENT}", f"out={tmp_path / 'cli'}", f"tracking_uri={store['uri']}", "max_samples=1"])
    assert paths.html.is_file() and len(paths.samples) == 2
    validity = json.loads(paths.data.read_text())["validity"]
    assert validity["source"] == "the parent run's validity.json artifact" and validity["n_total"] == 4
    # the global tracking URI (mlflow.search_runs reads it) is left as the caller had it
    assert mlflow.get_tracking_uri() == before and "MLFLOW_TRACKING_URI" not in os.environ
    assert "wrote" in capsys.readouterr().out


def test_fallback_branches_render(rendered):
    """Sections with nothing to show say why (and still render under StrictUndefined)."""
    data = json.loads(json.dumps(rendered["data"]))
    effect = data["effects"]["by_metric"][0]["effects"][0]
    effect.update(ci_low=None, ci_high=None, half_width=None, n=1, excludes_zero=None)
    data["categories"]["available"] = False
    data["validity"] = {**data["validity"], "available": False}
    data["samples"] = {**data["samples"], "available": False, "clips": [], "reason": "no base run"}
    data["curves"] = []
    data["provenance"]["environment"] = []
    md, page = render_template("md", data), render_template("html", {**data, "curves": []})
    for text in (md, page):
        assert "One seed only: no CI." in text
        assert "No sample clips: no base run." in text
        assert "No per-step reward or loss metrics were logged." in text
        assert "No environment.json artifact on the parent run." in text
    effect = data["effects"]["by_metric"][0]["effects"][1]  # a first-order effect that prints as zero
    assert effect["order"] == 1 and effect["below"] is None
    effect.update(mean=-0.0002, sign=-1)
    _mark_sub_precision([effect], 3)
    md = render_template("md", data)
    sentence = next(line for line in md.splitlines() if f"Turning **{effect['name']}** on changes" in line)
    assert "by less than 0.0005 (" in sentence and "better" not in sentence and "worse" not in sentence
    assert f"Turning <b>{effect['name']}</b> on changes" in render_template("html", {**data, "curves": []})
    data["effects"] = {**data["effects"], "available": False, "reason": "the variant runs do not form a full 2^3 factorial"}
    data["provenance"]["parent_run_id"] = ""
    md = render_template("md", data)
    assert "Not computed: the variant runs do not form a full 2^3 factorial." in md
    assert "No parent run" in md


# ---------------------------------------------------------------------------------------------
# Change from the base model


def _runs(rows: list[tuple[str, str, int, dict[str, float]]], per_run: bool = True) -> pd.DataFrame:
    """Children as :func:`omninft_bench.report._select` leaves them: (role, variant, seed, eval metrics).

    ``per_run``: each run carries its own ``data_seed`` tag; otherwise none does (runs logged
    before the tag, which shared their seed's prompts and noise)."""
    return pd.DataFrame([
        {"tags.omninft.role": role, "_variant": variant, "_seed": seed,
         **({"tags.data_seed": f"{variant}/{seed}"} if per_run else {}),
         **{f"metrics.eval/{m}": v for m, v in values.items()}}
        for role, variant, seed, values in rows
    ])


def test_change_from_base_hand_computed():
    # q (higher is better) and off (lower is better) change by the same +0.1, +0.2, +0.3, +0.2;
    # flat changes by +-0.1, +-0.2 (mean 0); u has no known direction.
    children = _runs([
        ("base", "base", 1234, {"q": 0.5, "off": 1.0, "flat": 0.0, "u": 0.0}),
        ("variant", "a", 0, {"q": 0.6, "off": 1.1, "flat": 0.1, "u": 1.0}),
        ("variant", "a", 1, {"q": 0.7, "off": 1.2, "flat": -0.1, "u": 1.1}),
        ("variant", "b", 0, {"q": 0.8, "off": 1.3, "flat": 0.2, "u": 0.9}),
        ("variant", "b", 1, {"q": 0.7, "off": 1.2, "flat": -0.2, "u": 1.0}),
    ])
    metrics = [{"name": "flat", "higher_is_better": True}, {"name": "off", "higher_is_better": False},
               {"name": "q", "higher_is_better": True}, {"name": "u", "higher_is_better": None}]
    rewards = {"q": 1.0, "flat": 0.5, "off": 0.0, "unscored": 2.0}  # weight 0 = not rewarded
    change = _change_from_base(children, metrics, rewards)
    assert change["available"] and change["variants"] == ["a", "b"] and change["n_runs"] == 4
    assert change["rewards_not_evaluated"] == ["unscored"]
    rows = {r["name"]: r for r in change["rows"]}
    assert [r["name"] for r in change["rows"]] == ["flat", "q", "off", "u"]  # rewarded first
    assert [(r["rewarded"], r["weight"]) for r in change["rows"]] == [(True, 0.5), (True, 1.0), (False, None), (False, None)]

    # pooled diffs 0.1, 0.2, 0.3, 0.2: mean 0.2, s = sqrt(0.02 / 3), half-width = t(.975, 3) * s / 2
    half = T_975_3 * (0.02 / 3) ** 0.5 / 2
    for name, verdict in (("q", "better"), ("off", "worse")):
        r = rows[name]
        assert r["n"] == 4 and r["verdict"] == verdict
        assert (r["mean"], r["ci_low"], r["ci_high"]) == pytest.approx((0.2, 0.2 - half, 0.2 + half))
        # per variant over seeds: a = (0.1, 0.2), b = (0.3, 0.2); half-width t(.975, 1) * 0.05
        a, b = r["per_variant"]
        assert (a["variant"], a["mean"], a["half_width"], a["n"]) == ("a", pytest.approx(0.15), pytest.approx(T_975_1 * 0.05), 2)
        assert (b["mean"], b["half_width"]) == pytest.approx((0.25, T_975_1 * 0.05))
        assert r["per_seed"] == {"0": pytest.approx(0.2), "1": pytest.approx(0.2)} and r["seeds_agree"] is True
    assert rows["q"]["base"] == 0.5 and rows["off"]["base"] == 1.0
    assert rows["flat"]["verdict"] == "no clear change" and rows["flat"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert rows["flat"]["per_seed"] == {"0": pytest.approx(0.15), "1": pytest.approx(-0.15)}
    assert rows["flat"]["seeds_agree"] is False
    assert rows["u"]["verdict"] == "higher"  # excludes zero, direction unknown
    # the summary covers the rewarded metrics only, better before no clear change
    assert [(g["verdict"], [x["name"] for x in g["metrics"]]) for g in change["summary"]] == [
        ("better", ["q"]), ("no clear change", ["flat"]),
    ]


def test_change_from_base_counts_shared_streams_once_per_seed():
    # Without data_seed tags the variants of a seed shared its prompts and noise: one replicate
    # per seed.  flat: seed 0 runs +0.1, +0.2 (mean +0.15), seed 1 -0.1, -0.2 (mean -0.15), so
    # s = 0.15 * sqrt(2) and the half-width is t(.975, 1) * s / sqrt(2) = t * 0.15.
    rows = [
        ("base", "base", 1234, {"flat": 0.0}),
        ("variant", "a", 0, {"flat": 0.1}), ("variant", "a", 1, {"flat": -0.1}),
        ("variant", "b", 0, {"flat": 0.2}), ("variant", "b", 1, {"flat": -0.2}),
    ]
    metrics = [{"name": "flat", "higher_is_better": True}]
    shared = _change_from_base(_runs(rows, per_run=False), metrics, {})
    (row,) = shared["rows"]
    assert shared["shared_streams"] is True and (row["n"], row["n_runs"]) == (2, 4)
    assert row["half_width"] == pytest.approx(T_975_1 * 0.15)
    independent = _change_from_base(_runs(rows), metrics, {})
    (row,) = independent["rows"]
    assert independent["shared_streams"] is False and (row["n"], row["n_runs"]) == (4, 4)
    assert row["half_width"] == pytest.approx(T_975_3 * (0.1 / 3) ** 0.5 / 2)  # sum of squares 0.1


def test_change_in_base_sd_hand_computed(rendered):
    # The base scored prompts 0-2 at 0.2, 0.4, 0.9 (sd with n - 1: sqrt(0.13)); two runs change the
    # metric by +0.1 and +0.3 (mean +0.2), so the change is 0.2 / sqrt(0.13) base sds.
    children = _runs([("base", "base", 7, {"q": 0.5}), ("variant", "a", 0, {"q": 0.6}), ("variant", "a", 1, {"q": 0.8})])
    children["run_id"] = ["b", "r0", "r1"]
    per_sample = {"b": {0: {"q": 0.2}, 1: {"q": 0.4}, 2: {"q": 0.9}},
                  "r0": {0: {"q": 0.3}, 1: {"q": 0.5}, 2: {"q": 1.0}}, "r1": {0: {"q": 0.5}, 1: {"q": 0.7}, 2: {"q": 1.2}}}
    change = _change_from_base(children, [{"name": "q", "higher_is_better": True}], {}, per_sample)
    (row,) = change["rows"]
    assert change["effect_sizes"] is True
    assert row["base_sd"] == pytest.approx(0.13 ** 0.5) and row["effect"] == pytest.approx(0.2 / 0.13 ** 0.5)
    flat = {"b": {0: {"q": 0.5}, 1: {"q": 0.5}}, "r0": {0: {"q": 0.6}, 1: {"q": 0.6}}, "r1": {0: {"q": 0.8}, 1: {"q": 0.8}}}
    no_spread = _change_from_base(children, [{"name": "q", "higher_is_better": True}], {}, flat)
    assert no_spread["effect_sizes"] is False and no_spread["rows"][0]["effect"] is None
    # rendered: a column after the change, two decimals
    data = json.loads(json.dumps(rendered["data"]))
    assert data["change"]["effect_sizes"] is False  # the fixture's base has no spread over prompts
    assert "Δ in base sd" not in rendered["md"]
    data["change"]["effect_sizes"] = True
    data["change"]["rows"][0]["effect"] = -0.6312
    data["samples"] = {**data["samples"], "available": False, "clips": [], "reason": "not needed here"}
    md, page = render_template("md", data), render_template("html", {**data, "curves": []})
    assert "| Δ all RL runs | Δ in base sd |" in md and "| synth\\_offset | 1 | ↓ | 0.800 | -0.295 | -0.63 |" in md
    assert "<th>Δ in base sd</th>" in page and '<td class="num">-0.63</td>' in page


def test_change_from_base_without_interval_or_base():
    children = _runs([("base", "base", 7, {"q": 1.0}), ("variant", "a", 0, {"q": 0.5})])
    metrics = [{"name": "q", "higher_is_better": True}]
    (row,) = _change_from_base(children, metrics, {})["rows"]
    assert (row["mean"], row["ci_low"], row["n"], row["verdict"]) == (pytest.approx(-0.5), None, 1, "one run")
    assert row["per_variant"][0]["half_width"] is None and not row["rewarded"]
    no_base = _change_from_base(children[children["_variant"] != "base"], metrics, {"q": 1.0})
    assert not no_base["available"] and no_base["reason"] == "no base run" and no_base["rewards_known"]


def test_reward_weights_from_parent_params():
    parent = pd.Series({"run_id": "p", "params.rewards.clip_score": "1.0", "params.rewards.av_offset": "0.5",
                        "params.rewards.broken": "high", "params.rewards.unset": None, "params.trainer.lr": "3e-05"})
    assert _reward_weights(parent) == {"clip_score": 1.0, "av_offset": 0.5}
    assert _reward_weights(None) == {}


def test_change_section_rendered(rendered):
    data, md, page = rendered["data"], rendered["md"], rendered["html"]
    change = data["change"]
    # synth_offset is the only reward; base 0.8, the 16 runs average 0.505 (the planted effects
    # cancel over the factorial, seed offsets average 0.005): change -0.295, lower is better
    first = change["rows"][0]
    assert (first["name"], first["rewarded"], first["weight"], first["verdict"]) == ("synth_offset", True, 1.0, "better")
    assert first["mean"] == pytest.approx(-0.295) and first["n"] == 16
    second = change["rows"][1]
    assert (second["name"], second["rewarded"]) == ("synth_quality", False)
    assert second["mean"] == pytest.approx(0.35) and second["per_seed"] == {"0": pytest.approx(0.29), "1": pytest.approx(0.41)}
    assert md.index("## Results") < md.index("## Change from the base model") < md.index("## Factorial effects")
    assert "| synth\\_offset | 1 | ↓ | 0.800 | -0.295 | " in md and "| 16 | **better** |" in md
    assert "| synth\\_quality | – | ↑ | 0.700 | +0.350 | " in md
    assert "- Improved beyond seed noise (the interval excludes zero on the better side): synth\\_offset (-0.295" in md
    assert page.index('id="results"') < page.index('<h2 id="change">') < page.index('id="effects"')
    assert '<a href="#change">' in page and '<span class="pass">better</span>' in page


def test_change_over_seeds_and_prompts(rendered):
    # Every run drew its own data (16 replicates); per prompt a run differs from the base by
    # (run value - base value) + PROMPT_OFFSETS[prompt]: the two-way t interval of that matrix.
    data, md = rendered["data"], rendered["md"]
    change = data["change"]
    assert change["two_way"] is True
    diffs = []
    for cell in itertools.product((False, True), repeat=3):
        for seed in SEEDS:
            diffs.append(planted(cell, seed)["synth_offset"] - 0.8)
    matrix = np.array(diffs)[:, None] + np.array(PROMPT_OFFSETS)[None, :]
    expected = two_way_t_interval(matrix, 0.95)
    first = change["rows"][0]
    assert first["name"] == "synth_offset" and first["mean"] == pytest.approx(expected.mean)
    assert (first["ci2_low"], first["ci2_high"]) == pytest.approx((expected.ci_low, expected.ci_high))
    # the prompts' spread widens the interval well beyond the one over runs alone
    assert first["ci2_high"] - first["ci2_low"] > 2 * (first["ci_high"] - first["ci_low"])
    # 4 prompts whose offsets spread by sd 0.2: over runs alone better, counting the prompts not
    assert first["verdict"] == "better" and first["verdict2"] == "no clear change"
    assert "seeds and prompts" in md and "counting the prompts too: no clear change" in md


def test_change_section_fallbacks_render(rendered):
    data = json.loads(json.dumps(rendered["data"]))
    data["change"]["rewards_known"] = False
    for row in data["change"]["rows"]:
        row.update(rewarded=False, weight=None)
    data["change"]["summary"] = []
    md = render_template("md", data)
    assert "The parent run logged no reward weights" in md and "Rewarded metrics, all RL runs" not in md
    data["change"] = {**data["change"], "available": False, "reason": "no base run"}
    page = render_template("html", report_module._html_view(data, rendered["paths"].html.parent))
    for text in (render_template("md", data), page):
        assert "Not computed: no base run." in text


# ---------------------------------------------------------------------------------------------
# Validity fallback: the study shipped with the SynthBind weights


class _FakeArtifacts:
    """Stands in for the parent run's artifacts: ``json("validity.json")`` gives ``data``."""

    def __init__(self, data=None):
        self.data = data

    def json(self, path: str):
        return self.data if path == "validity.json" else None


def test_validity_falls_back_to_the_shipped_study(tmp_path, monkeypatch):
    shipped = tmp_path / "validity.json"
    monkeypatch.setattr(report_module, "SHIPPED_VALIDITY", shipped)
    assert _load_validity(None, _FakeArtifacts()) == (None, "")  # nothing shipped yet
    shipped.write_text(json.dumps(VALIDITY), encoding="utf-8")
    data, source = _load_validity(None, _FakeArtifacts())
    assert data == VALIDITY and source == SHIPPED_VALIDITY_SOURCE
    assert _load_validity(None, None)[1] == SHIPPED_VALIDITY_SOURCE  # no parent run at all
    # the parent run's artifact, and an explicit validity=PATH, come first
    parent = _FakeArtifacts({"m": {}})
    assert _load_validity(None, parent) == ({"m": {}}, "the parent run's validity.json artifact")
    explicit = tmp_path / "explicit.json"
    explicit.write_text("{}", encoding="utf-8")
    assert _load_validity(explicit, parent)[1] == str(explicit)


def test_shipped_validity_source_is_named(rendered):
    data = json.loads(json.dumps(rendered["data"]))
    data["validity"] = _validity(VALIDITY, SHIPPED_VALIDITY_SOURCE)
    md = render_template("md", data)
    page = render_template("html", report_module._html_view(data, rendered["paths"].html.parent))
    assert ("From the validity study shipped with the SynthBind weights "
            "(omninft\\_bench/encoders/synthbind/weights/validity.json): 3 of 4 checks pass.") in md
    assert "From the validity study shipped with the SynthBind weights (omninft_bench/encoders/synthbind/weights/validity.json)" in page


def test_nft_runs_stay_out_of_the_factorial_and_placebo_is_announced(tmp_path):
    # nft has every switch off, like gdpo: counted as a cell it would replace gdpo's values.
    with store_root(tmp_path) as root:
        uri, _ = build_experiment(root, n_samples=1, placebo_with_nft=True)
        paths = render_report(EXPERIMENT, root / "report", uri, max_samples=1)
        data = json.loads(paths.data.read_text())
        md, page = paths.markdown.read_text(encoding="utf-8"), paths.html.read_text(encoding="utf-8")
    assert _effect(data, "synth_quality", "routing")["mean"] == pytest.approx(0.30)
    assert _effect(data, "synth_quality", "surgery")["mean"] == pytest.approx(0.10)
    assert "nft" in [r["variant"] for r in data["table"]["rows"]]
    assert data["placebo"] is True
    assert "**Placebo ablation.**" in md and "<b>Placebo ablation.</b>" in page


def test_real_rewards_are_not_announced_as_placebo(rendered):
    assert rendered["data"]["placebo"] is False
    assert "Placebo" not in rendered["md"] and "Placebo" not in rendered["html"]


def test_a_row_shares_one_precision():
    """Changes and effects print every number of a row to the decimals that give its largest
    magnitude two significant digits (at least 3), so tiny intervals no longer mix "-0.000544"
    with "+0.002" in one row."""
    assert _row_decimals([-0.000544, 0.000361, -9.18e-05, None, math.nan]) == 5
    assert _row_decimals([0.008, -0.002]) == 4
    assert _row_decimals([-0.03, 0.011]) == 3
    assert _row_decimals([12.0]) == 3
    assert _row_decimals([]) == 3 and _row_decimals([0.0]) == 3
    assert _row_decimals([1e-12]) == 8
    d = _row_decimals([-0.000544, 0.000361, -9.18e-05])
    assert [_num(v, signed=True, decimals=d) for v in (-0.000544, 0.000361, -9.18e-05)] == ["-0.00054", "+0.00036", "-0.00009"]
    assert _num(0.0, decimals=4) == "0.0000" and _num(None, decimals=4) == _num(None)
    assert _num(2.5e5, signed=True, decimals=4) == "+2.5e+05"  # huge values keep the general form
    assert _num(-0.000544, signed=True) == "-0.000544"  # without a row precision: 3 significant digits
