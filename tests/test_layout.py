"""JavisBench layout: the CLI and the writer round-trip prompts, categories, ground truth and media."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from omninft_bench.data import synthav
from omninft_bench.data.layout import (
    CATEGORY_COLUMNS,
    Entry,
    iter_clips,
    load_clip,
    read_javisbench,
    sample_path,
    write_javisbench,
    write_javisbench_prompts,
)
from omninft_bench.media import AVClip, MediaError


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[AVClip]]:
    out = tmp_path_factory.mktemp("synthav_eval")
    synthav.main(["split=eval", "n=4", f"out={out}"])
    return out, synthav.eval_set(n=4)


def test_cli_writes_the_javisbench_layout(written):
    out, _ = written
    with open(out / "prompts.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["text", "audio_text", "path", *CATEGORY_COLUMNS]
    for i in range(4):
        assert (out / f"samples/sample_{i:04d}.mp4").stat().st_size > 0
        assert (out / f"samples/sample_{i:04d}.wav").stat().st_size > 0
    rows = [json.loads(line) for line in (out / "ground_truth.jsonl").read_text().splitlines()]
    assert [(r["index"], r["path"]) for r in rows] == [(i, sample_path(i)) for i in range(4)]


def test_round_trip_prompts_categories_and_ground_truth(written):
    out, clips = written
    entries = read_javisbench(out)
    assert len(entries) == len(clips)
    for i, (entry, clip) in enumerate(zip(entries, clips, strict=True)):
        assert entry.index == i and entry.path == f"samples/sample_{i:04d}.mp4"
        assert entry.text == clip.prompt
        assert entry.audio_text == clip.meta["audio_text"]
        assert entry.categories == clip.meta["categories"]
        assert entry.gt == clip.meta["gt"]


def test_round_trip_media(written):
    out, clips = written
    for entry, clip in zip(read_javisbench(out), clips, strict=True):
        back = load_clip(out, entry)
        assert back.prompt == clip.prompt and back.meta["gt"] == clip.meta["gt"]
        assert back.video.shape == clip.video.shape and back.fps == clip.fps
        assert back.sample_rate == clip.sample_rate and back.audio.shape == clip.audio.shape
        # the .wav (16-bit PCM) wins over the AAC track: near-exact audio
        np.testing.assert_allclose(back.audio, clip.audio, atol=1e-4)
        # H.264 at crf 18 on 32x32: colors survive closely enough to find the objects
        assert np.abs(back.video.astype(int) - clip.video.astype(int)).mean() < 6
    assert len(list(iter_clips(out))) == len(clips)


def test_writer_without_ground_truth_and_stale_file(tmp_path):
    clip = synthav.generate_clip("eval", 0)
    write_javisbench(tmp_path, [clip])
    assert (tmp_path / "ground_truth.jsonl").exists()
    bare = clip.replace(prompt="a generated clip", meta={})
    write_javisbench(tmp_path, [bare])
    assert not (tmp_path / "ground_truth.jsonl").exists()  # a stale file would mis-pair gt
    (entry,) = read_javisbench(tmp_path)
    assert entry.gt is None and entry.text == "a generated clip" and entry.audio_text == ""
    assert load_clip(tmp_path, entry).has_audio


def test_reads_javisbench_csv_without_optional_columns(tmp_path):
    rows = (
        "text,cat0_ind,cat1_ind,cat2_ind,cat3_ind,cat4_ind\n"
        '"a dog barks, then a car passes",1,0,"1,2",1,"1,2"\n'
    )
    (tmp_path / "prompts.csv").write_text(rows)
    (entry,) = read_javisbench(tmp_path)
    assert entry.path == "samples/sample_0000.mp4" and entry.audio_text == ""
    assert entry.categories["cat2_ind"] == "1,2"
    assert entry.category_names()["cat2_ind"] == ["biological", "mechanical"]
    assert entry.category_names()["cat4_ind"] == ["multiple subjects", "off-screen sound"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(MediaError, match="prompts.csv"):
        read_javisbench(tmp_path)
    write_javisbench_prompts(tmp_path, [Entry(0, "samples/a.mp4", "x", gt={"offset": 0.0})])
    (tmp_path / "ground_truth.jsonl").write_text(
        json.dumps({"index": 0, "path": "samples/b.mp4", "gt": {}}) + "\n"
    )
    with pytest.raises(MediaError, match="ground_truth.jsonl"):
        read_javisbench(tmp_path)
    (tmp_path / "prompts.csv").write_text("prompt\nhello\n")
    with pytest.raises(MediaError, match="'text' column"):
        read_javisbench(tmp_path)
