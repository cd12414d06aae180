"""On-disk dataset layouts: one small :class:`Entry` record per clip, readers and writers per layout.

JavisBench layout (what its evaluation scripts read)::

    DIR/prompts.csv            text, audio_text, path, cat0_ind .. cat4_ind   (one row per clip)
    DIR/samples/sample_0000.mp4, sample_0000.wav, ...                          (CSV row order)
    DIR/ground_truth.jsonl     {"index", "path", "gt"} per row, same order    (our addition)

``path`` is the clip's path relative to ``DIR`` (POSIX separators).  Category cells hold
comma-separated indices into :data:`JAVISBENCH_CATEGORIES` (e.g. ``"1,2"``) and stay strings,
so ``"2"`` and ``"1,2"`` read back exactly as written.  ``ground_truth.jsonl`` is optional:
folders produced by a generator under test have none, and JavisBench's own prompts.csv has no
``audio_text`` or ``path`` for generated samples, which readers tolerate.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omninft_bench.media import AVClip, MediaError, read_clip, write_clip

__all__ = [
    "CATEGORY_COLUMNS",
    "JAVISBENCH_CATEGORIES",
    "Entry",
    "entry_from_clip",
    "iter_clips",
    "load_clip",
    "read_javisbench",
    "sample_path",
    "write_javisbench",
    "write_javisbench_prompts",
]

# JavisBench's five aspects; a cell's indices point into these tuples (0-based).
JAVISBENCH_CATEGORIES: dict[str, tuple[str, ...]] = {
    "cat0_ind": ("natural", "urban", "living", "industrial", "virtual"),  # event scenario
    "cat1_ind": ("camera", "2D-animate", "3D-animate"),  # visual style
    "cat2_ind": ("ambient", "biological", "mechanical", "musical", "speech"),  # sound type
    "cat3_ind": ("single", "sequential", "simultaneous"),  # temporal composition
    "cat4_ind": ("single subject", "multiple subjects", "off-screen sound"),  # spatial composition
}
CATEGORY_COLUMNS: tuple[str, ...] = tuple(JAVISBENCH_CATEGORIES)

PROMPTS_CSV = "prompts.csv"
GROUND_TRUTH_JSONL = "ground_truth.jsonl"
_COLUMNS = ("text", "audio_text", "path", *CATEGORY_COLUMNS)


@dataclass
class Entry:
    """One row of a dataset folder.

    ``path`` is relative to the folder root; ``categories`` maps ``cat0_ind``..``cat4_ind`` to
    comma-separated index strings; ``gt`` is the SynthAV ground truth, ``None`` when unknown.
    """

    index: int
    path: str
    text: str
    audio_text: str = ""
    categories: dict[str, str] = field(default_factory=dict)
    gt: dict[str, Any] | None = None

    def category_names(self) -> dict[str, list[str]]:
        """Human-readable category names per aspect, e.g. ``{"cat3_ind": ["sequential"]}``."""
        names: dict[str, list[str]] = {}
        for column, cell in self.categories.items():
            table = JAVISBENCH_CATEGORIES.get(column, ())
            names[column] = [
                table[int(i)]
                for i in cell.split(",")
                if i.strip().isdigit() and int(i) < len(table)
            ]
        return names


def sample_path(index: int) -> str:
    """JavisBench's name for the ``index``-th generated sample (the ``.wav`` sits beside it)."""
    return f"samples/sample_{index:04d}.mp4"


def entry_from_clip(index: int, clip: AVClip, path: str | None = None) -> Entry:
    """The row describing ``clip``: prompt, ``meta["audio_text"]``, ``meta["categories"]``, ``meta["gt"]``."""
    return Entry(
        index=index,
        path=path or sample_path(index),
        text=clip.prompt,
        audio_text=str(clip.meta.get("audio_text", "")),
        categories={k: str(v) for k, v in clip.meta.get("categories", {}).items()},
        gt=clip.meta.get("gt"),
    )


def write_javisbench_prompts(root: str | Path, entries: Iterable[Entry]) -> Path:
    """Write ``prompts.csv`` (and ``ground_truth.jsonl`` when any entry has ground truth)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries = list(entries)
    with open(root / PROMPTS_CSV, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_COLUMNS)
        writer.writeheader()
        for e in entries:
            writer.writerow(
                {"text": e.text, "audio_text": e.audio_text, "path": e.path}
                | {c: e.categories.get(c, "") for c in CATEGORY_COLUMNS}
            )
    gt_file = root / GROUND_TRUTH_JSONL
    if any(e.gt is not None for e in entries):
        with open(gt_file, "w", encoding="utf-8") as f:
            for e in entries:
                f.write(json.dumps({"index": e.index, "path": e.path, "gt": e.gt}) + "\n")
    elif gt_file.exists():
        gt_file.unlink()  # a stale file from an earlier run would pair the wrong ground truth
    return root / PROMPTS_CSV


def write_javisbench(
    root: str | Path,
    clips: Iterable[AVClip],
    *,
    total: int | None = None,
    progress: bool = False,
) -> list[Entry]:
    """Write clips as ``samples/sample_{i:04d}.mp4`` + ``.wav`` and the CSV/JSONL beside them.

    ``clips`` may be a generator: clips are written one at a time, so memory stays flat.  The
    CSV is written last, so an interrupted run leaves no prompts.csv that names missing files.
    """
    root = Path(root)
    items: Iterable[AVClip] = clips
    if progress:
        from tqdm import tqdm

        items = tqdm(clips, total=total, desc=f"writing {root}", unit="clip")
    entries = []
    for i, clip in enumerate(items):
        entry = entry_from_clip(i, clip)
        write_clip(root / entry.path, clip, wav=True)
        entries.append(entry)
    write_javisbench_prompts(root, entries)
    return entries


def _read_ground_truth(root: Path) -> dict[int, dict[str, Any]]:
    gt_file = root / GROUND_TRUTH_JSONL
    if not gt_file.exists():
        return {}
    rows: dict[int, dict[str, Any]] = {}
    with open(gt_file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[int(row["index"])] = row
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise MediaError(
                    gt_file, f"line {line_no} is not a ground-truth row ({exc})"
                ) from None
    return rows


def read_javisbench(root: str | Path) -> list[Entry]:
    """Read ``root/prompts.csv`` (and ``ground_truth.jsonl`` if present) into entries.

    A missing ``path`` column or cell falls back to :func:`sample_path` (the row's generated
    sample), a missing ``audio_text`` to ``""``.  Raises :class:`MediaError` when prompts.csv is
    missing or lacks a ``text`` column, or when a ground-truth row names a different path.
    """
    root = Path(root)
    csv_file = root / PROMPTS_CSV
    if not csv_file.exists():
        raise MediaError(csv_file, "no prompts.csv: not a JavisBench-layout folder")
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise MediaError(csv_file, f"needs a 'text' column, has {reader.fieldnames}")
        rows = list(reader)
    gts = _read_ground_truth(root)
    entries = []
    for i, row in enumerate(rows):
        path = (row.get("path") or "").strip() or sample_path(i)
        gt_row = gts.get(i)
        if gt_row is not None and gt_row.get("path") != path:
            raise MediaError(
                root / GROUND_TRUTH_JSONL,
                f"row {i} is for {gt_row.get('path')!r} but prompts.csv row {i} is {path!r}",
            )
        entries.append(
            Entry(
                index=i,
                path=path,
                text=row["text"],
                audio_text=row.get("audio_text") or "",
                categories={c: row[c] for c in CATEGORY_COLUMNS if row.get(c) is not None},
                gt=gt_row["gt"] if gt_row is not None else None,
            )
        )
    return entries


def load_clip(root: str | Path, entry: Entry, **read_kwargs: Any) -> AVClip:
    """Read the entry's media with :func:`media.read_clip` and attach prompt and metadata."""
    clip = read_clip(Path(root) / entry.path, **read_kwargs)
    meta = dict(clip.meta)
    meta.update(index=entry.index, audio_text=entry.audio_text, categories=dict(entry.categories))
    if entry.gt is not None:
        meta["gt"] = entry.gt
    return clip.replace(prompt=entry.text, meta=meta)


def iter_clips(root: str | Path, **read_kwargs: Any) -> Iterator[AVClip]:
    """Every clip of a JavisBench-layout folder, in row order."""
    for entry in read_javisbench(root):
        yield load_clip(root, entry, **read_kwargs)
