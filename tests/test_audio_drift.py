"""``scripts/audio_drift.py``: the envelope and centroid statistics on clips with known values."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from omninft_bench.data.layout import write_javisbench
from omninft_bench.media import AVClip

RATE = 16000
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "audio_drift.py"


@pytest.fixture(scope="module")
def audio_drift():
    spec = importlib.util.spec_from_file_location("audio_drift", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clip(audio: np.ndarray, prompt: str) -> AVClip:
    return AVClip(np.zeros((8, 16, 16, 3), np.uint8), 8.0, audio.astype(np.float32)[None], RATE, prompt)


def _tone(freq: float, bursts: bool) -> np.ndarray:
    t = np.arange(2 * RATE) / RATE
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    if bursts:  # loud for the first 100 ms of every 500 ms, quiet between
        x = x * np.where((t % 0.5) < 0.1, 1.0, 0.05)
    return x


def _folder(root: Path, clips: list[AVClip], realism: list[float]) -> Path:
    write_javisbench(root, clips)
    (root / "eval").mkdir()
    (root / "eval" / "per_sample.jsonl").write_text(
        "".join(json.dumps({"index": i, "audio_realism": v}) + "\n" for i, v in enumerate(realism))
    )
    return root


def test_clip_stats_envelope_and_centroid(tmp_path, audio_drift):
    folder = tmp_path / "clips"
    write_javisbench(folder, [_clip(_tone(1000, False), "steady"), _clip(_tone(2000, True), "bursts"),
                              _clip(np.zeros(2 * RATE), "silence")])
    stats = audio_drift.clip_stats(folder)
    assert stats[0, 0] < 0.05  # a steady tone has a flat envelope
    assert stats[1, 0] > 1.0  # 100 ms bursts every 500 ms: the RMS varies more than its mean
    assert stats[0, 1] == pytest.approx(1000, rel=0.02)
    assert stats[1, 1] == pytest.approx(2000, rel=0.1)  # the gating spreads the tone into sidebands
    assert np.isnan(stats[2]).all()  # a silent clip has neither


def test_main_reports_a_flattened_darker_run(tmp_path, audio_drift, capsys):
    out = tmp_path / "ablation"
    base = [_clip(_tone(f, True), f"p{i}") for i, f in enumerate((1500, 2500, 3000))]
    flat = [_clip(_tone(f * 0.8, False), f"p{i}") for i, f in enumerate((1500, 2500, 3000))]
    _folder(out / "base", base, [0.5, 0.5, 0.5])
    _folder(out / "runs" / "gdpo" / "seed0" / "eval_clips", flat, [0.6, 0.7, 0.5])
    _folder(out / "runs" / "gdpo" / "seed1" / "eval_clips", base, [0.5, 0.5, 0.5])
    assert audio_drift.main([str(out)]) == 0
    text = capsys.readouterr().out
    assert "gdpo seed0" in text and "audio_realism +0.100" in text
    assert "envelope CV: lower than the base in 1 of 2 runs" in text
    assert "centroid: lower than the base in 1 of 2 runs" in text
    with pytest.raises(SystemExit):
        audio_drift.main([str(tmp_path / "missing")])
