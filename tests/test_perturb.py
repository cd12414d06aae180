"""Perturbations: a uniform contract, and ground truth that moves the way the signal really moved."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from omninft_bench.data import synthav
from omninft_bench.data.perturb import AFFECTS, PERTURBATIONS, SEVERITIES, apply_perturbation
from omninft_bench.data.synthav import SynthAVConfig, generate_clip
from omninft_bench.media import AVClip


def band_rise_db(audio: np.ndarray, sr: int, t: float, win: int = 256, hop: int = 80) -> float:
    """Largest rise (dB) of energy in one of four bands from just before ``t`` to just after."""
    n = 1 + (audio.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(audio[idx] * np.hanning(win), axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1 / sr)
    bands = ((50, 300), (300, 1000), (1000, 2500), (2500, 8000))
    db = 10 * np.log10(
        np.stack([spec[:, (freqs >= a) & (freqs < b)].sum(1) for a, b in bands], 1) + 1e-10
    )
    centers = (hop * np.arange(n) + win / 2) / sr
    after = (centers >= t) & (centers <= t + 0.03)
    before = (centers >= t - 0.06) & (centers <= t - 0.012)
    return float(np.max(db[after].max(0) - db[before].mean(0)))


def _clip_with(predicate, cfg: SynthAVConfig | None = None) -> AVClip:
    for i in range(200):
        clip = generate_clip("eval", i, cfg)
        if predicate(clip.meta["gt"]):
            return clip
    raise AssertionError("no clip in the first 200 matches")


@pytest.fixture(scope="module")
def clip() -> AVClip:
    # two sounding objects, ambience: exercises most ground-truth paths
    return _clip_with(lambda gt: len(gt["objects"]) >= 2 and gt["ambience"] is not None)


@pytest.fixture(scope="module")
def lone_knock() -> AVClip:
    """One knock, no ambience: the only onset in the clip."""
    cfg = SynthAVConfig(p_ambience=0.0, p_offscreen=0.0)
    return _clip_with(
        lambda gt: len(gt["audio_events"]) == 1 and gt["audio_events"][0]["kind"] == "knock", cfg
    )


def test_registry_is_complete_and_named_by_function():
    assert set(PERTURBATIONS) == set(SEVERITIES) == set(AFFECTS)
    required = {"audio_shift", "audio_drop_events", "audio_noise", "video_blur", "video_noise"}
    required |= {"video_flicker", "video_freeze", "audio_swap", "prompt_swap"}
    assert required <= set(PERTURBATIONS)
    for name, fn in PERTURBATIONS.items():
        assert fn.__name__ == name and SEVERITIES[name]
        assert AFFECTS[name] in {"audio", "video", "sync", "text"}


def test_unknown_name_suggests_the_closest():
    with pytest.raises(KeyError, match="audio_shift"):
        apply_perturbation("audio_shfit", generate_clip("eval", 0), 0.1)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_contract(name, clip):
    before = copy.deepcopy(clip)
    for severity in SEVERITIES[name]:
        out = apply_perturbation(name, clip, severity, seed=3)
        again = apply_perturbation(name, clip, severity, rng=np.random.default_rng(3))
        assert out.video.shape == clip.video.shape and out.video.dtype == clip.video.dtype
        assert out.audio.shape == clip.audio.shape and out.audio.dtype == np.float32
        assert np.abs(out.audio).max() <= 1.0
        np.testing.assert_array_equal(out.video, again.video)
        np.testing.assert_array_equal(out.audio, again.audio)
        assert out.prompt == again.prompt
        record = out.meta["gt"]["perturbations"][-1]
        assert record["name"] == name and record["severity"] == severity
        json.dumps(out.meta)
    # the input is never modified
    np.testing.assert_array_equal(clip.video, before.video)
    np.testing.assert_array_equal(clip.audio, before.audio)
    assert clip.meta == before.meta and clip.prompt == before.prompt


@pytest.mark.parametrize(
    ("name", "signal"),
    [
        ("audio_noise", "audio"),
        ("video_blur", "video"),
        ("video_noise", "video"),
        ("video_flicker", "video"),
    ],
)
def test_default_severities_increase_the_damage(name, signal, clip):
    ref = getattr(clip, signal).astype(np.float64)
    errors = [
        np.mean((getattr(apply_perturbation(name, clip, s, seed=0), signal) - ref) ** 2)
        for s in SEVERITIES[name]
    ]
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors


@pytest.mark.parametrize("delta", [0.25, -0.25])
def test_audio_shift_moves_the_onset_and_the_ground_truth(delta, lone_knock):
    (event,) = lone_knock.meta["gt"]["audio_events"]
    out = apply_perturbation("audio_shift", lone_knock, delta)
    gt = out.meta["gt"]
    assert gt["offset"] == pytest.approx(delta)
    (moved,) = gt["audio_events"]
    assert moved["t"] == pytest.approx(event["t"] + delta)
    assert gt["visual_events"] == lone_knock.meta["gt"]["visual_events"]
    audio, sr = out.audio_mono(), out.sample_rate
    assert band_rise_db(audio, sr, moved["t"]) > 10.0  # the knock is heard at its new time ...
    assert band_rise_db(audio, sr, event["t"]) < 3.0  # ... and no longer at the old one
    assert np.abs(audio).max() > 0.3


def test_audio_shift_accumulates_and_drops_events_pushed_out(lone_knock):
    (event,) = lone_knock.meta["gt"]["audio_events"]
    out = apply_perturbation("audio_shift", lone_knock, 0.1)
    out = apply_perturbation("audio_shift", out, 0.1)
    assert out.meta["gt"]["offset"] == pytest.approx(0.2)
    gone = apply_perturbation("audio_shift", lone_knock, lone_knock.duration - event["t"] + 0.01)
    assert gone.meta["gt"]["audio_events"] == []
    assert gone.meta["gt"]["removed_audio_events"][0]["reason"] == "shifted out of the clip"
    assert gone.meta["gt"]["visual_events"][0]["audible"] is False
    assert np.abs(gone.audio).max() == 0.0  # padded with silence: this clip has no ambience


def test_audio_shift_pads_with_ambience_when_the_clip_has_some(clip):
    out = apply_perturbation("audio_shift", clip, 0.3)
    head = out.audio[0, : int(0.3 * clip.sample_rate)]
    level = clip.meta["gt"]["ambience"]["level"]
    assert np.sqrt(np.mean(head.astype(np.float64) ** 2)) == pytest.approx(level, rel=0.3)


def test_dropping_every_event_leaves_only_ambience(clip):
    out = apply_perturbation("audio_drop_events", clip, 1.0)
    gt = out.meta["gt"]
    assert gt["audio_events"] == []
    assert len(gt["removed_audio_events"]) == len(clip.meta["gt"]["audio_events"])
    assert not any(v["audible"] for v in gt["visual_events"])
    ambience = synthav.ambience_noise(
        gt["ambience"]["level"], gt["ambience"]["seed"], clip.audio.shape[1]
    )
    np.testing.assert_allclose(out.audio[0], ambience, atol=1e-4)
    for e in clip.meta["gt"]["audio_events"]:  # what rise is left is the ambience's own jitter
        was = band_rise_db(clip.audio_mono(), clip.sample_rate, e["t"])
        assert band_rise_db(out.audio_mono(), clip.sample_rate, e["t"]) < was - 6.0


def test_dropping_some_events_keeps_the_others_audible(clip):
    out = apply_perturbation("audio_drop_events", clip, 0.5, seed=1)
    kept, removed = out.meta["gt"]["audio_events"], out.meta["gt"]["removed_audio_events"]
    assert kept and removed
    assert len(kept) + len(removed) == len(clip.meta["gt"]["audio_events"])
    for e in kept:
        assert band_rise_db(out.audio_mono(), clip.sample_rate, e["t"]) > 6.0


def test_inserted_events_are_audible_and_recorded(lone_knock):
    out = apply_perturbation("audio_insert_events", lone_knock, 2, seed=4)
    events = out.meta["gt"]["audio_events"]
    inserted = [e for e in events if e.get("inserted")]
    assert len(events) == 3 and len(inserted) == 2
    assert all(e["off_screen"] and e["object"] is None for e in inserted)
    for e in inserted:
        assert band_rise_db(out.audio_mono(), out.sample_rate, e["t"]) > 6.0
    assert out.meta["gt"]["categories"]["cat4_ind"].endswith("2")  # now has off-screen sound


def test_audio_noise_hits_the_requested_snr(lone_knock):
    out = apply_perturbation("audio_noise", lone_knock, 10.0, seed=0)
    signal = lone_knock.audio.astype(np.float64)
    noise = out.audio - signal
    snr = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_video_freeze_holds_frames_and_hides_their_events(clip):
    out = apply_perturbation("video_freeze", clip, 0.5, seed=2)
    frames = out.meta["gt"]["perturbations"][-1]["frames"]
    assert len(frames) == 8
    for k in frames:
        np.testing.assert_array_equal(out.video[k], clip.video[frames[0] - 1])
    hidden = out.meta["gt"].get("hidden_visual_events", [])
    assert all(v["frame"] in frames for v in hidden)
    assert all(v["frame"] not in frames for v in out.meta["gt"]["visual_events"])
    n_before = len(clip.meta["gt"]["visual_events"])
    assert len(hidden) + len(out.meta["gt"]["visual_events"]) == n_before
    np.testing.assert_array_equal(out.audio, clip.audio)


def test_audio_swap_takes_the_other_audio_and_its_events(clip, lone_knock):
    out = apply_perturbation("audio_swap", clip, 1.0, other=lone_knock)
    np.testing.assert_allclose(out.audio, lone_knock.audio)
    gt = out.meta["gt"]
    assert gt["offset"] is None
    assert [e["t"] for e in gt["audio_events"]] == [lone_knock.meta["gt"]["audio_events"][0]["t"]]
    assert gt["audio_events"][0]["from_other"] and gt["audio_events"][0]["object"] is None
    half = apply_perturbation("audio_swap", clip, 0.5, other=lone_knock)
    np.testing.assert_allclose(half.audio, 0.5 * clip.audio + 0.5 * lone_knock.audio, atol=1e-6)
    assert len(half.meta["gt"]["audio_events"]) == len(clip.meta["gt"]["audio_events"]) + 1


def test_prompt_swap_and_corrupt(clip, lone_knock):
    out = apply_perturbation("prompt_swap", clip, 1.0, other=lone_knock)
    assert (
        out.prompt == lone_knock.prompt and out.meta["audio_text"] == lone_knock.meta["audio_text"]
    )
    assert out.meta["categories"] == lone_knock.meta["categories"]
    assert out.meta["gt"]["categories"] == clip.meta["gt"]["categories"]  # the content is unchanged
    np.testing.assert_array_equal(out.video, clip.video)
    for k in (1, 3):
        bad = apply_perturbation("prompt_corrupt", clip, k, seed=k)
        edits = bad.meta["gt"]["perturbations"][-1]["edits"]
        assert len(edits) == k and bad.prompt != clip.prompt
        for old, new in edits:
            assert old != new and new in bad.prompt


def test_signal_perturbations_work_without_ground_truth(lone_knock):
    bare = lone_knock.replace(meta={})
    for name in ("audio_shift", "audio_noise", "video_blur", "video_freeze", "audio_insert_events"):
        out = apply_perturbation(name, bare, SEVERITIES[name][0])
        assert "gt" not in out.meta
    with pytest.raises(ValueError, match="ground truth"):
        apply_perturbation("audio_drop_events", bare, 0.5)
