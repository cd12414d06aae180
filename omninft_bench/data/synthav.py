"""SynthAV: procedural audio-video clips whose sounds are caused by visible events, with ground truth.

The pixels and sounds are synthetic; the structure is what matters: every sound has a cause on
screen (or is declared off-screen), every cause sits on a known frame, and the prompt says what
happens.  That ground truth lets tests prove a metric measures what it claims (does a sync metric
see a 0.2 s audio delay? does FAD move when the knocks vanish?).

Scene grammar
-------------
A scene is 1..``max_objects`` objects (shape x color x size; colors are distinct within a scene)
over a plain background with a grey floor band, plus optional off-screen sounds and ambience::

    object   = size {small, medium, large} x color {red, green, ...} x shape {ball, square, triangle}
    motion   = bounce  falls from rest at t=0, hits the floor 2-3 times, comes to rest  -> knock per impact
             | drop    falls from rest at t=0, lands once and stays                       -> one knock
             | slide   rests on the floor, slides left/right between two times             -> hum while moving
             | flash   invisible; appears for a moment 1-3 times                           -> beep per appearance
             | static  sits on the floor (a silent distractor; never the only object)
    extras   = off-screen knock or beep (no visible cause) | low ambience (lowpassed noise)

Pitch follows size (small = high, large = low) for every sound kind, so "a small ... high knock"
is faithful.  Sound onsets lie on the video frame grid (``t = k / fps``): an impact is the frame
where the object touches the floor, an appearance the first frame it is visible, a slide's hum
starts on the first frame of motion.  Distinct onsets are at least ``max(2 frames, 0.2 s)``
apart, or exactly simultaneous; every event starts after 0.2 s and ends before the clip does.
Objects never overlap on screen, so each object's pixels are its own.

Ground truth (``clip.meta["gt"]``, JSON-serialisable)
-----------------------------------------------------
``objects``: per object ``id, shape, color, rgb, size, radius, motion, count, direction, sound,
pitch, freq`` and ``track`` (per-frame center ``x``, ``y`` in pixels and ``visible``);
``visual_events``: ``{t, frame, kind, object, audible}`` with kind impact | start | stop | appear |
vanish (``audible``: a sound starts there); ``audio_events``: ``{t, kind, object, off_screen, freq,
dur, amp, seed}`` with kind knock | beep | hum (``object`` is ``None`` off-screen) - enough to
re-synthesize each event exactly (:func:`synth_event`), which is how perturbations remove one;
``ambience``: ``{level, seed}`` or ``None``; ``offset``: the planted AV offset in seconds
(0.0 for clean clips; positive = audio lags, see ``media``); ``categories``: JavisBench
categories of the content; ``perturbations``: what has been applied; ``split, stream, index,
seed``: where the clip came from.  ``clip.meta`` also carries ``audio_text`` (the audio caption)
and ``categories`` (of the prompt; equal to ``gt["categories"]`` for clean clips).

JavisBench categories (``layout.JAVISBENCH_CATEGORIES``, 0-based): scenario is always "virtual" (4)
and style "2D-animate" (1); sound type: knock and hum are "mechanical" (2), a beep is a pitched
tone, "musical" (3), ambience "ambient" (0); temporal: one sound = single, disjoint sounds =
sequential, overlapping sounds = simultaneous (both may apply); spatial: one or several visible
objects, plus "off-screen sound" when an off-screen event exists.

Splits
------
Clip ``i`` of a split draws from ``SeedSequence(cfg.seed, spawn_key=(split, stream, i))``: the
train stream (split 0, unbounded, one ``stream`` per worker), the eval prompt set (split 1) and the
reference set for FAD/FVD statistics (split 2) never share a seed.

Run ``python -m omninft_bench.data.synthav split=eval n=256 out=DIR`` to write a JavisBench folder
(see :mod:`omninft_bench.data.layout`); ``--help`` lists every generator parameter.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import lfilter

from omninft_bench.config import CommonConfig, option, parse_cli
from omninft_bench.media import AVClip

__all__ = [
    "SynthAVConfig",
    "Scene",
    "SceneObject",
    "SPLITS",
    "categories_for_gt",
    "eval_set",
    "generate_clip",
    "iter_split",
    "num_frames",
    "num_samples",
    "reference_set",
    "render_audio",
    "render_scene",
    "sample_scene",
    "synth_event",
    "train_stream",
]

GT_VERSION = 1
SPLITS = {"train": 0, "eval": 1, "reference": 2}

SHAPES = ("ball", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 185, 70),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "white": (240, 240, 240),
    "orange": (250, 140, 20),
    "purple": (155, 60, 210),
    "cyan": (40, 210, 220),
}
# Background names avoid object color words so prompt edits can't hit them by accident.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 14),
    "navy": (16, 22, 66),
    "charcoal": (48, 46, 52),
}
FLOOR_RGB = (128, 128, 128)
SIZES = ("small", "medium", "large")
RADIUS = {"small": 0.08, "medium": 0.11, "large": 0.15}  # fraction of frame height
PITCH = {"small": "high", "medium": "mid-pitched", "large": "low"}
FREQ = {
    "knock": {"small": 1600.0, "medium": 900.0, "large": 450.0},
    "beep": {"small": 1320.0, "medium": 880.0, "large": 587.0},
    "hum": {"small": 220.0, "medium": 150.0, "large": 100.0},
}
AMP = {"knock": 0.6, "beep": 0.3, "hum": 0.2}
KNOCK_DUR = {"small": 0.125, "medium": 0.175, "large": 0.25}  # 5 decay constants
MOTIONS = ("bounce", "drop", "slide", "flash", "static")
SOUND_OF = {"bounce": "knock", "drop": "knock", "slide": "hum", "flash": "beep", "static": None}
SOUND_TYPE = {"knock": 2, "hum": 2, "beep": 3}  # JavisBench cat2 indices

FLOOR_FRACTION = 0.82  # floor band starts at this fraction of the height
MIN_SEP_S = 0.2  # distinct onsets at least this far apart (and 2 frames)
EARLIEST_S = 0.2  # room before the first onset to measure a rise in energy
TAIL_S = 0.1  # every event ends this long before the clip does
FLASH_ON_S = 0.25  # a flash stays visible this long
BEEP_S = 0.15  # shorter than a flash, so back-to-back beeps are separated by silence
SAME_KIND_GAP_S = 0.08  # a sound never starts while (or just after) one of its kind plays
MIN_HOP_PX = 1.0
TRIES = 40  # draws per motion sampler
PLACE_TRIES = 12  # motions tried against the scene so far


@dataclass
class SynthAVConfig:
    """Generator parameters; every split and clip is a pure function of these and the index."""

    seed: int = option(
        0, "base seed; the train/eval/reference splits derive disjoint seeds from it"
    )
    duration: float = option(2.0, "clip length in seconds (>= 1.0)")
    height: int = option(32, "frame height in pixels")
    width: int = option(32, "frame width in pixels")
    fps: float = option(8.0, "video frame rate; sound onsets sit on this frame grid")
    sample_rate: int = option(16000, "audio sample rate in Hz (mono)")
    max_objects: int = option(3, "most visible objects in a scene (1..4)")
    p_offscreen: float = option(0.2, "probability that a scene has an off-screen sound")
    p_ambience: float = option(0.5, "probability that a scene has background ambience")
    p_simultaneous: float = option(
        0.3, "probability that a further sound starts together with an earlier one"
    )
    ambience_level: float = option(0.015, "RMS level of the background ambience")

    def __post_init__(self) -> None:
        problems = []
        if self.duration < 1.0:
            problems.append(
                f"duration={self.duration} is below 1.0 s: too short for an event with margins"
            )
        if self.height < 16 or self.width < 16:
            problems.append(
                f"frame {self.height}x{self.width} is below 16x16: objects would be sub-pixel"
            )
        if self.duration * self.fps < 10:
            problems.append(
                f"duration*fps = {self.duration * self.fps:g} frames; need >= 10 (raise fps or duration)"
            )
        if self.sample_rate < 8000:
            problems.append(
                f"sample_rate={self.sample_rate} is below 8000 Hz: the 1.6 kHz knock would alias"
            )
        if not 1 <= self.max_objects <= 4:
            problems.append(
                f"max_objects={self.max_objects}; use 1..4 (more do not fit without overlap)"
            )
        for name in ("p_offscreen", "p_ambience", "p_simultaneous"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} is not a probability in [0, 1]")
        if problems:
            raise ValueError("invalid SynthAVConfig: " + "; ".join(problems))


def num_frames(cfg: SynthAVConfig) -> int:
    return int(round(cfg.duration * cfg.fps))


def num_samples(cfg: SynthAVConfig) -> int:
    return int(round(cfg.duration * cfg.sample_rate))


# --------------------------------------------------------------------------- scene


@dataclass
class SceneObject:
    """One on-screen object with its per-frame track (center in pixels, visibility)."""

    shape: str
    color: str
    size: str
    motion: str
    radius: float
    x: np.ndarray  # [T] float
    y: np.ndarray  # [T] float
    visible: np.ndarray  # [T] bool
    count: int = 0  # sounding events: impacts, appearances, 1 for slide/drop
    direction: str | None = None  # "left"/"right" for slides and drifting bounces

    @property
    def sound(self) -> str | None:
        return SOUND_OF[self.motion]


@dataclass
class Scene:
    """Everything :func:`render_scene` needs, plus the prompt texts."""

    background: str
    objects: list[SceneObject]
    visual_events: list[dict[str, Any]]
    audio_events: list[dict[str, Any]]
    ambience: dict[str, Any] | None
    text: str = ""
    audio_text: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # split/stream/index/seed for the gt


_Sound = tuple[int, float, str]  # (onset frame, duration s, kind)


@dataclass
class _Candidate:
    """A sampled motion before it is accepted into the scene."""

    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray
    visual: list[tuple[int, str, bool]]  # (frame, kind, audible)
    sounds: list[tuple[int, float]]  # (onset frame, duration s)
    count: int
    direction: str | None = None


class _Grid:
    """Frame-grid and floor geometry shared by the motion samplers."""

    def __init__(self, cfg: SynthAVConfig):
        self.cfg = cfg
        self.fps = cfg.fps
        self.T = num_frames(cfg)
        self.t = np.arange(self.T) / cfg.fps
        self.H, self.W = cfg.height, cfg.width
        self.floor_y = FLOOR_FRACTION * cfg.height
        self.sep = max(2, math.ceil(MIN_SEP_S * cfg.fps - 1e-9))
        self.first = max(2, math.ceil(EARLIEST_S * cfg.fps - 1e-9))

    def frames(self, seconds: float, minimum: int) -> int:
        return max(minimum, int(round(seconds * self.fps)))

    def onset_ok(self, k: int, dur: float) -> bool:
        end_limit = self.cfg.duration - max(TAIL_S, 1.0 / self.fps)
        return self.first <= k <= self.T - 2 and k / self.fps + dur <= end_limit + 1e-9

    def rest_y(self, r: float) -> float:
        return self.floor_y - r

    def x_range(self, r: float) -> tuple[float, float]:
        return r + 0.5, self.W - r - 0.5


def _radius(cfg: SynthAVConfig, size: str) -> float:
    return RADIUS[size] * cfg.height


def _sample_bounce(
    rng: np.random.Generator, g: _Grid, size: str, first_at: int | None
) -> _Candidate | None:
    r = _radius(g.cfg, size)
    dur = KNOCK_DUR[size]
    for _ in range(TRIES):
        n = int(rng.choice([2, 3]))
        fall = first_at if first_at is not None else g.frames(rng.uniform(0.3, 0.7), 3)
        gap = g.frames(rng.uniform(0.35, 0.6), 3)
        gap = min(gap, 2 * fall - 1)  # later arcs stay below the drop height
        e = rng.uniform(0.7, 0.9)
        impacts = [fall]
        for _ in range(n - 1):
            impacts.append(impacts[-1] + max(3, gap))
            gap = int(round(gap * e))
        if fall < 3 or not all(g.onset_ok(k, dur) for k in impacts):
            continue
        ts = np.array(impacts) / g.fps
        height = np.zeros(g.T)
        t = g.t
        before = t < ts[0]
        height[before] = 0.5 * (ts[0] ** 2 - t[before] ** 2)
        for a, b in zip(ts[:-1], ts[1:], strict=True):
            arc = (t > a) & (t < b)
            height[arc] = 0.5 * (t[arc] - a) * (b - t[arc])
        lo, hi = g.x_range(r)
        avail = g.rest_y(r) - (r + 0.5)
        height *= rng.uniform(0.6, 1.0) * avail / height.max()  # gravity scaled to fit the frame
        # A hop lower than MIN_HOP_PX next to an impact would make the bounce invisible.
        near = [k + d for k in impacts for d in (-1, 1) if k + d <= impacts[-1]]
        if height[near].min() < MIN_HOP_PX:
            continue
        drift = int(rng.integers(-1, 2))
        span = rng.uniform(0.15, 0.35) * g.W * drift
        x0 = rng.uniform(lo - min(span, 0), hi - max(span, 0))
        x = x0 + span * np.minimum(t / ts[-1], 1.0)
        return _Candidate(
            x=x,
            y=g.rest_y(r) - height,
            visible=np.ones(g.T, bool),
            visual=[(k, "impact", True) for k in impacts],
            sounds=[(k, dur) for k in impacts],
            count=n,
            direction={-1: "left", 0: None, 1: "right"}[drift],
        )
    return None


def _sample_drop(
    rng: np.random.Generator, g: _Grid, size: str, first_at: int | None
) -> _Candidate | None:
    r = _radius(g.cfg, size)
    dur = KNOCK_DUR[size]
    for _ in range(TRIES):
        land = first_at if first_at is not None else g.frames(rng.uniform(0.3, 1.3), 3)
        if land < 3 or not g.onset_ok(land, dur):
            continue
        tl = land / g.fps
        height = 0.5 * np.clip(tl**2 - g.t**2, 0.0, None)
        height *= rng.uniform(0.5, 1.0) * (g.rest_y(r) - (r + 0.5)) / height.max()
        lo, hi = g.x_range(r)
        return _Candidate(
            x=np.full(g.T, rng.uniform(lo, hi)),
            y=g.rest_y(r) - height,
            visible=np.ones(g.T, bool),
            visual=[(land, "impact", True)],
            sounds=[(land, dur)],
            count=1,
        )
    return None


def _sample_slide(
    rng: np.random.Generator, g: _Grid, size: str, first_at: int | None
) -> _Candidate | None:
    r = _radius(g.cfg, size)
    lo, hi = g.x_range(r)
    for _ in range(TRIES):
        start = first_at if first_at is not None else int(rng.integers(g.first, g.T - 3))
        stop = start + g.frames(rng.uniform(0.5, 1.2), 3)
        dur = (stop - start) / g.fps
        if stop > g.T - 2 or not g.onset_ok(start, dur):
            continue
        distance = rng.uniform(0.35, 0.7) * (hi - lo)
        sign = 1 if rng.random() < 0.5 else -1
        x0 = rng.uniform(lo, hi - distance) if sign > 0 else rng.uniform(lo + distance, hi)
        progress = np.clip((np.arange(g.T) - start) / (stop - start), 0.0, 1.0)
        return _Candidate(
            x=x0 + sign * distance * progress,
            y=np.full(g.T, g.rest_y(r)),
            visible=np.ones(g.T, bool),
            visual=[(start, "start", True), (stop, "stop", False)],
            sounds=[(start, dur)],
            count=1,
            direction="right" if sign > 0 else "left",
        )
    return None


def _sample_flash(
    rng: np.random.Generator, g: _Grid, size: str, first_at: int | None
) -> _Candidate | None:
    r = _radius(g.cfg, size)
    on = g.frames(FLASH_ON_S, 1)
    off = max(2, g.sep - on)
    dur = min(BEEP_S, on / g.fps)
    for _ in range(TRIES):
        n = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
        k = first_at if first_at is not None else int(rng.integers(g.first, g.T - on))
        appear = [k]
        for _ in range(n - 1):
            appear.append(appear[-1] + on + off + int(rng.integers(0, 2)))
        if not all(g.onset_ok(a, dur) and a + on <= g.T - 1 for a in appear):
            continue
        visible = np.zeros(g.T, bool)
        for a in appear:
            visible[a : a + on] = True
        lo, hi = g.x_range(r)
        visual = [(a, "appear", True) for a in appear] + [(a + on, "vanish", False) for a in appear]
        return _Candidate(
            x=np.full(g.T, rng.uniform(lo, hi)),
            y=np.full(g.T, rng.uniform(r + 0.5, g.rest_y(r))),
            visible=visible,
            visual=sorted(visual),
            sounds=[(a, dur) for a in appear],
            count=n,
        )
    return None


def _sample_static(
    rng: np.random.Generator, g: _Grid, size: str, first_at: int | None
) -> _Candidate:
    r = _radius(g.cfg, size)
    lo, hi = g.x_range(r)
    return _Candidate(
        x=np.full(g.T, rng.uniform(lo, hi)),
        y=np.full(g.T, g.rest_y(r)),
        visible=np.ones(g.T, bool),
        visual=[],
        sounds=[],
        count=0,
    )


_SAMPLERS = {
    "bounce": _sample_bounce,
    "drop": _sample_drop,
    "slide": _sample_slide,
    "flash": _sample_flash,
    "static": _sample_static,
}


def _sounds_clash(new: list[_Sound], taken: list[_Sound], g: _Grid) -> bool:
    """Can every onset still be heard?  Onsets coincide exactly (simultaneous) or are ``g.sep``
    frames apart; and a sound does not start while one of the same kind (same band) still plays,
    where its rise in energy would be masked."""
    for k, dur, kind in new:
        for k2, dur2, kind2 in taken:
            if k == k2:
                continue
            if abs(k - k2) < g.sep:
                return True
            if kind == kind2:
                (a, da), b = ((k, dur), k2) if k < k2 else ((k2, dur2), k)
                if b / g.fps < a / g.fps + da + SAME_KIND_GAP_S:
                    return True
    return False


def _overlaps(c: _Candidate, r: float, placed: list[SceneObject]) -> bool:
    # Boxes of half-size r contain every shape, so a box gap of 1 px keeps pixels unshared.
    for o in placed:
        both = c.visible & o.visible
        if not both.any():
            continue
        gap = r + o.radius + 1.0
        close = (np.abs(c.x - o.x) < gap) & (np.abs(c.y - o.y) < gap)
        if (close & both).any():
            return True
    return False


def _place(
    rng: np.random.Generator,
    g: _Grid,
    motion: str,
    size: str,
    want: int | None,
    taken: list[_Sound],
    objects: list[SceneObject],
) -> _Candidate | None:
    """A candidate motion that is audible next to ``taken`` and never overlaps ``objects``."""
    r = _radius(g.cfg, size)
    for attempt in range(PLACE_TRIES):
        cand = _SAMPLERS[motion](rng, g, size, want if attempt < PLACE_TRIES // 2 else None)
        if cand is None:
            continue
        new = [(k, dur, SOUND_OF[motion]) for k, dur in cand.sounds]
        if not _sounds_clash(new, taken, g) and not _overlaps(cand, r, objects):
            return cand
    return None


def sample_scene(rng: np.random.Generator, cfg: SynthAVConfig) -> Scene:
    """Draw a scene (objects, tracks, events, texts) from ``rng``; deterministic given its state."""
    g = _Grid(cfg)
    weights = np.array([0.45, 0.35, 0.15, 0.05][: cfg.max_objects])
    n_objects = int(rng.choice(np.arange(1, cfg.max_objects + 1), p=weights / weights.sum()))
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    background = str(rng.choice(list(BACKGROUNDS)))
    objects: list[SceneObject] = []
    taken: list[_Sound] = []
    pending_audio: list[tuple[int, float, str, int | None, str]] = []  # frame, dur, kind, obj, size
    visual_events: list[dict[str, Any]] = []

    for i in range(n_objects):
        sounding = ("bounce", "drop", "slide", "flash")
        motion = str(
            rng.choice(
                sounding if i == 0 else MOTIONS, p=None if i == 0 else [0.25, 0.2, 0.2, 0.2, 0.15]
            )
        )
        shape, size = str(rng.choice(SHAPES)), str(rng.choice(SIZES))
        r = _radius(cfg, size)
        want = (
            int(rng.choice([k for k, _, _ in taken]))
            if taken and motion != "static" and rng.random() < cfg.p_simultaneous
            else None
        )
        # The first object must sound; if its motion cannot fit this clip, another one may.
        fallbacks = [m for m in sounding if m != motion] if i == 0 else []
        for choice in [motion, *fallbacks]:
            accepted = _place(rng, g, choice, size, want, taken, objects)
            if accepted is not None:
                motion = choice
                break
        if accepted is None:
            if i == 0:
                raise RuntimeError(f"SynthAV could not place any sounding object in {cfg}")
            continue
        obj_id = len(objects)
        objects.append(
            SceneObject(
                shape=shape,
                color=colors[i],
                size=size,
                motion=motion,
                radius=r,
                x=accepted.x,
                y=accepted.y,
                visible=accepted.visible,
                count=accepted.count,
                direction=accepted.direction,
            )
        )
        for k, kind, audible in accepted.visual:
            visual_events.append(
                {"t": k / cfg.fps, "frame": k, "kind": kind, "object": obj_id, "audible": audible}
            )
        for k, dur in accepted.sounds:
            taken.append((k, dur, SOUND_OF[motion]))
            pending_audio.append((k, dur, SOUND_OF[motion], obj_id, size))

    if rng.random() < cfg.p_offscreen:
        kind, size = str(rng.choice(["knock", "beep"])), str(rng.choice(SIZES))
        dur = KNOCK_DUR[size] if kind == "knock" else min(BEEP_S, g.frames(FLASH_ON_S, 1) / cfg.fps)
        want = (
            int(rng.choice([k for k, _, _ in taken])) if rng.random() < cfg.p_simultaneous else None
        )
        for attempt in range(TRIES):
            k = want if want is not None and attempt == 0 else int(rng.integers(g.first, g.T - 1))
            if g.onset_ok(k, dur) and not _sounds_clash([(k, dur, kind)], taken, g):
                taken.append((k, dur, kind))
                pending_audio.append((k, dur, kind, None, size))
                break

    audio_events = []
    for k, dur, kind, obj_id, size in sorted(
        pending_audio, key=lambda a: (a[0], a[3] is None, a[3] or 0)
    ):
        audio_events.append(
            {
                "t": k / cfg.fps,
                "kind": kind,
                "object": obj_id,
                "off_screen": obj_id is None,
                "size": size,
                "freq": FREQ[kind][size],
                "dur": float(dur),
                "amp": AMP[kind] * float(rng.uniform(0.8, 1.0)),
                "seed": int(rng.integers(2**31)),
            }
        )
    ambience = None
    if rng.random() < cfg.p_ambience:
        ambience = {"level": cfg.ambience_level, "seed": int(rng.integers(2**31))}
    visual_events.sort(key=lambda e: (e["frame"], e["object"]))
    scene = Scene(background, objects, visual_events, audio_events, ambience)
    scene.text, scene.audio_text = _describe(rng, scene)
    return scene


# --------------------------------------------------------------------------- text

_COUNT = {1: "once", 2: "twice", 3: "three times"}
_NUMBER = {1: "a", 2: "two", 3: "three"}
_BOUNCE = (
    "{obj} bounces {count}{drift}{where}, each bounce a {pitch} knock",
    "{obj} bounces {count}{drift}{where} with a {pitch} knock at every impact",
    "{obj} falls and bounces {count}{drift}{where}, knocking with a {pitch} sound each time",
)
_DROP = (
    "{obj} falls and lands{where} with a {pitch} knock",
    "{obj} drops{onto}, landing with a single {pitch} knock",
)
_SLIDE = (
    "{obj} slides to the {direction}{where} with a {pitch} hum",
    "{obj} glides {direction}ward{where}, humming a {pitch} tone while it moves",
)
_FLASH_ONE = ("{obj} flashes once with a {pitch} beep", "{obj} briefly appears with a {pitch} beep")
_FLASH_MANY = (
    "{obj} flashes {count}, each flash a {pitch} beep",
    "{obj} flashes {count} with a {pitch} beep each time",
)
_STATIC = ("{obj} sits still{where}", "{obj} rests motionless{where}")
_OFFSCREEN = ("a {pitch} {kind} sounds off-screen", "an unseen source makes a {pitch} {kind}")
_AMBIENCE = ("with faint background noise", "over soft ambient noise")
_AUDIO_AMBIENCE = ("over faint background noise", "with soft ambient noise underneath")


def _describe(rng: np.random.Generator, scene: Scene) -> tuple[str, str]:
    """Templated joint prompt and audio caption, faithful to the scene; ordered by first sound."""
    floor_said = False

    def where(motion: str) -> str:
        nonlocal floor_said
        if motion == "flash" or floor_said:
            return ""
        floor_said = True
        return " on a grey floor"

    # one group per sound source: (first onset, span end, text clause, audio phrase)
    groups = []
    for i, o in enumerate(scene.objects):
        if o.sound is None:
            continue
        events = [e for e in scene.audio_events if e["object"] == i]
        first, end = events[0]["t"], max(e["t"] + e["dur"] for e in events)
        pitch = PITCH[o.size]
        fields = {
            "obj": f"a {o.size} {o.color} {o.shape}",
            "count": _COUNT[o.count],
            "pitch": pitch,
            "direction": o.direction or "",
            "drift": f" toward the {o.direction}" if o.direction else "",
        }
        templates = {"bounce": _BOUNCE, "drop": _DROP, "slide": _SLIDE}.get(o.motion)
        if o.motion == "flash":
            templates = _FLASH_ONE if o.count == 1 else _FLASH_MANY
        fields["where"] = where(o.motion)
        fields["onto"] = fields["where"].replace(" on ", " onto ")
        clause = str(rng.choice(templates)).format(**fields)
        n = len(events)
        audio = f"{_NUMBER[n]} {pitch} {o.sound}{'s' if n > 1 else ''}"
        groups.append((first, end, clause, audio))
    for e in scene.audio_events:
        if e["off_screen"]:
            pitch = PITCH[e["size"]]
            clause = str(rng.choice(_OFFSCREEN)).format(pitch=pitch, kind=e["kind"])
            groups.append((e["t"], e["t"] + e["dur"], clause, f"a {pitch} {e['kind']}"))
    groups.sort(key=lambda g: g[0])

    text, audio = groups[0][2], groups[0][3]
    for j in range(1, len(groups)):
        first = groups[j][0]
        if any(abs(first - g[0]) < 1e-9 for g in groups[:j]):
            joint, spoken = ", and starting at the same moment ", ", and at the same time "
        elif first >= max(g[1] for g in groups[:j]) - 1e-9:
            joint, spoken = ", then ", ", then "
        else:
            joint, spoken = ", while ", " while "
        text += joint + groups[j][2]
        audio += spoken + groups[j][3]
    for o in scene.objects:
        if o.sound is None:
            text += ", and " + str(rng.choice(_STATIC)).format(
                obj=f"a {o.size} {o.color} {o.shape}", where=where("static")
            )
    if scene.ambience is not None:
        text += ", " + str(rng.choice(_AMBIENCE))
        audio += " " + str(rng.choice(_AUDIO_AMBIENCE))
    return text, audio


# --------------------------------------------------------------------------- rendering


def _coverage(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Anti-aliased coverage from a (half-plane) distance field, in pixels; every shape spans [-r, r]^2."""
    if shape == "ball":
        sdf = np.sqrt(dx * dx + dy * dy) - r
    elif shape == "square":
        sdf = np.maximum(np.abs(dx), np.abs(dy)) - r
    else:  # triangle with apex (0, -r) and base corners (+-r, r)
        slant = (2.0 * np.abs(dx) - (dy + r)) / math.sqrt(5.0)
        sdf = np.maximum(slant, dy - r)
    return np.clip(0.5 - sdf, 0.0, 1.0)


def render_video(scene: Scene, cfg: SynthAVConfig) -> np.ndarray:
    """uint8 ``[T, H, W, 3]``; objects drawn over the background and floor in scene order."""
    T, H, W = num_frames(cfg), cfg.height, cfg.width
    ys = (np.arange(H, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(W, dtype=np.float32) + 0.5)[None, :]
    floor = np.clip(ys + 0.5 - FLOOR_FRACTION * H, 0.0, 1.0)[..., None]  # [H, 1, 1]
    base = np.asarray(BACKGROUNDS[scene.background], np.float32)
    frame = base + floor * (np.asarray(FLOOR_RGB, np.float32) - base)
    video = np.broadcast_to(np.broadcast_to(frame, (H, W, 3)), (T, H, W, 3)).copy()
    for o in scene.objects:
        dx = xs[None] - o.x.astype(np.float32)[:, None, None]
        dy = ys[None] - o.y.astype(np.float32)[:, None, None]
        alpha = _coverage(o.shape, dx, dy, o.radius) * o.visible[:, None, None]
        video += alpha[..., None] * (np.asarray(COLORS[o.color], np.float32) - video)
    return np.clip(video + 0.5, 0, 255).astype(np.uint8)


def synth_event(event: dict[str, Any], sample_rate: int) -> tuple[int, np.ndarray]:
    """(start sample, float64 waveform) of one ground-truth audio event; deterministic.

    knock: decaying sinusoid (plus an inharmonic partial) and a short noise click; beep: steady
    tone with 5 ms ramps; hum: low tone plus octave with 15 ms ramps.
    """
    n = max(1, int(round(event["dur"] * sample_rate)))
    tau = np.arange(n) / sample_rate
    f = event["freq"]
    if event["kind"] == "knock":
        decay = event["dur"] / 5.0
        tone = np.sin(2 * np.pi * f * tau) + 0.35 * np.sin(2 * np.pi * 2.76 * f * tau)
        click = np.random.default_rng(event["seed"]).standard_normal(n) * np.exp(-tau / 0.006)
        wave = (tone / 1.35 + 0.3 * click) * np.exp(-tau / decay)
        # 1 ms attack; the last 20 % fades to zero so the cut at ``dur`` makes no click.
        wave *= np.minimum(tau / 0.001, 1.0) * np.clip(
            (event["dur"] - tau) / (0.2 * event["dur"]), 0, 1
        )
    elif event["kind"] == "beep":
        wave = np.sin(2 * np.pi * f * tau) * _ramps(tau, event["dur"], 0.005)
    elif event["kind"] == "hum":
        wave = (np.sin(2 * np.pi * f * tau) + 0.5 * np.sin(4 * np.pi * f * tau)) / 1.5
        wave *= _ramps(tau, event["dur"], 0.015)
    else:
        raise ValueError(f"unknown audio event kind {event['kind']!r}; expected knock, beep or hum")
    return int(round(event["t"] * sample_rate)), event["amp"] * wave


def _ramps(tau: np.ndarray, dur: float, ramp: float) -> np.ndarray:
    return np.clip(np.minimum(tau, dur - tau) / ramp, 0.0, 1.0)


def add_event(
    buffer: np.ndarray, event: dict[str, Any], sample_rate: int, sign: float = 1.0
) -> None:
    """Add (``sign=-1``: remove) one event into a mono buffer in place, cut at the buffer's ends."""
    start, wave = synth_event(event, sample_rate)
    lo, hi = max(start, 0), min(start + wave.size, buffer.size)
    if hi > lo:
        buffer[lo:hi] += sign * wave[lo - start : hi - start]


def ambience_noise(level: float, seed: int, n: int) -> np.ndarray:
    """Lowpassed (brownish) noise at RMS ``level``: a room tone rather than hiss."""
    white = np.random.default_rng(seed).standard_normal(n)
    brown = lfilter([1.0 - 0.97], [1.0, -0.97], white)
    return brown * (level / (np.sqrt(np.mean(brown**2)) + 1e-12))


def render_audio(
    audio_events: list[dict[str, Any]], ambience: dict[str, Any] | None, n: int, sample_rate: int
) -> np.ndarray:
    """float64 ``[n]``: the sum of the events and the ambience (not clipped, not normalised)."""
    out = np.zeros(n)
    for e in audio_events:
        add_event(out, e, sample_rate)
    if ambience is not None:
        out += ambience_noise(ambience["level"], ambience["seed"], n)
    return out


def render_scene(scene: Scene, cfg: SynthAVConfig) -> AVClip:
    """Render to an :class:`AVClip` (uint8 video, float32 ``[1, N]`` audio) with ground truth in meta.

    If the mix would clip, every event amplitude and the ambience level are scaled down and the
    ground truth records the scaled values, so :func:`synth_event` still reproduces each event
    (``scene``'s events and ambience are updated in place to match).
    """
    n = num_samples(cfg)
    audio = render_audio(scene.audio_events, scene.ambience, n, cfg.sample_rate)
    peak = float(np.abs(audio).max())
    if peak > 0.95:
        gain = 0.95 / peak
        audio *= gain
        for e in scene.audio_events:
            e["amp"] *= gain
        if scene.ambience is not None:
            scene.ambience["level"] *= gain
    gt = scene_to_gt(scene, cfg)
    meta = {"gt": gt, "audio_text": scene.audio_text, "categories": dict(gt["categories"])}
    if scene.info:
        meta["id"] = f"synthav-{scene.info['split']}-{scene.info['stream']}-{scene.info['index']}"
    return AVClip(
        video=render_video(scene, cfg),
        fps=float(cfg.fps),
        audio=audio.astype(np.float32)[None, :],
        sample_rate=int(cfg.sample_rate),
        prompt=scene.text,
        meta=meta,
    )


# --------------------------------------------------------------------------- ground truth


def _r(x: float) -> float:
    return round(float(x), 6)


def scene_to_gt(scene: Scene, cfg: SynthAVConfig) -> dict[str, Any]:
    """The JSON-serialisable ground truth of a scene (see the module docstring)."""
    objects = []
    for i, o in enumerate(scene.objects):
        objects.append(
            {
                "id": i,
                "shape": o.shape,
                "color": o.color,
                "rgb": list(COLORS[o.color]),
                "size": o.size,
                "radius": _r(o.radius),
                "motion": o.motion,
                "count": o.count,
                "direction": o.direction,
                "sound": o.sound,
                "pitch": PITCH[o.size] if o.sound else None,
                "freq": FREQ[o.sound][o.size] if o.sound else None,
                "track": {
                    "x": [round(float(v), 3) for v in o.x],
                    "y": [round(float(v), 3) for v in o.y],
                    "visible": [bool(v) for v in o.visible],
                },
            }
        )
    audio_events = [
        {k: (_r(v) if isinstance(v, float) else v) for k, v in e.items()}
        for e in scene.audio_events
    ]
    gt = {
        "version": GT_VERSION,
        **scene.info,
        "duration": _r(cfg.duration),
        "fps": _r(cfg.fps),
        "size": [cfg.height, cfg.width],
        "sample_rate": int(cfg.sample_rate),
        "background": scene.background,
        "objects": objects,
        "visual_events": [dict(e, t=_r(e["t"])) for e in scene.visual_events],
        "audio_events": audio_events,
        "ambience": None
        if scene.ambience is None
        else {"level": _r(scene.ambience["level"]), "seed": scene.ambience["seed"]},
        "offset": 0.0,
        "perturbations": [],
    }
    gt["categories"] = categories_for_gt(gt)
    return gt


def _join(indices: set[int]) -> str:
    return ",".join(str(i) for i in sorted(indices))


def categories_for_gt(gt: dict[str, Any]) -> dict[str, str]:
    """JavisBench category cells (``cat0_ind``..``cat4_ind``) implied by a ground-truth dict.

    Recomputed by perturbations that change the content (dropped or inserted sounds).
    """
    events = gt["audio_events"]
    sound_types = {SOUND_TYPE[e["kind"]] for e in events}
    if gt.get("ambience") is not None:
        sound_types.add(0)
    temporal: set[int] = set()
    if len(events) == 1:
        temporal.add(0)
    for i, a in enumerate(events):
        for b in events[i + 1 :]:
            overlap = a["t"] < b["t"] + b["dur"] and b["t"] < a["t"] + a["dur"]
            temporal.add(2 if overlap else 1)
    spatial: set[int] = set()
    n_visible = sum(1 for o in gt["objects"] if any(o["track"]["visible"]))
    if n_visible:
        spatial.add(0 if n_visible == 1 else 1)
    if any(e.get("off_screen") for e in events):
        spatial.add(2)
    return {
        "cat0_ind": "4",
        "cat1_ind": "1",
        "cat2_ind": _join(sound_types),
        "cat3_ind": _join(temporal),
        "cat4_ind": _join(spatial),
    }


# --------------------------------------------------------------------------- splits


def _rng(cfg: SynthAVConfig, split: str, index: int, stream: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if index < 0 or stream < 0:
        raise ValueError(f"index and stream must be >= 0, got index={index}, stream={stream}")
    return np.random.default_rng(
        np.random.SeedSequence(cfg.seed, spawn_key=(SPLITS[split], stream, index))
    )


def generate_clip(
    split: str, index: int, cfg: SynthAVConfig | None = None, *, stream: int = 0
) -> AVClip:
    """Clip ``index`` of ``split`` ("train", "eval" or "reference"); a pure function of its arguments."""
    cfg = cfg or SynthAVConfig()
    scene = sample_scene(_rng(cfg, split, index, stream), cfg)
    scene.info = {"split": split, "stream": stream, "index": index, "seed": cfg.seed}
    return render_scene(scene, cfg)


def iter_split(
    split: str,
    cfg: SynthAVConfig | None = None,
    n: int | None = None,
    *,
    stream: int = 0,
    start: int = 0,
) -> Iterator[AVClip]:
    """Clips ``start, start+1, ...`` of a split; ``n=None`` never stops."""
    index = start
    while n is None or index < start + n:
        yield generate_clip(split, index, cfg, stream=stream)
        index += 1


def eval_set(cfg: SynthAVConfig | None = None, n: int = 256) -> list[AVClip]:
    """The fixed evaluation set: prompts plus their ground-truth clips."""
    return list(iter_split("eval", cfg, n))


def reference_set(cfg: SynthAVConfig | None = None, n: int = 512) -> list[AVClip]:
    """Ground-truth clips for FAD/FVD-style reference statistics (disjoint from eval and train)."""
    return list(iter_split("reference", cfg, n))


def train_stream(
    cfg: SynthAVConfig | None = None, seed: int = 0, *, start: int = 0
) -> Iterator[AVClip]:
    """Unbounded training clips; ``seed`` picks one of many disjoint streams (e.g. one per worker)."""
    return iter_split("train", cfg, None, stream=seed, start=start)


# --------------------------------------------------------------------------- CLI


@dataclass
class SynthAVCommand(SynthAVConfig, CommonConfig):
    """``python -m omninft_bench.data.synthav split=eval n=256 out=DIR``."""

    out: str = option("", "output folder (default: outputs/synthav_<split>)")
    split: str = option("eval", "which split to write: train | eval | reference")
    n: int = option(256, "number of clips to write")
    stream: int = option(0, "train stream id (split=train only)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r}; expected one of {', '.join(SPLITS)}")
        if self.n < 1:
            raise ValueError(f"n={self.n}; need at least one clip")

    def generator_config(self) -> SynthAVConfig:
        return SynthAVConfig(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(SynthAVConfig)}
        )


def main(argv: list[str] | None = None) -> Path:
    from omninft_bench.data.layout import write_javisbench

    cmd = parse_cli(SynthAVCommand, argv, command="omninft_bench.data.synthav")
    out = Path(cmd.out or f"outputs/synthav_{cmd.split}")
    clips = iter_split(cmd.split, cmd.generator_config(), cmd.n, stream=cmd.stream)
    write_javisbench(out, clips, total=cmd.n, progress=True)
    print(f"wrote {cmd.n} {cmd.split} clips to {out}")
    return out


if __name__ == "__main__":
    main()
