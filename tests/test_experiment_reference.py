"""The realism rewards score against the reference the final evaluation reads (decoded files)."""

from __future__ import annotations

import json

import numpy as np

from omninft_bench import media
from omninft_bench.data import synthav
from omninft_bench.data.layout import write_javisbench
from omninft_bench.media import read_clip
from trainers.experiment import REFERENCE_STAMP, read_reference, write_reference


def test_reference_is_read_back_from_the_written_files(tmp_path) -> None:
    clips = synthav.reference_set(synthav.SynthAVConfig(), 3)
    write_javisbench(tmp_path, clips, total=len(clips))
    got = read_reference(tmp_path)
    assert [c.prompt for c in got] == [c.prompt for c in clips]
    for i, (clip, back) in enumerate(zip(clips, got, strict=True)):
        decoded = read_clip(tmp_path / "samples" / f"sample_{i:04d}.mp4")
        np.testing.assert_array_equal(back.video, decoded.video)
        np.testing.assert_allclose(back.audio, clip.audio, atol=1e-4)  # the wav is exact (16-bit)
    # the codec changes the frames: scoring against the procedural ones would train on another target
    assert max(np.abs(b.video_uint8().astype(int) - c.video_uint8().astype(int)).max() for b, c in zip(got, clips, strict=True)) > 8


def test_reference_folder_is_rewritten_when_its_stamp_changes(tmp_path, monkeypatch) -> None:
    write_reference(tmp_path, 2)
    first = (tmp_path / "prompts.csv").stat().st_mtime_ns
    assert json.loads((tmp_path / REFERENCE_STAMP).read_text())["n"] == 2
    write_reference(tmp_path, 2)  # the stamp matches: left alone
    assert (tmp_path / "prompts.csv").stat().st_mtime_ns == first
    write_reference(tmp_path, 3)  # another size
    assert len(read_reference(tmp_path)) == 3
    third = (tmp_path / "prompts.csv").stat().st_mtime_ns
    # other encoder settings (as when mbtree=0 was introduced): rewritten, not reused
    monkeypatch.setitem(media.H264_OPTIONS, "x264-params", "mbtree=1")
    write_reference(tmp_path, 3)
    assert (tmp_path / "prompts.csv").stat().st_mtime_ns != third
    assert json.loads((tmp_path / REFERENCE_STAMP).read_text())["writer"]["x264-params"] == "mbtree=1"


def test_reference_folder_without_a_stamp_is_rewritten(tmp_path) -> None:
    """A folder written before stamps existed (or by an interrupted rewrite) is not trusted."""
    clips = synthav.reference_set(synthav.SynthAVConfig(), 2)
    write_javisbench(tmp_path, clips, total=2)
    before = (tmp_path / "prompts.csv").stat().st_mtime_ns
    write_reference(tmp_path, 2)
    assert (tmp_path / "prompts.csv").stat().st_mtime_ns != before
    assert (tmp_path / REFERENCE_STAMP).exists()
