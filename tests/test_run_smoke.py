"""End to end: ``python -m omninft_bench.run preset=smoke`` against a real MLflow sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omninft_bench.run import main

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
