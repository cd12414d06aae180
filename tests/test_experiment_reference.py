"""The realism rewards score against the reference the final evaluation reads (decoded files)."""

from __future__ import annotations

import numpy as np

from omninft_bench.data import synthav
from omninft_bench.data.layout import write_javisbench
from omninft_bench.media import read_clip
from trainers.experiment import read_reference, write_reference


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


def test_reference_folder_is_rewritten_when_its_size_changes(tmp_path) -> None:
    write_reference(tmp_path, 2)
    first = (tmp_path / "prompts.csv").stat().st_mtime_ns
    write_reference(tmp_path, 2)  # already holds 2: left alone
    assert (tmp_path / "prompts.csv").stat().st_mtime_ns == first
    write_reference(tmp_path, 3)
    assert len(read_reference(tmp_path)) == 3
