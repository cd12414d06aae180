"""``python -m omninft_bench.evaluate`` on small generated folders: outputs, skips, nulls with
reasons, categories, MLflow, the feature cache, and the errors raised before any work."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import omninft_bench.evaluate as evaluate_module
from omninft_bench.evaluate import main
from omninft_bench.evaluate_inputs import InputError, discover
from omninft_bench.media import write_clip
from omninft_bench.metrics.testing import toy_clip, toy_clips

METRICS = "[av_align,temporal_flickering,avh_score,video_realism,fvd]"


def _write_javisbench(root: Path) -> Path:
    clips = toy_clips(4)
    clips[3] = clips[3].replace(audio=None, sample_rate=None)
    for i, clip in enumerate(clips):
        write_clip(root / "samples" / f"sample_{i:04d}.mp4", clip)
    (root / "samples" / "sample_0002.mp4").write_bytes(b"this is not a video" * 64)
    (root / "samples" / "sample_0002.wav").unlink()
    with open(root / "prompts.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "audio_text", "cat0_ind", "cat2_ind"])
        for i, cats in enumerate([("0", "3"), ("1", "3,4"), ("0", "4"), ("1", "3"), ("0", "3")]):
            writer.writerow([f"prompt {i}", f"sound {i}", *cats])  # row 4 has no sample
    return root


def _args(data: dict, out: Path, *extra: str) -> list[str]:
    return [
        f"input={data['gen']}",
        f"reference={data['ref']}",
        f"metrics={METRICS}",
        "backends=[fvd:random]",
        "encoders.default=random",
        f"out={out}",
        f"cache_dir={data['cache']}",
        f"tracking_uri=sqlite:///{data['tmp']}/mlflow.db",
        "progress=false",
        "n_bootstrap=200",
        "n_bootstrap_distribution=10",
        *extra,
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("evaluate")
    gen = _write_javisbench(tmp / "gen")
    ref = tmp / "ref"
    for i, clip in enumerate(toy_clips(3, start=50)):
        write_clip(ref / f"ref_{i}.mp4", clip)
    return {"tmp": tmp, "gen": gen, "ref": ref, "cache": tmp / "cache"}


@pytest.fixture(scope="module")
def first_run(data) -> dict:
    out = data["tmp"] / "out1"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(data["tmp"])  # MLflow puts artifacts under ./mlruns
        rc = main(_args(data, out))
    results = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    return {"rc": rc, "out": out, "results": results, "rows": rows}


def test_exit_status_and_counts(first_run):
    r = first_run["results"]
    assert first_run["rc"] == 0
    assert r["layout"] == "javisbench" and r["n_evaluated"] == 3 and r["n_skipped"] == 2


def test_results_schema(first_run):
    metrics = first_run["results"]["metrics"]
    assert set(metrics) == set(METRICS.strip("[]").split(","))
    for est in metrics.values():
        assert {"value", "ci_low", "ci_high", "n"} <= set(est)
        assert est["ci_low"] <= est["value"] <= est["ci_high"]
    assert metrics["av_align"]["n"] == 2  # the clip without audio is not counted
    assert metrics["temporal_flickering"]["n"] == 3
    assert metrics["fvd"]["n"] == 3 and metrics["fvd"]["value"] > 0


def test_skipped_clips_have_reasons(first_run):
    skipped = {s["path"]: s["reason"] for s in first_run["results"]["skipped"]}
    assert set(skipped) == {"samples/sample_0002.mp4", "samples/sample_0004.mp4"}
    assert "missing" in skipped["samples/sample_0004.mp4"]
    assert skipped["samples/sample_0002.mp4"]


def test_per_sample_rows_and_null_audio_metrics(first_run):
    rows = {row["path"]: row for row in first_run["rows"]}
    assert list(rows) == ["samples/sample_0000.mp4", "samples/sample_0001.mp4", "samples/sample_0003.mp4"]
    silent = rows["samples/sample_0003.mp4"]
    assert silent["av_align"] is None and silent["avh_score"] is None
    assert silent["reasons"]["av_align"] == "no audio track"
    assert silent["temporal_flickering"] is not None and silent["prompt"] == "prompt 3"
    assert first_run["results"]["null_reasons"]["av_align"] == {"no audio track": 1}
    values = [r["temporal_flickering"] for r in rows.values()]
    mean = sum(values) / len(values)
    assert first_run["results"]["metrics"]["temporal_flickering"]["value"] == pytest.approx(mean)


def test_by_category_is_recomputed_on_the_subset(first_run):
    by_cat = first_run["results"]["by_category"]
    rows = {row["index"]: row for row in first_run["rows"]}
    assert set(by_cat) == {"cat0_ind", "cat2_ind"}
    assert set(by_cat["cat0_ind"]) == {"natural", "urban"}
    natural = by_cat["cat0_ind"]["natural"]  # only clip 0 (clip 2 is corrupt)
    assert natural["temporal_flickering"]["n"] == 1
    assert natural["temporal_flickering"]["value"] == pytest.approx(rows[0]["temporal_flickering"])
    speech = by_cat["cat2_ind"]["speech"]  # clip 1 ("3,4")
    assert speech["av_align"]["value"] == pytest.approx(rows[1]["av_align"])
    assert natural["fvd"]["value"] is None and "NotEnoughSamples" in natural["fvd"]["reason"]
    assert by_cat["cat2_ind"]["musical"]["fvd"]["n"] == 3


def test_mlflow_run(first_run, data):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{data['tmp']}/mlflow.db")
    run = client.get_run(first_run["results"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "evaluate"
    assert run.data.metrics["temporal_flickering"] == pytest.approx(
        first_run["results"]["metrics"]["temporal_flickering"]["value"]
    )
    assert run.data.params["input"] == str(data["gen"]) and run.data.params["encoders.default"] == "random"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"results.json", "per_sample.jsonl"}


def test_cached_rerun_skips_decoding(first_run, data, monkeypatch):
    decoded: list[str] = []
    real = evaluate_module.read_clip

    def counting(path, *args, **kwargs):
        decoded.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "read_clip", counting)
    out = data["tmp"] / "out2"
    assert main(_args(data, out, "track=false")) == 0
    assert decoded == ["sample_0002.mp4"]  # only the corrupt file, whose features never cached
    again = json.loads((out / "results.json").read_text())
    assert again["metrics"] == first_run["results"]["metrics"]
    assert again["cache"]["hits"] > 0


def _run_error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_unknown_metric_is_an_error_before_work(data, capsys, monkeypatch):
    monkeypatch.setattr(evaluate_module, "read_clip", None)  # any decoding would crash
    err = _run_error([f"input={data['gen']}", "metrics=[av_algn]", "track=false"], capsys)
    assert "Did you mean 'av_align'" in err


def test_prompt_metric_without_prompts(data, tmp_path, capsys):
    write_clip(tmp_path / "clip.mp4", toy_clip(0))
    err = _run_error([f"input={tmp_path}", "metrics=[clip_score]", "track=false"], capsys)
    assert "prompts=" in err and "clip_score" in err


def test_missing_reference_and_missing_weights(data, capsys):
    err = _run_error([f"input={data['gen']}", "metrics=[fvd]", "track=false"], capsys)
    assert "reference=DIR" in err
    err = _run_error([f"input={data['gen']}", "metrics=[clap_score]", "track=false"], capsys)
    assert "set encoders.clap.path=DIR" in err
    err = _run_error([f"input={data['tmp'] / 'nowhere'}", "track=false"], capsys)
    assert "not a directory" in err


@pytest.fixture(scope="module")
def synthav_dir(tmp_path_factory) -> Path:
    from omninft_bench.data import synthav
    from omninft_bench.data.layout import write_javisbench

    root = tmp_path_factory.mktemp("synthav")
    write_javisbench(root, synthav.eval_set(n=4))
    assert (root / "ground_truth.jsonl").is_file()  # what marks a SynthAV folder
    return root


def test_all_shorthand_scores_synthav_clips_on_synthbind(synthav_dir, tmp_path):
    out = tmp_path / "out"
    args = [
        f"input={synthav_dir}",
        "metrics=[clip_score,clap_score]",
        "backends=[all:synthbind]",
        f"out={out}",
        "cache_dir=",
        "track=false",
        "progress=false",
        "n_bootstrap=50",
    ]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_evaluated"] == 4
    for name in ("clip_score", "clap_score"):
        assert results["metric_specs"][name]["backend"] == "synthbind"
        est = results["metrics"][name]
        assert est["n"] == 4 and isinstance(est["value"], float) and math.isfinite(est["value"])


def test_missing_weights_on_synthav_clips_names_the_shorthand(synthav_dir, data, capsys, monkeypatch):
    monkeypatch.setattr(evaluate_module, "read_clip", None)  # no silent switch: it stops before decoding
    err = _run_error([f"input={synthav_dir}", "metrics=[clip_score]", "track=false"], capsys)
    assert "set encoders.open_clip.pretrained=" in err
    assert err.endswith(", or, for SynthAV clips, backends=[all:synthbind]")
    err = _run_error([f"input={data['gen']}", "metrics=[clip_score]", "track=false"], capsys)  # not SynthAV
    assert "set encoders.open_clip.pretrained=" in err and "all:synthbind" not in err


def test_unknown_shorthand_backend_is_a_one_line_error(data, capsys, monkeypatch):
    monkeypatch.setattr(evaluate_module, "read_clip", None)
    err = _run_error([f"input={data['gen']}", "backends=[all:synthbnd]", "track=false"], capsys)
    assert "unknown encoder backend 'synthbnd'" in err and "Did you mean 'synthbind'" in err
    assert "Available: " in err and "open_clip" in err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "[all:synthbind] = every encoder metric" in capsys.readouterr().out


def test_nothing_readable_exits_nonzero(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.mp4").write_bytes(b"\0" * 100)
    args = [f"input={tmp_path / 'in'}", f"out={tmp_path / 'out'}", "cache_dir=", "track=false", "progress=false"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "no clip could be evaluated" in err and "broken.mp4" in err and "\n" not in err
    assert json.loads((tmp_path / "out" / "results.json").read_text())["skipped"][0]["path"] == "broken.mp4"


def test_python_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "omninft_bench.evaluate", f"input={tmp_path}", "metrics=[fvdd]", "track=false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Did you mean 'fvd'" in proc.stderr


# ----------------------------------------------------------------------------- layouts


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_vbench_layout_takes_prompts_from_names(tmp_path):
    _touch(tmp_path, "a cat plays-0.mp4", "a cat plays-1.mp4", "a dog-0.mp4")
    inputs = discover(tmp_path)
    assert inputs.layout == "vbench"
    assert [s.prompt for s in inputs.sources] == ["a cat plays", "a cat plays", "a dog"]


def test_plain_folder_with_jsonl_prompts(tmp_path):
    _touch(tmp_path / "clips", "x.mp4", "y.mkv", "notes.txt", "y.wav")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"path": "y.mkv", "text": "why"}\n{"path": "x.mp4", "prompt": "ex"}\n')
    inputs = discover(tmp_path / "clips", prompts)
    assert inputs.layout == "plain" and [(s.rel, s.prompt) for s in inputs.sources] == [("x.mp4", "ex"), ("y.mkv", "why")]
    by_order = tmp_path / "o.jsonl"
    by_order.write_text('"first"\n"second"\n')
    assert [s.prompt for s in discover(tmp_path / "clips", by_order).sources] == ["first", "second"]
    by_order.write_text('"only one"\n')
    with pytest.raises(InputError, match="1 rows"):
        discover(tmp_path / "clips", by_order)


def test_javisbench_samples_in_root_and_bad_csv(tmp_path):
    _touch(tmp_path, "sample_0000.mp4", "sample_0001.mp4")
    (tmp_path / "prompts.csv").write_text("text,cat1_ind\nfirst,0\nsecond,2\n")
    inputs = discover(tmp_path)
    assert inputs.layout == "javisbench" and [s.prompt for s in inputs.sources] == ["first", "second"]
    assert inputs.sources[1].categories == {"cat1_ind": "2"}
    (tmp_path / "bad.csv").write_text("caption_x\nhello\n")
    with pytest.raises(InputError, match="'text'"):
        discover(tmp_path, tmp_path / "bad.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no video files"):
        discover(tmp_path / "empty")


def test_backend_that_fails_to_load_stops_the_run_as_failed(data, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    bad = data["tmp"] / "not_torchscript.pt"
    bad.write_bytes(b"garbage")
    monkeypatch.chdir(data["tmp"])
    uri = f"sqlite:///{data['tmp']}/mlflow.db"
    args = [
        f"input={data['gen']}",
        f"reference={data['ref']}",
        "metrics=[fvd]",
        f"encoders.i3d.path={bad}",
        f"out={data['tmp'] / 'out_bad'}",
        "cache_dir=",
        f"tracking_uri={uri}",
        "experiment=failing",
        "progress=false",
    ]
    assert main(args) == 2
    assert "'i3d' failed to load" in capsys.readouterr().err
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("failing").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    saved = client.download_artifacts(runs[0].info.run_id, "traceback.txt", str(data["tmp"]))
    assert "i3d" in Path(saved).read_text()


def test_all_shorthand_without_metrics_runs_every_metric_it_can():
    from omninft_bench.evaluate import default_metrics
    from omninft_bench.metrics import WEIGHT_FREE_SUITE, list_metrics

    assert default_metrics({}, has_reference=True) == list(WEIGHT_FREE_SUITE)
    everything = [s.name for s in list_metrics()]
    assert default_metrics({"all": "synthbind"}, has_reference=True) == everything
    without_ref = default_metrics({"all": "synthbind"}, has_reference=False)
    assert "clip_score" in without_ref and "av_offset" in without_ref
    assert not {"fvd", "kvd", "fad", "video_realism", "audio_realism"} & set(without_ref)
