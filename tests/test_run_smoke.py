"""End to end: ``python -m omninft_bench.run preset=smoke`` against a real MLflow sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omninft_bench.run import main
from trainers.experiment import SMOKE_PRESET

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("smoke")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    # Weight-free rewards and metrics: the SynthBind-backed defaults need its shipped weights.
    argv = ["preset=smoke", f"out={tmp / 'out'}", f"tracking_uri={uri}", "experiment=smoke", "progress=false",
            "rewards={av_offset:1.0,temporal_flickering:0.5}",
            "eval.metrics=[av_offset,av_align,temporal_flickering,motion_smoothness,dynamic_degree]"]
    assert main(argv) == 0
    return {"tmp": tmp, "uri": uri}


def test_mlflow_layout(smoke) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(smoke["uri"])
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    parents = [r for r in runs if r.data.tags.get("omninft.role") == "parent"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    by_variant = {r.data.tags["variant"]: r for r in children}
    assert set(by_variant) == {"base", "gdpo", "omninft"}
    full = by_variant["omninft"]
    assert {full.data.tags[k] for k in ("routing", "surgery", "reweighting")} == {"true"}
    assert {by_variant["gdpo"].data.tags[k] for k in ("routing", "surgery", "reweighting")} == {"false"}
    assert full.data.tags["git_commit"] and full.data.tags["seed"] == "0"
    # streams=per_run: the two variants of seed 0 drew different prompts and noise
    assert full.data.tags["data_seed"] == full.data.params["data_seed"] != by_variant["gdpo"].data.tags["data_seed"]
    assert full.data.params["train.steps"] == "2"
    for name in ("eval/av_offset", "eval/av_align", "eval/motion_smoothness", "eval/temporal_flickering"):
        assert name in full.data.metrics and name in by_variant["base"].data.metrics
    history = client.get_metric_history(full.info.run_id, "loss/total")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(full.info.run_id, "samples")}
    assert "samples/sample_0000.mp4" in artifacts


def test_report_written(smoke) -> None:
    report = smoke["tmp"] / "out" / "report"
    html = (report / "report.html").read_text()
    assert "<video" in html and "omninft" in html
    data = json.loads((report / "report.json").read_text())
    assert data
    assert (report / "report.md").read_text().count("gdpo") >= 1


def test_bad_key_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        main(["preset=smoke", "train.stepz=3", f"out={tmp_path}"])
    assert err.value.code == 2
    assert "Did you mean train.steps" in capsys.readouterr().err


def test_reevaluate_rescores_every_run_on_another_draw(smoke) -> None:
    from mlflow.tracking import MlflowClient

    out = smoke["tmp"] / "out"
    argv = ["stage=reevaluate", f"out={out}", f"tracking_uri={smoke['uri']}", "experiment=smoke", "progress=false",
            "eval.n=4", "eval.seed=7", "eval.sampler.steps=4", "eval.n_samples=1", "eval.n_bootstrap=50",
            "eval.n_bootstrap_distribution=2", "eval.metrics=[av_offset,temporal_flickering]"]
    assert main(argv) == 0
    client = MlflowClient(smoke["uri"])
    source = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("smoke").experiment_id])}
    runs = client.search_runs([client.get_experiment_by_name("smoke-eval4-seed7").experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    by_name = {r.info.run_name: r for r in runs if r.data.tags.get("omninft.role") != "parent"}
    assert set(by_name) == {"base", "gdpo seed 0", "omninft seed 0"}
    for name in ("gdpo seed 0", "omninft seed 0"):
        new, old = by_name[name], source[name]
        assert new.data.tags["data_seed"] == old.data.tags["data_seed"] and new.data.tags["routing"] == old.data.tags["routing"]
        assert new.data.params["train.steps"] == old.data.params["train.steps"] == "2"
        assert "eval/temporal_flickering" in new.data.metrics
    # another draw: the base's clips differ, so does its score
    assert by_name["base"].data.metrics["eval/av_offset"] != source["base"].data.metrics.get("eval/av_offset")
    parent = next(r for r in runs if r.data.tags.get("omninft.role") == "parent")
    assert parent.data.params["rewards.av_offset"] == "1.0" and parent.data.params["eval.seed"] == "7"
    assert parent.data.params["eval.n"] == "4" and parent.data.params["eval.n_reference"] == "24"  # the ablation's
    assert (out / "reevaluate" / "smoke-eval4-seed7" / "report" / "report.md").exists()


def test_reevaluate_skips_a_run_without_its_final_checkpoint(tmp_path: Path) -> None:
    from trainers.reevaluate import _load_ema

    assert _load_ema(None, tmp_path / "missing.pt", 2) == f"no checkpoint at {tmp_path / 'missing.pt'}"
    with pytest.raises(SystemExit):
        main(["stage=reevaluate", "experimnt=x"])


def _eval_metrics(uri: str, experiment: str) -> dict[str, dict[str, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parent = next(r for r in runs if r.data.tags.get("omninft.role") == "parent")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1 and all(r.info.status == "FINISHED" for r in runs)
    return {r.info.run_name: {k: v for k, v in r.data.metrics.items() if k.startswith("eval/")} for r in children}


def test_parallel_jobs_log_exactly_the_sequential_runs(tmp_path: Path) -> None:
    """jobs=2 (two worker processes) against jobs=1, both on one torch thread per run: the same
    child runs under one parent, with identical evaluation metrics.  (The thread count itself moves
    a run's numbers in the last digits, so both sides use the same one.)"""
    metrics = {}
    for jobs in (1, 2):
        uri = f"sqlite:///{tmp_path / f'mlflow{jobs}.db'}"
        argv = ["preset=smoke", f"out={tmp_path / f'out{jobs}'}", f"tracking_uri={uri}", "experiment=jobs",
                "progress=false", f"jobs={jobs}", "train.threads=1", "report=false",
                "rewards={av_offset:1.0,temporal_flickering:0.5}",
                "eval.metrics=[av_offset,av_align,temporal_flickering,motion_smoothness,dynamic_degree]"]
        assert main(argv) == 0
        metrics[jobs] = _eval_metrics(uri, "jobs")
    assert set(metrics[2]) == {"base", "gdpo seed 0", "omninft seed 0"}
    assert metrics[2] == metrics[1]


def test_reevaluate_scores_a_lora_run_as_the_run_scored_itself(tmp_path: Path) -> None:
    """A LoRA run's checkpoint holds only its adapters' EMA.  Re-scored on the run's own draw (the
    smoke preset's evaluation settings and seed), it gives the run's own numbers; the base, on the
    same draw, does not, so the adapters were really loaded."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = "eval.metrics=[temporal_flickering,motion_smoothness]"
    train = ["preset=smoke", "ablation=[gdpo]", "train.lora_rank=4", "train.lr=1e-2", f"out={tmp_path / 'out'}",
             f"tracking_uri={uri}", "experiment=lora", "progress=false", "report=false",
             "rewards={temporal_flickering:1.0}", metrics]
    assert main(train) == 0
    draw = [a for a in SMOKE_PRESET if a.startswith("eval.")]  # the run's evaluation draw
    assert main(["stage=reevaluate", f"out={tmp_path / 'out'}", f"tracking_uri={uri}", "experiment=lora",
                 "into=lora-again", "progress=false", "report=false", *draw, metrics]) == 0
    first, again = _eval_metrics(uri, "lora"), _eval_metrics(uri, "lora-again")
    assert set(again) == {"base", "gdpo seed 0"}
    for name in ("base", "gdpo seed 0"):
        assert again[name] == pytest.approx(first[name], rel=1e-5), name
    run, base = first["gdpo seed 0"]["eval/temporal_flickering"], first["base"]["eval/temporal_flickering"]
    assert abs(run - base) > 1e-3 * abs(base)
