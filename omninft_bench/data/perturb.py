"""Graded perturbations of a clip, with the ground truth moved the way the perturbation claims.

Each perturbation is ``fn(clip, severity, *, rng, other=None) -> AVClip``; it never modifies its
input.  ``severity`` is in the perturbation's own unit (seconds, dB, pixels, a fraction, a count)
and :data:`SEVERITIES` lists default values in order of increasing damage, for the
metric-validity sweep.  Call any of them through :func:`apply_perturbation`.

Ground truth.  On a SynthAV clip (``clip.meta["gt"]``) the returned clip carries an updated copy:
event times shifted, dropped events moved to ``gt["removed_audio_events"]``, frozen-over visual
events moved to ``gt["hidden_visual_events"]``, ``gt["offset"]`` accumulated, content categories
recomputed, and a ``{"name", "severity", ...}`` record appended to ``gt["perturbations"]``.
Signal-level perturbations also work on clips without ground truth (a generator's output);
those that need to know the events (``audio_drop_events``) raise ``ValueError`` there.

``other``: the clip whose audio or prompt ``audio_swap`` / ``prompt_swap`` borrow.  When it is
``None`` a fresh SynthAV clip of the same geometry is drawn from ``rng``.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from omninft_bench.data import synthav
from omninft_bench.media import AVClip

__all__ = ["AFFECTS", "PERTURBATIONS", "SEVERITIES", "apply_perturbation"]

Perturbation = Callable[..., AVClip]

PERTURBATIONS: dict[str, Perturbation] = {}
SEVERITIES: dict[str, tuple[float, ...]] = {}
# What a perturbation damages: "audio", "video", "sync" (the AV relation only) or "text".
AFFECTS: dict[str, str] = {}


def _register(
    severities: tuple[float, ...], affects: str
) -> Callable[[Perturbation], Perturbation]:
    def wrap(fn: Perturbation) -> Perturbation:
        name = fn.__name__
        if name in PERTURBATIONS:
            raise ValueError(f"perturbation {name!r} is registered twice")
        PERTURBATIONS[name], SEVERITIES[name], AFFECTS[name] = fn, tuple(severities), affects
        return fn

    return wrap


def apply_perturbation(
    name: str,
    clip: AVClip,
    severity: float,
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    other: AVClip | None = None,
) -> AVClip:
    """Apply the registered perturbation ``name``; ``rng`` wins over ``seed`` (default seed 0)."""
    if name not in PERTURBATIONS:
        close = difflib.get_close_matches(name, PERTURBATIONS, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise KeyError(f"unknown perturbation {name!r}.{hint} Known: {', '.join(PERTURBATIONS)}")
    if rng is None:
        rng = np.random.default_rng(0 if seed is None else seed)
    return PERTURBATIONS[name](clip, severity, rng=rng, other=other)


# --------------------------------------------------------------------------- helpers


def _start(
    clip: AVClip, name: str, severity: float, **details: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A deep copy of the metadata and its gt (or None), with the perturbation recorded."""
    meta = copy.deepcopy(clip.meta)
    gt = meta.get("gt")
    if gt is not None:
        gt.setdefault("perturbations", []).append(
            {"name": name, "severity": float(severity), **details}
        )
    return meta, gt


def _need_audio(clip: AVClip, name: str) -> np.ndarray:
    if clip.audio is None or not clip.sample_rate:
        raise ValueError(f"{name} needs a clip with audio; this clip has none")
    return clip.audio.astype(np.float32)


def _video_out(clip: AVClip, video: np.ndarray) -> np.ndarray:
    """Back to the input's dtype: uint8 stays uint8, float stays float in [0, 1]."""
    video = np.clip(video, 0.0, 1.0)
    if clip.video.dtype == np.uint8:
        return (video * 255.0 + 0.5).astype(np.uint8)
    return video.astype(np.float32)


def _recategorize(gt: dict[str, Any]) -> None:
    gt["categories"] = synthav.categories_for_gt(gt)


def _remove_event(gt: dict[str, Any], event: dict[str, Any], reason: str) -> None:
    gt["audio_events"].remove(event)
    gt.setdefault("removed_audio_events", []).append(dict(event, reason=reason))
    # The visual cause still happens, now in silence.
    for v in gt["visual_events"]:
        if (
            v["object"] == event.get("object")
            and abs(v["t"] + (gt.get("offset") or 0.0) - event["t"]) < 1e-6
        ):
            v["audible"] = False


def _other_clip(clip: AVClip, rng: np.random.Generator) -> AVClip:
    """A fresh SynthAV clip with this clip's geometry (for swaps without an explicit partner)."""
    cfg = synthav.SynthAVConfig(
        seed=int(rng.integers(2**31)),
        duration=clip.duration,
        height=clip.video.shape[1],
        width=clip.video.shape[2],
        fps=clip.fps,
        sample_rate=clip.sample_rate or 16000,
    )
    return synthav.render_scene(synthav.sample_scene(rng, cfg), cfg)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


# --------------------------------------------------------------------------- audio


@_register((0.1, 0.2, 0.4, 0.8), "sync")
def audio_shift(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Shift the audio by ``severity`` seconds (positive: audio lags), keeping its length.

    The uncovered end is filled with fresh ambience at the clip's ambience level (silence when
    there is none), so the gap itself is not a cue.  Events pushed out of the clip move to
    ``removed_audio_events``; ``gt["offset"]`` grows by the shift rounded to whole samples.
    """
    audio = _need_audio(clip, "audio_shift")
    sr = int(clip.sample_rate)
    d = int(round(severity * sr))
    delta = d / sr
    meta, gt = _start(clip, "audio_shift", severity, samples=d)
    channels, n = audio.shape
    d = max(-n, min(n, d))
    fill = np.zeros(abs(d))
    if gt is not None and gt.get("ambience"):
        fill = synthav.ambience_noise(gt["ambience"]["level"], int(rng.integers(2**31)), abs(d))
    out = np.empty_like(audio)
    if d >= 0:
        out[:, d:] = audio[:, : n - d]
        out[:, :d] = fill
    else:
        out[:, : n + d] = audio[:, -d:]
        out[:, n + d :] = fill
    if gt is not None:
        for e in gt["audio_events"]:
            e["t"] = round(e["t"] + delta, 6)
        gt["offset"] = round((gt.get("offset") or 0.0) + delta, 6)
        length = n / sr
        for e in [e for e in gt["audio_events"] if e["t"] >= length or e["t"] + e["dur"] <= 0]:
            _remove_event(gt, e, "shifted out of the clip")
        _recategorize(gt)
    return clip.replace(audio=np.clip(out, -1.0, 1.0), meta=meta)


@_register((0.25, 0.5, 0.75, 1.0), "audio")
def audio_drop_events(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Silence a fraction ``severity`` of the audio events (at least one when ``severity > 0``).

    Each event is subtracted exactly (re-synthesized from its ground truth), so the rest of the
    mix, ambience and any earlier noise included, is untouched.
    """
    audio = _need_audio(clip, "audio_drop_events")
    meta, gt = _start(clip, "audio_drop_events", severity)
    if gt is None:
        raise ValueError(
            "audio_drop_events needs SynthAV ground truth (clip.meta['gt']) to find the events"
        )
    events = gt["audio_events"]
    k = min(len(events), math.ceil(severity * len(events) - 1e-9)) if severity > 0 else 0
    chosen = (
        [events[i] for i in sorted(rng.choice(len(events), size=k, replace=False))] if k else []
    )
    out = audio.astype(np.float64)
    for e in chosen:
        for c in range(out.shape[0]):
            synthav.add_event(out[c], e, int(clip.sample_rate), sign=-1.0)
        _remove_event(gt, e, "dropped")
    gt["perturbations"][-1]["dropped"] = len(chosen)
    _recategorize(gt)
    return clip.replace(audio=np.clip(out, -1.0, 1.0).astype(np.float32), meta=meta)


@_register((1, 2, 4, 8), "audio")
def audio_insert_events(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Add ``severity`` spurious knocks or beeps with no visible cause, at random times."""
    audio = _need_audio(clip, "audio_insert_events")
    sr = int(clip.sample_rate)
    meta, gt = _start(clip, "audio_insert_events", severity)
    length = audio.shape[1] / sr
    out = audio.astype(np.float64)
    for _ in range(int(severity)):
        kind, size = str(rng.choice(["knock", "beep"])), str(rng.choice(synthav.SIZES))
        dur = synthav.KNOCK_DUR[size] if kind == "knock" else synthav.FLASH_ON_S
        event = {
            "t": round(float(rng.uniform(0.1, max(0.1, length - dur - 0.05))), 6),
            "kind": kind,
            "object": None,
            "off_screen": True,
            "size": size,
            "freq": synthav.FREQ[kind][size],
            "dur": dur,
            "amp": round(synthav.AMP[kind] * float(rng.uniform(0.8, 1.0)), 6),
            "seed": int(rng.integers(2**31)),
            "inserted": True,
        }
        for c in range(out.shape[0]):
            synthav.add_event(out[c], event, sr)
        if gt is not None:
            gt["audio_events"].append(event)
    if gt is not None:
        gt["audio_events"].sort(key=lambda e: e["t"])
        _recategorize(gt)
    return clip.replace(audio=np.clip(out, -1.0, 1.0).astype(np.float32), meta=meta)


@_register((20.0, 10.0, 0.0, -10.0), "audio")
def audio_noise(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Add white Gaussian noise at an SNR of ``severity`` dB relative to the clip's mean power."""
    audio = _need_audio(clip, "audio_noise")
    meta, _ = _start(clip, "audio_noise", severity)
    power = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-8
    noise = rng.standard_normal(audio.shape) * math.sqrt(power / 10 ** (severity / 10))
    return clip.replace(audio=np.clip(audio + noise, -1.0, 1.0).astype(np.float32), meta=meta)


@_register((0.25, 0.5, 0.75, 1.0), "sync")
def audio_swap(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Crossfade toward another clip's audio: ``(1 - s) * own + s * other``; ``s = 1`` replaces it.

    Ground truth: own events keep their times with amplitudes scaled by ``1 - s`` (removed at
    ``s = 1``), the other's events join with ``from_other`` and no visible object; the offset
    becomes ``None`` at ``s = 1`` (the audio no longer belongs to this video).
    """
    audio = _need_audio(clip, "audio_swap")
    other = other if other is not None else _other_clip(clip, rng)
    if other.audio is None or other.sample_rate != clip.sample_rate:
        raise ValueError(
            f"audio_swap needs an other clip with audio at {clip.sample_rate} Hz, got "
            f"{'no audio' if other.audio is None else f'{other.sample_rate} Hz'}"
        )
    s = float(np.clip(severity, 0.0, 1.0))
    theirs = _fit_length(other.audio.astype(np.float32), audio.shape[1])
    if theirs.shape[0] != audio.shape[0]:
        theirs = np.broadcast_to(theirs.mean(axis=0, keepdims=True), audio.shape)
    meta, gt = _start(clip, "audio_swap", severity, other=other.meta.get("id"))
    mixed = (1.0 - s) * audio + s * theirs
    if gt is not None:
        for e in list(gt["audio_events"]):
            if s >= 1.0:
                _remove_event(gt, e, "swapped out")
            else:
                e["amp"] = round(e["amp"] * (1.0 - s), 6)
        other_gt = other.meta.get("gt") or {}
        for e in other_gt.get("audio_events", []):
            gt["audio_events"].append(
                dict(e, amp=round(e["amp"] * s, 6), object=None, off_screen=True, from_other=True)
            )
        gt["audio_events"].sort(key=lambda e: e["t"])
        if s >= 1.0:
            gt["ambience"] = other_gt.get("ambience")
            gt["offset"] = None
        _recategorize(gt)
    return clip.replace(audio=np.clip(mixed, -1.0, 1.0).astype(np.float32), meta=meta)


# --------------------------------------------------------------------------- video


@_register((0.5, 1.0, 2.0, 4.0), "video")
def video_blur(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Gaussian blur of every frame with standard deviation ``severity`` pixels."""
    meta, _ = _start(clip, "video_blur", severity)
    frames = clip.video_float()
    if severity > 0:
        frames = np.stack(
            [
                cv2.GaussianBlur(f, (0, 0), sigmaX=float(severity), borderType=cv2.BORDER_REFLECT)
                for f in frames
            ]
        )
    return clip.replace(video=_video_out(clip, frames), meta=meta)


@_register((0.02, 0.05, 0.1, 0.2), "video")
def video_noise(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Add i.i.d. Gaussian pixel noise with standard deviation ``severity`` (on the [0, 1] scale)."""
    meta, _ = _start(clip, "video_noise", severity)
    frames = clip.video_float()
    return clip.replace(
        video=_video_out(clip, frames + severity * rng.standard_normal(frames.shape)), meta=meta
    )


@_register((0.05, 0.1, 0.2, 0.4), "video")
def video_flicker(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Scale each frame's brightness by ``1 + severity * u_t``, ``u_t`` uniform in [-1, 1]."""
    gains = 1.0 + severity * rng.uniform(-1.0, 1.0, clip.num_frames)
    meta, _ = _start(clip, "video_flicker", severity, gains=[round(float(g), 4) for g in gains])
    frames = clip.video_float() * gains[:, None, None, None].astype(np.float32)
    return clip.replace(video=_video_out(clip, frames), meta=meta)


@_register((0.125, 0.25, 0.5, 0.75), "video")
def video_freeze(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Freeze a random run of ``round(severity * T)`` frames on the frame before it (a stall).

    Visual events inside the frozen run can no longer be seen: they move to
    ``gt["hidden_visual_events"]``; object tracks hold still over the run, like the pixels.
    """
    T = clip.num_frames
    m = min(T - 1, int(round(severity * T)))
    if m <= 0:
        meta, _ = _start(clip, "video_freeze", severity, frames=[])
        return clip.replace(meta=meta)
    k0 = int(rng.integers(1, T - m + 1))
    frozen = list(range(k0, k0 + m))
    meta, gt = _start(clip, "video_freeze", severity, frames=frozen)
    video = clip.video.copy()
    video[k0 : k0 + m] = video[k0 - 1]
    if gt is not None:
        hidden = [v for v in gt["visual_events"] if k0 <= v["frame"] < k0 + m]
        gt["visual_events"] = [v for v in gt["visual_events"] if v not in hidden]
        gt.setdefault("hidden_visual_events", []).extend(hidden)
        for o in gt["objects"]:
            for key in ("x", "y", "visible"):
                track = o["track"][key]
                track[k0 : k0 + m] = [track[k0 - 1]] * m
    return clip.replace(video=video, meta=meta)


# --------------------------------------------------------------------------- text


@_register((1.0,), "text")
def prompt_swap(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Replace the prompt, audio caption and prompt categories with another clip's.

    All-or-nothing: ``severity`` is recorded but has no effect (see ``prompt_corrupt`` for a
    graded version).  ``gt["categories"]`` keeps describing the content.
    """
    other = other if other is not None else _other_clip(clip, rng)
    meta, _ = _start(clip, "prompt_swap", severity, other=other.meta.get("id"))
    meta["audio_text"] = other.meta.get("audio_text", "")
    meta["categories"] = dict(other.meta.get("categories", {}))
    return clip.replace(prompt=other.prompt, meta=meta)


_WORD_CLASSES: tuple[tuple[str, ...], ...] = (
    tuple(synthav.COLORS),
    synthav.SHAPES,
    synthav.SIZES,
    tuple(synthav.PITCH.values()),
    ("knock", "beep", "hum"),
)


@_register((1, 2, 3, 4), "text")
def prompt_corrupt(
    clip: AVClip, severity: float, *, rng: np.random.Generator, other: AVClip | None = None
) -> AVClip:
    """Replace ``severity`` distinct attribute words (color, shape, size, pitch, sound kind).

    The same substitution is applied to the prompt and the audio caption, so the prompt stays
    fluent but describes a scene that is not there; the edits go into the perturbation record.
    """
    text, audio_text = clip.prompt, str(clip.meta.get("audio_text", ""))
    present = []
    for words in _WORD_CLASSES:
        for w in words:
            if re.search(rf"\b{re.escape(w)}s?\b", text):
                present.append((w, words))
    k = min(int(severity), len(present))
    edits = []
    for i in rng.permutation(len(present))[:k]:
        word, words = present[int(i)]
        choices = [c for c in words if c != word and not re.search(rf"\b{re.escape(c)}s?\b", text)]
        if not choices:
            continue
        new = str(rng.choice(choices))
        pattern = re.compile(rf"\b{re.escape(word)}(s?)\b")
        text = pattern.sub(lambda m, new=new: new + m.group(1), text)
        audio_text = pattern.sub(lambda m, new=new: new + m.group(1), audio_text)
        edits.append([word, new])
    meta, _ = _start(clip, "prompt_corrupt", severity, edits=edits)
    meta["audio_text"] = audio_text
    return clip.replace(prompt=text, meta=meta)
