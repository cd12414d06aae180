"""Generate clips with a backbone and write them in the JavisBench layout.

    python -m omninft_bench.run stage=sample n=64 out=DIR              # SynthAV eval prompts
    python -m omninft_bench.run stage=sample prompts=PROMPTS.csv out=DIR sampler.steps=20
    python -m trainers.sample ...                                       # the same, directly

Writes ``DIR/prompts.csv`` (text, audio_text, path, cat0_ind..cat4_ind) and
``DIR/samples/sample_{i:04d}.mp4`` (H.264 + AAC) + ``.wav``, in prompt order, so
``python -m omninft_bench.evaluate input=DIR`` scores them.  ``prompts`` may be a JavisBench
folder or CSV (needs a ``text`` column; ``audio_text`` and categories are carried over) or a
``.txt`` file with one prompt per line; by default the first ``n`` SynthAV evaluation prompts.
Clip ``i`` starts from noise seeded with ``seed + i``, so results do not depend on
``batch_size``.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omninft_bench.config import CommonConfig, option, parse_cli
from omninft_bench.data import synthav
from omninft_bench.data.layout import CATEGORY_COLUMNS, read_javisbench, write_javisbench
from omninft_bench.media import AVClip
from trainers.backbone import Backbone, BackboneConfig
from trainers.sampling import SamplerConfig, per_clip_noise, sample

__all__ = ["PromptRow", "SampleConfig", "generate", "load_prompts", "main"]


@dataclass
class SampleConfig(CommonConfig):
    """``stage=sample``: generate clips for a prompt list (JavisBench layout output)."""

    out: str = option("outputs/samples", "output folder (JavisBench layout)")
    backbone: BackboneConfig = option(BackboneConfig(), "generator backbone")
    prompts: str = option("", "JavisBench folder/CSV or .txt (one per line); empty = SynthAV eval prompts")
    n: int = option(64, "number of clips (with a prompt file: its first n rows; 0 = all rows)")
    seed: int = option(0, "clip i starts from noise seeded with seed + i")
    batch_size: int = option(32, "clips per sampler batch")
    sampler: SamplerConfig = option(SamplerConfig(), "flow-matching sampler")
    threads: int = option(2, "torch CPU threads")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.n < 0 or self.batch_size < 1:
            raise ValueError(f"n={self.n} must be >= 0 and batch_size={self.batch_size} >= 1")
        if not self.prompts and self.n < 1:
            raise ValueError("n=0 means 'all rows of the prompt file'; give prompts=FILE or n >= 1")


@dataclass
class PromptRow:
    text: str
    meta: dict[str, Any]


def load_prompts(source: str, n: int, data: synthav.SynthAVConfig | None = None) -> list[PromptRow]:
    """Prompt rows from a JavisBench folder/CSV, a .txt file, or (empty ``source``) SynthAV eval."""
    if not source:
        return [
            PromptRow(c.prompt, {"audio_text": c.meta.get("audio_text", ""), "categories": c.meta.get("categories", {})})
            for c in synthav.iter_split("eval", data, n)
        ]
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"prompts={source}: no such file or folder")
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [PromptRow(t, {}) for t in lines]
    elif path.is_dir() or path.name == "prompts.csv":
        entries = read_javisbench(path if path.is_dir() else path.parent)
        rows = [PromptRow(e.text, {"audio_text": e.audio_text, "categories": dict(e.categories)}) for e in entries]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
        if not table or "text" not in table[0]:
            raise ValueError(f"prompts={source}: a prompt CSV needs a 'text' column")
        rows = [
            PromptRow(
                r["text"],
                {"audio_text": r.get("audio_text") or "", "categories": {c: r[c] for c in CATEGORY_COLUMNS if r.get(c)}},
            )
            for r in table
        ]
    return rows[:n] if n else rows


def generate(
    backbone: Backbone, rows: list[PromptRow], cfg: SampleConfig
) -> Iterator[AVClip]:
    """Decoded clips in prompt order, generated ``cfg.batch_size`` at a time."""
    for start in range(0, len(rows), cfg.batch_size):
        chunk = rows[start : start + cfg.batch_size]
        noise = per_clip_noise(backbone, [cfg.seed + start + i for i in range(len(chunk))])
        result = sample(backbone, [r.text for r in chunk], cfg.sampler, noise=noise)
        yield from backbone.decode(result.video, result.audio, [r.text for r in chunk], [r.meta for r in chunk])


def main(cfg: SampleConfig) -> Path:
    """Generate and write the clips; returns the output folder."""
    torch.set_num_threads(cfg.threads)
    backbone = cfg.backbone.build()
    rows = load_prompts(cfg.prompts, cfg.n)
    if not rows:
        raise ValueError(f"prompts={cfg.prompts!r} holds no prompts")
    out = Path(cfg.out)
    start = time.perf_counter()
    write_javisbench(out, generate(backbone, rows, cfg), total=len(rows), progress=cfg.progress)
    print(f"wrote {len(rows)} clips to {out} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return out


if __name__ == "__main__":
    main(parse_cli(SampleConfig, command="trainers.sample"))
