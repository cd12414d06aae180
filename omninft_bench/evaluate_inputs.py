"""Find the clips of an evaluation input folder and pair them with prompts.

Three layouts are recognised, in this order:

* **JavisBench**: ``DIR/samples/sample_{i:04d}.mp4`` (+ ``.wav``), or the same files directly in
  ``DIR``; row ``i`` of the prompt CSV (``prompts=``, else ``DIR/prompts.csv``) belongs to sample
  ``i``.  The CSV's ``path`` column is *not* used to find samples (in JavisBench it names the
  ground-truth video).  A row without its sample is reported as skipped.
* **VBench**: every video is named ``{prompt}-{i}.mp4``; the prompt comes from the name.
* **Plain**: any other folder of videos (mp4, mkv, webm, mov, avi, m4v), sorted by name.

A prompt file may be a CSV (columns ``text`` or ``prompt``, optional ``audio_text``, ``path``,
``cat0_ind``..``cat4_ind``) or JSONL (one object per line with the same keys).  For VBench and
plain folders its rows are matched to files by ``path`` (file name or path relative to ``DIR``)
when present, else by order.  A ``.wav`` beside a video provides its audio (media.read_clip).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from omninft_bench.data.layout import CATEGORY_COLUMNS

__all__ = [
    "VIDEO_SUFFIXES",
    "ClipSource",
    "InputError",
    "Inputs",
    "PromptRow",
    "discover",
    "read_prompt_file",
]

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
_SAMPLE = re.compile(r"^sample_(\d{4,})$")
_VBENCH = re.compile(r"^(.+)-(\d+)$")


class InputError(ValueError):
    """An input folder or prompt file that cannot be used; the message says why."""


@dataclass
class PromptRow:
    text: str
    audio_text: str = ""
    path: str = ""
    categories: dict[str, str] = field(default_factory=dict)


@dataclass
class ClipSource:
    """One clip to evaluate: where it is, and what the prompt file says about it."""

    index: int
    path: Path
    rel: str
    prompt: str = ""
    audio_text: str = ""
    categories: dict[str, str] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """The files whose bytes define the clip (video, and the sibling wav when present)."""
        wav = self.path.with_suffix(".wav")
        return [self.path, wav] if wav.is_file() and wav != self.path else [self.path]


@dataclass
class Inputs:
    layout: str
    root: Path
    sources: list[ClipSource]
    skipped: list[dict[str, str]]
    prompt_file: Path | None = None

    @property
    def has_prompts(self) -> bool:
        return any(s.prompt.strip() or s.audio_text.strip() for s in self.sources)

    @property
    def has_categories(self) -> bool:
        return any(s.categories for s in self.sources)


def _row_from_mapping(row: dict, where: str) -> PromptRow:
    text = row.get("text", row.get("prompt", row.get("caption")))
    if text is None:
        raise InputError(f"{where}: needs a 'text' (or 'prompt') field, has {sorted(row)}")
    path = row.get("path") or row.get("file") or row.get("video") or ""
    categories = {c: str(row[c]).strip() for c in CATEGORY_COLUMNS if row.get(c) not in (None, "")}
    return PromptRow(str(text), str(row.get("audio_text") or ""), str(path), categories)


def read_prompt_file(path: str | Path) -> list[PromptRow]:
    """Rows of a prompt CSV or JSONL file (by suffix; ``.json``/``.jsonl`` are JSON lines)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompts={path}: no such file")
    rows: list[PromptRow] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
                if isinstance(obj, str):
                    obj = {"text": obj}
                if not isinstance(obj, dict):
                    raise InputError(f"{path}:{line_no}: expected an object or a string")
                rows.append(_row_from_mapping(obj, f"{path}:{line_no}"))
        return rows
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"text", "prompt", "caption"} & set(reader.fieldnames):
            raise InputError(f"{path}: a prompt CSV needs a 'text' (or 'prompt') column, has {reader.fieldnames}")
        for line_no, row in enumerate(reader, 2):
            rows.append(_row_from_mapping(row, f"{path}:{line_no}"))
    return rows


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _javisbench(root: Path, folder: Path, rows: list[PromptRow] | None, prompt_file: Path | None) -> Inputs:
    files = {int(_SAMPLE.match(p.stem).group(1)): p for p in _videos(folder) if _SAMPLE.match(p.stem)}
    sources: list[ClipSource] = []
    skipped: list[dict[str, str]] = []
    if rows is None:
        for i in sorted(files):
            sources.append(ClipSource(i, files[i], _rel(files[i], root)))
        return Inputs("javisbench", root, sources, skipped)
    for i, row in enumerate(rows):
        path = files.pop(i, None)
        if path is None:
            expected = folder / f"sample_{i:04d}.mp4"
            skipped.append({"path": _rel(expected, root), "reason": "missing: the prompt file has a row for it"})
            continue
        sources.append(ClipSource(i, path, _rel(path, root), row.text, row.audio_text, dict(row.categories)))
    for i in sorted(files):
        skipped.append({"path": _rel(files[i], root), "reason": f"no row {i} in the prompt file"})
    return Inputs("javisbench", root, sources, skipped, prompt_file)


def _match_rows(videos: list[Path], root: Path, rows: list[PromptRow], prompt_file: Path) -> list[PromptRow | None]:
    if any(r.path for r in rows):
        by_key: dict[str, PromptRow] = {}
        for r in rows:
            by_key.setdefault(r.path, r)
            by_key.setdefault(Path(r.path).name, r)
        return [by_key.get(_rel(v, root)) or by_key.get(v.name) for v in videos]
    if len(rows) != len(videos):
        raise InputError(
            f"{prompt_file} has {len(rows)} rows without a 'path' column but {root} has {len(videos)} "
            "videos; add a path column or give one row per video in name order"
        )
    return list(rows)


def discover(input_dir: str | Path, prompts: str | Path | None = None) -> Inputs:
    """Find the clips under ``input_dir`` and attach prompts (see the module docstring)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(f"input={root}: not a directory")
    prompt_file = Path(prompts) if prompts else None
    if prompt_file is None and (root / "prompts.csv").is_file():
        prompt_file = root / "prompts.csv"
    rows = read_prompt_file(prompt_file) if prompt_file is not None else None

    samples = root / "samples"
    for folder in (samples, root):
        if folder.is_dir() and any(_SAMPLE.match(p.stem) for p in _videos(folder)):
            inputs = _javisbench(root, folder, rows, prompt_file)
            inputs.prompt_file = prompt_file
            return inputs

    videos = _videos(root)
    if not videos:
        raise InputError(f"input={root}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    vbench = all(_VBENCH.match(v.stem) for v in videos)
    matched = _match_rows(videos, root, rows, prompt_file) if rows is not None else [None] * len(videos)
    sources = []
    for i, (video, row) in enumerate(zip(videos, matched, strict=True)):
        source = ClipSource(i, video, _rel(video, root))
        if row is not None:
            source.prompt, source.audio_text, source.categories = row.text, row.audio_text, dict(row.categories)
        elif vbench:
            source.prompt = _VBENCH.match(video.stem).group(1)
        sources.append(source)
    return Inputs("vbench" if vbench else "plain", root, sources, [], prompt_file)
