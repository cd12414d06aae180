"""How RL changed the generated audio: loudness envelope and spectral centroid, run by run.

    python scripts/audio_drift.py outputs/ablation        # make run's output folder

For the base and every run of an ablation folder (``base/`` and ``runs/<variant>/seed<k>/
eval_clips/``, JavisBench layouts scored on the same prompts and noise), two plain signal
statistics per clip:

* envelope CV: the coefficient of variation (std / mean) of the RMS over 25 ms frames, i.e. how
  much the loudness rises and falls within the clip;
* spectral centroid (Hz) of the Hann-windowed clip, magnitude-weighted.

It prints each run's mean paired change from the base (clips silent in either left out), the
change of its ``audio_realism`` from ``eval/per_sample.jsonl``, then how many runs moved each
statistic down and the correlation of each with the audio_realism change across runs.  The
reference clips' values (``reference/``) are printed for scale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omninft_bench.data.layout import iter_clips  # noqa: E402

FRAME_S = 0.025
SILENT_RMS = 1e-4


def clip_stats(folder: Path) -> np.ndarray:
    """``[N, 2]`` (envelope CV, spectral centroid) per clip, NaN for a silent clip."""
    rows = []
    for clip in iter_clips(folder):
        x = np.asarray(clip.audio, dtype=np.float64).mean(0) if clip.audio is not None else np.zeros(1)
        if np.sqrt((x**2).mean()) < SILENT_RMS:
            rows.append((np.nan, np.nan))
            continue
        frame = max(1, int(FRAME_S * clip.sample_rate))
        rms = np.sqrt((x[: len(x) // frame * frame].reshape(-1, frame) ** 2).mean(1))
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        freqs = np.fft.rfftfreq(len(x), 1.0 / clip.sample_rate)
        rows.append((rms.std() / rms.mean(), (spectrum * freqs).sum() / spectrum.sum()))
    return np.array(rows)


def read_rows(per_sample: Path) -> list[dict]:
    """An evaluation's ``per_sample.jsonl``, one dict per clip in prompt order."""
    return [json.loads(line) for line in per_sample.read_text().splitlines() if line.strip()]


def mean_change(per_sample: Path, base_rows: list[dict], key: str) -> float:
    rows = read_rows(per_sample)
    pairs = [(r.get(key), b.get(key)) for r, b in zip(rows, base_rows, strict=True)]
    return float(np.mean([r - b for r, b in pairs if r is not None and b is not None]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an ablation output folder (out=..., default outputs/ablation)")
    args = parser.parse_args(argv)
    base_dir = args.folder / "base"
    runs = sorted(args.folder.glob("runs/*/seed*/eval_clips"))
    if not base_dir.is_dir() or not runs:
        parser.error(f"{args.folder} has no base/ or no runs/*/seed*/eval_clips/: pass the out= folder of an ablation")
    base = clip_stats(base_dir)
    base_rows = read_rows(base_dir / "eval" / "per_sample.jsonl")
    if (args.folder / "reference").is_dir():
        ref = clip_stats(args.folder / "reference")
        print(f"reference  envelope CV {np.nanmean(ref[:, 0]):.3f}  centroid {np.nanmean(ref[:, 1]):.0f} Hz")
    print(f"base       envelope CV {np.nanmean(base[:, 0]):.3f}  centroid {np.nanmean(base[:, 1]):.0f} Hz  "
          f"silent clips {int(np.isnan(base[:, 0]).sum())}")
    table = []
    for run in runs:
        stats = clip_stats(run)
        if stats.shape != base.shape:
            print(f"{run}: {len(stats)} clips, the base has {len(base)}; skipped")
            continue
        d = np.nanmean(stats - base, axis=0)
        d_ar = mean_change(run / "eval" / "per_sample.jsonl", base_rows, "audio_realism")
        table.append((d[0], d[1], d_ar))
        name = f"{run.parent.parent.name} {run.parent.name}"
        print(f"{name:28s} envelope CV {d[0]:+.3f}  centroid {d[1]:+6.0f} Hz  audio_realism {d_ar:+.3f}")
    t = np.array(table)
    for i, label in enumerate(["envelope CV", "centroid"]):
        corr = np.corrcoef(t[:, i], t[:, 2])[0, 1] if len(t) > 2 else float("nan")
        print(f"{label}: lower than the base in {int((t[:, i] < 0).sum())} of {len(t)} runs, mean change "
              f"{t[:, i].mean():+.3g}; correlation with the audio_realism change {corr:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
