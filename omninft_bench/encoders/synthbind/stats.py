"""SynthAV reference statistics of SynthBind embeddings (shipped as ``weights/reference_stats.safetensors``).

Mean and unbiased covariance (float64) of the embeddings of the SynthAV reference split, per
kind, computed through :class:`SynthBindBackend` exactly as the metrics embed clips:

* ``video``:  one clip embedding per clip (``embed_video``; fvd, kvd);
* ``frames``: every per-frame embedding (``embed_frames``; video_realism);
* ``audio``:  one whole-track embedding per clip (``embed_audio``; fad);
* ``audio_windows``: 1.0 s windows every 0.5 s (``embed_audio_windows``; audio_realism's windows).

The realism and distribution metrics can use them instead of embedding a reference set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from omninft_bench.encoders.synthbind.model import WEIGHTS_DIR, SynthBind

__all__ = ["KINDS", "REFERENCE_STATS_FILE", "ReferenceStats", "load_reference_stats", "write_reference_stats"]

REFERENCE_STATS_FILE = "reference_stats.safetensors"
KINDS = ("video", "frames", "audio", "audio_windows")
AUDIO_WINDOW_S, AUDIO_STRIDE_S = 1.0, 0.5


@dataclass(frozen=True)
class ReferenceStats:
    """``mean [d]`` and ``cov [d, d]`` (float64, N-1 denominator) over ``count`` embeddings."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def _stats(x: torch.Tensor) -> ReferenceStats:
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    return ReferenceStats(mean, centred.T @ centred / (x.shape[0] - 1), int(x.shape[0]))


def audio_windows(duration_s: float) -> list[tuple[float, float]]:
    """1.0 s windows every 0.5 s from 0 while they fit (at least one), as audio_realism cuts them."""
    starts = [0.0]
    while starts[-1] + AUDIO_STRIDE_S + AUDIO_WINDOW_S <= duration_s + 1e-9:
        starts.append(starts[-1] + AUDIO_STRIDE_S)
    return [(s, s + AUDIO_WINDOW_S) for s in starts]


def compute_reference_stats(model: SynthBind, n: int = 512, progress: bool = True) -> dict[str, ReferenceStats]:
    """Statistics of ``n`` clips of the SynthAV reference split (default generator config)."""
    from tqdm import tqdm

    from omninft_bench.data import synthav
    from omninft_bench.encoders.synthbind.backend import SynthBindBackend

    backend = SynthBindBackend.from_model(model)
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in KINDS}
    clips = synthav.iter_split("reference", synthav.SynthAVConfig(), n)
    for clip in tqdm(clips, total=n, desc="reference statistics", disable=not progress):
        rows["video"].append(backend.embed_video(clip.video, clip.fps)[None])
        rows["frames"].append(backend.embed_frames(clip.video))
        rows["audio"].append(backend.embed_audio(clip.audio, clip.sample_rate)[None])
        duration = clip.audio.shape[-1] / clip.sample_rate
        rows["audio_windows"].append(backend.embed_audio_windows(clip.audio, clip.sample_rate, audio_windows(duration)))
    return {k: _stats(torch.cat(v)) for k, v in rows.items()}


def write_reference_stats(model: SynthBind, directory: str | Path, n: int = 512) -> Path:
    stats = compute_reference_stats(model, n)
    tensors = {}
    for kind, s in stats.items():
        tensors[f"{kind}.mean"] = s.mean.contiguous()
        tensors[f"{kind}.cov"] = s.cov.contiguous()
        tensors[f"{kind}.count"] = torch.tensor(s.count, dtype=torch.int64)
    path = Path(directory) / REFERENCE_STATS_FILE
    save_file(tensors, str(path), metadata={"split": "reference", "clips": str(n)})
    return path


def load_reference_stats(path: str | Path | None = None) -> dict[str, ReferenceStats]:
    """``{kind: ReferenceStats}`` for kinds ``video``, ``frames``, ``audio``, ``audio_windows``;
    ``path``: a stats file or a weights directory (default: the shipped one)."""
    path = Path(path) if path else WEIGHTS_DIR
    if path.is_dir():
        path = path / REFERENCE_STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"SynthBind reference statistics not found: {path}")
    tensors = load_file(str(path))
    return {
        kind: ReferenceStats(tensors[f"{kind}.mean"], tensors[f"{kind}.cov"], int(tensors[f"{kind}.count"]))
        for kind in KINDS
        if f"{kind}.mean" in tensors
    }
