"""Held-out checks of SynthBind: ``python -m omninft_bench.encoders.synthbind.evaluate_retrieval``.

On clips of the SynthAV *eval* split (never seen in training, which uses the train stream):

* retrieval among ``candidates`` clips (R@1, R@5; averaged over ``n / candidates`` disjoint
  groups): text->video (prompt vs clip embedding), text->frames (prompt vs mean frame
  embedding, what clip_score uses), text->audio (prompt, and audio caption, vs audio),
  audio->video and video->audio;
* the shift test: for each clip and each shift of +-0.25, +-0.5 and +-1.0 s
  (``perturb.audio_shift``), is the aligned pair scored higher than the shifted one by
  ``av_score`` and ``javis_score`` (the JavisBench formulas of ``metrics.functional`` on
  SynthBind embeddings, as the registered metrics compute them)?

Writes ``out`` as JSON (default: ``retrieval.json`` beside the weights) and prints a table.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from omninft_bench.config import CommonConfig, option, parse_cli
from omninft_bench.data import synthav
from omninft_bench.data.perturb import apply_perturbation
from omninft_bench.encoders.config import EncodersConfig, SynthBindConfig
from omninft_bench.encoders.synthbind.backend import SynthBindBackend, weights_path

__all__ = ["RetrievalConfig", "evaluate", "main", "recall_at_k"]

SHIFTS_S = (0.25, 0.5, 1.0)


@dataclass
class RetrievalConfig(CommonConfig):
    out: str = option("", "JSON output file (default: retrieval.json beside the weights)")
    weights: str = option("", "SynthBind weights file or directory; empty = the shipped weights")
    n: int = option(500, "held-out SynthAV eval clips (a multiple of candidates)")
    candidates: int = option(100, "clips per retrieval group")
    n_shift: int = option(200, "clips used for the shift test")


def recall_at_k(sim: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Query i's match is candidate i; ``sim [Q, C]``.  R@k = fraction ranked within the top k
    (ties count against the query: a match tied with others is ranked after them)."""
    true = sim.diagonal()[:, None]
    rank = (sim > true).sum(1) + (sim == true).sum(1) - 1
    return {f"R@{k}": float((rank < k).float().mean()) for k in ks}


def _retrieval(backend: SynthBindBackend, clips: list, candidates: int) -> dict[str, dict[str, float]]:
    prompts = backend.embed_text([c.prompt for c in clips])
    captions = backend.embed_text([str(c.meta.get("audio_text") or c.prompt) for c in clips])
    video = torch.stack([backend.embed_video(c.video, c.fps) for c in clips])
    frames = torch.stack([backend.embed_frames(c.video).mean(0) for c in clips])
    audio = torch.stack([backend.embed_audio(c.audio, c.sample_rate) for c in clips])
    tasks = {
        "text->video": (prompts, video),
        "text->frames": (prompts, frames),
        "text->audio": (prompts, audio),
        "audio_text->audio": (captions, audio),
        "audio->video": (audio, video),
        "video->audio": (video, audio),
    }
    out: dict[str, dict[str, float]] = {}
    for task, (queries, keys) in tasks.items():
        rows = [
            recall_at_k(queries[g : g + candidates] @ keys[g : g + candidates].T)
            for g in range(0, len(clips) - candidates + 1, candidates)
        ]
        out[task] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0]}
    return out


def _sync_scores(backend: SynthBindBackend, clip, frames: torch.Tensor, video: torch.Tensor) -> dict[str, float]:
    """av_score and javis_score of one clip, by the JavisBench formulas (``metrics.functional``)."""
    from omninft_bench.metrics.functional.similarity import av_score, javis_score, javis_windows

    windows = javis_windows(clip.num_frames, clip.fps)
    bounds = [(w.audio_start_s, w.audio_end_s) for w in windows]
    window_audio = backend.embed_audio_windows(clip.audio, clip.sample_rate, bounds)
    return {
        "av_score": av_score(video, backend.embed_audio(clip.audio, clip.sample_rate)),
        "javis_score": javis_score(frames, window_audio, windows),
    }


def _shift_test(backend: SynthBindBackend, clips: list) -> dict[str, dict[str, float]]:
    wins: dict[str, dict[float, list[bool]]] = {"av_score": {}, "javis_score": {}}
    for i, clip in enumerate(clips):
        frames = backend.embed_frames(clip.video)
        video = backend.embed_video(clip.video, clip.fps)
        aligned = _sync_scores(backend, clip, frames, video)
        for magnitude in SHIFTS_S:
            for sign in (1.0, -1.0):
                shifted = apply_perturbation("audio_shift", clip, sign * magnitude, seed=i)
                scores = _sync_scores(backend, shifted, frames, video)
                for name, table in wins.items():
                    table.setdefault(magnitude, []).append(aligned[name] > scores[name])
    out: dict[str, dict[str, float]] = {}
    for name, table in wins.items():
        out[name] = {f"{m:g}s": round(float(np.mean(v)), 4) for m, v in table.items()}
        out[name]["all"] = round(float(np.mean([x for v in table.values() for x in v])), 4)
    return out


def evaluate(cfg: RetrievalConfig, progress: bool = True) -> dict:
    if cfg.n < cfg.candidates or cfg.n % cfg.candidates:
        raise ValueError(f"n={cfg.n} must be a positive multiple of candidates={cfg.candidates}")
    start = time.perf_counter()
    encoders = EncodersConfig(synthbind=SynthBindConfig(path=cfg.weights))
    backend = SynthBindBackend(encoders)
    clips = list(tqdm(synthav.iter_split("eval", n=cfg.n), total=cfg.n, desc="eval clips", disable=not progress))
    result = {
        "weights": cfg.weights or "shipped (omninft_bench/encoders/synthbind/weights)",
        "split": "eval",
        "clips": cfg.n,
        "candidates": cfg.candidates,
        "retrieval": _retrieval(backend, clips, cfg.candidates),
        "shift_test": {"clips": min(cfg.n_shift, cfg.n), "shifts_s": list(SHIFTS_S), "signs": [1, -1]},
    }
    result["shift_test"] |= _shift_test(backend, clips[: cfg.n_shift])
    result["wall_time_s"] = round(time.perf_counter() - start, 1)
    return result


def format_result(result: dict) -> str:
    lines = [f"retrieval among {result['candidates']} held-out SynthAV clips ({result['clips']} clips):"]
    for task, row in result["retrieval"].items():
        lines.append(f"  {task:<18} R@1 {row['R@1']:.3f}  R@5 {row['R@5']:.3f}")
    shift = result["shift_test"]
    lines.append(f"shift test on {shift['clips']} clips: fraction with aligned > shifted (both signs)")
    for name in ("av_score", "javis_score"):
        cells = "  ".join(f"{k}: {v:.3f}" for k, v in shift[name].items())
        lines.append(f"  {name:<12} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_cli(RetrievalConfig, argv, command="omninft_bench.encoders.synthbind.evaluate_retrieval")
    try:
        result = evaluate(cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(cfg.out) if cfg.out else weights_path(EncodersConfig(synthbind=SynthBindConfig(path=cfg.weights))).parent / "retrieval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(format_result(result))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
