"""SynthAV: determinism, disjoint splits, and ground truth that the rendered pixels and sound confirm.

The visibility and audibility checks measure the rendered arrays (object centroids from color
masks; band energy rises from an STFT), never the ground truth itself.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from omninft_bench.data import synthav
from omninft_bench.data.layout import CATEGORY_COLUMNS, JAVISBENCH_CATEGORIES
from omninft_bench.data.synthav import SynthAVConfig, generate_clip

BANDS = ((50, 300), (300, 1000), (1000, 2500), (2500, 8000))


def band_db(
    audio: np.ndarray, sr: int, win: int = 256, hop: int = 80
) -> tuple[np.ndarray, np.ndarray]:
    """Energy (dB) per frequency band per STFT frame, and the frame center times."""
    n = 1 + (audio.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(audio[idx] * np.hanning(win), axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1 / sr)
    energy = np.stack([spec[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in BANDS], 1)
    return 10 * np.log10(energy + 1e-10), (hop * np.arange(n) + win / 2) / sr


def rise_db(audio: np.ndarray, sr: int, t: float) -> float:
    """Largest band-energy rise (dB) from just before ``t`` to the 30 ms after it."""
    db, centers = band_db(audio, sr)
    after = (centers >= t) & (centers <= t + 0.03)
    before = (centers >= t - 0.06) & (centers <= t - 0.012)
    return float(np.max(db[after].max(0) - db[before].mean(0)))


def centroid(video: np.ndarray, rgb: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame center (x, y) and mass of the pixels close to ``rgb``."""
    d = np.linalg.norm(video.astype(np.float32) - np.asarray(rgb, np.float32), axis=-1)
    w = np.clip(1 - d / 35, 0, 1)
    mass = w.sum((1, 2))
    ys, xs = np.arange(video.shape[1]) + 0.5, np.arange(video.shape[2]) + 0.5
    y = (w.sum(2) * ys).sum(1) / np.maximum(mass, 1e-9)
    x = (w.sum(1) * xs).sum(1) / np.maximum(mass, 1e-9)
    return x, y, mass


def assert_visible(clip, event: dict) -> None:
    obj = clip.meta["gt"]["objects"][event["object"]]
    x, y, mass = centroid(clip.video, obj["rgb"])
    k = event["frame"]
    kind = event["kind"]
    if kind == "impact":  # moving down into the floor, then not down any more
        ok = y[k] - y[k - 1] > 0.3 and y[k + 1] - y[k] < 0.05
    elif kind == "appear":
        ok = mass[k] > 3 and mass[k - 1] < 0.1 * mass[k]
    elif kind == "vanish":
        ok = mass[k - 1] > 3 and mass[k] < 0.1 * mass[k - 1]
    elif kind == "start":
        ok = abs(x[k] - x[k - 1]) < 0.05 and abs(x[k + 1] - x[k]) > 0.3
    elif kind == "stop":
        ok = abs(x[k] - x[k - 1]) > 0.3 and abs(x[k + 1] - x[k]) < 0.05
    else:
        raise AssertionError(f"unknown visual event kind {kind}")
    assert ok, f"{kind} of object {event['object']} not visible at frame {k}: {clip.prompt}"


@pytest.fixture(scope="module")
def eval_clips():
    return synthav.eval_set(n=96)


def test_clip_format(eval_clips):
    cfg = SynthAVConfig()
    for clip in eval_clips[:8]:
        assert clip.video.dtype == np.uint8 and clip.video.shape == (16, 32, 32, 3)
        assert clip.audio.dtype == np.float32 and clip.audio.shape == (1, 32000)
        assert np.abs(clip.audio).max() <= 1.0
        assert clip.fps == cfg.fps and clip.sample_rate == cfg.sample_rate
        assert clip.prompt and clip.meta["audio_text"]
        json.dumps(clip.meta)  # ground truth must survive ground_truth.jsonl
        assert set(clip.meta["categories"]) == set(CATEGORY_COLUMNS)
        assert clip.meta["gt"]["offset"] == 0.0


def test_same_seed_same_clip_and_different_seed_differs():
    a, b = generate_clip("eval", 5), generate_clip("eval", 5)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.prompt == b.prompt and a.meta == b.meta
    for other in (generate_clip("eval", 6), generate_clip("eval", 5, SynthAVConfig(seed=1))):
        assert not np.array_equal(a.audio, other.audio)
        assert not np.array_equal(a.video, other.video)


def test_splits_and_streams_never_share_seeds():
    clips = {
        "eval": generate_clip("eval", 0),
        "reference": generate_clip("reference", 0),
        "train": generate_clip("train", 0),
        "train stream 1": generate_clip("train", 0, stream=1),
    }
    audios = [c.audio.tobytes() for c in clips.values()]
    assert len(set(audios)) == len(audios)
    assert len(set(synthav.SPLITS.values())) == len(synthav.SPLITS)
    stream = synthav.train_stream(seed=1)
    for i in range(3):
        np.testing.assert_array_equal(next(stream).audio, generate_clip("train", i, stream=1).audio)
    with pytest.raises(ValueError, match="unknown split"):
        generate_clip("test", 0)


def test_every_ground_truth_event_is_visible(eval_clips):
    n_events = 0
    for clip in eval_clips:
        for event in clip.meta["gt"]["visual_events"]:
            assert_visible(clip, event)
            n_events += 1
    assert n_events > 100


def test_every_ground_truth_sound_is_audible(eval_clips):
    for clip in eval_clips:
        audio = clip.audio_mono()
        for e in clip.meta["gt"]["audio_events"]:
            rise = rise_db(audio, clip.sample_rate, e["t"])
            assert rise > 6.0, f"{e['kind']} at {e['t']} s rises only {rise:.1f} dB: {clip.prompt}"
            assert e["t"] + e["dur"] < clip.duration  # events lie fully inside the clip


def test_sounds_sit_on_their_visual_events(eval_clips):
    for clip in eval_clips:
        gt = clip.meta["gt"]
        audible = {(v["object"], v["frame"]) for v in gt["visual_events"] if v["audible"]}
        on_screen = [e for e in gt["audio_events"] if not e["off_screen"]]
        assert {(e["object"], round(e["t"] * clip.fps)) for e in on_screen} == audible
        for e in gt["audio_events"]:
            assert (e["object"] is None) == e["off_screen"]


def test_silence_where_nothing_happens():
    """No event and no ambience -> the audio between events is exactly silent."""
    cfg = SynthAVConfig(p_ambience=0.0, p_offscreen=0.0, max_objects=1)
    clip = generate_clip("eval", 1, cfg)
    first = min(e["t"] for e in clip.meta["gt"]["audio_events"])
    assert np.abs(clip.audio[0, : int(first * cfg.sample_rate)]).max() == 0.0


def test_prompt_names_what_is_there(eval_clips):
    for clip in eval_clips:
        gt = clip.meta["gt"]
        for o in gt["objects"]:
            assert f"a {o['size']} {o['color']} {o['shape']}" in clip.prompt
            if o["sound"]:
                assert re.search(rf"\b{o['pitch']}\b", clip.prompt)
                assert o["sound"] in clip.meta["audio_text"]
        if any(e["off_screen"] for e in gt["audio_events"]):
            assert "off-screen" in clip.prompt or "unseen" in clip.prompt
        assert (gt["ambience"] is not None) == ("noise" in clip.meta["audio_text"])


def test_categories_follow_the_content(eval_clips):
    seen = {c: set() for c in CATEGORY_COLUMNS}
    for clip in eval_clips:
        cats, gt = clip.meta["categories"], clip.meta["gt"]
        assert cats == gt["categories"] == synthav.categories_for_gt(gt)
        for column, cell in cats.items():
            indices = [int(i) for i in cell.split(",")]
            assert indices == sorted(set(indices))
            assert all(0 <= i < len(JAVISBENCH_CATEGORIES[column]) for i in indices)
            seen[column].update(indices)
        n_sounds = len(gt["audio_events"])
        assert ("0" in cats["cat3_ind"].split(",")) == (n_sounds == 1)
        off = any(e["off_screen"] for e in gt["audio_events"])
        assert ("2" in cats["cat4_ind"].split(",")) == off
    # every temporal and spatial composition, and all SynthAV sound types, occur in 96 clips
    assert seen["cat3_ind"] == {0, 1, 2} and seen["cat4_ind"] == {0, 1, 2}
    assert seen["cat2_ind"] == {0, 2, 3}


def test_other_geometry_and_rate():
    cfg = SynthAVConfig(height=48, width=64, fps=24.0, duration=3.0, sample_rate=22050)
    for i in range(6):
        clip = generate_clip("train", i, cfg)
        assert clip.video.shape == (72, 48, 64, 3)
        assert clip.audio.shape == (1, 66150)
        for event in clip.meta["gt"]["visual_events"]:
            assert_visible(clip, event)
        for e in clip.meta["gt"]["audio_events"]:
            assert rise_db(clip.audio_mono(), clip.sample_rate, e["t"]) > 6.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"duration": 0.5}, "duration"),
        ({"height": 8}, "16x16"),
        ({"p_ambience": 2.0}, "p_ambience"),
    ],
)
def test_config_validation_names_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        SynthAVConfig(**overrides)


def test_resynthesized_events_rebuild_the_audio(eval_clips):
    """The gt holds enough to re-synthesize each event exactly (what perturbations rely on)."""
    for clip in eval_clips[:16]:
        gt = clip.meta["gt"]
        rebuilt = synthav.render_audio(
            gt["audio_events"], gt["ambience"], clip.audio.shape[1], clip.sample_rate
        )
        np.testing.assert_allclose(rebuilt, clip.audio[0], atol=2e-5)
