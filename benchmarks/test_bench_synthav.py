"""SynthAV speed: rendering 1,000 clips in memory must take well under a minute on 2 CPU cores.

Run with ``make bench`` (or ``pytest benchmarks/test_bench_synthav.py``).
"""

from __future__ import annotations

from omninft_bench.data import synthav
from omninft_bench.data.layout import write_javisbench
from omninft_bench.data.perturb import SEVERITIES, apply_perturbation

BUDGET_S = 60.0


def test_generate_1000_clips(benchmark):
    cfg = synthav.SynthAVConfig()
    clips = benchmark.pedantic(
        lambda: list(synthav.iter_split("train", cfg, 1000)), rounds=3, iterations=1
    )
    assert len(clips) == 1000
    assert clips[0].video.shape == (16, 32, 32, 3) and clips[0].audio.shape == (1, 32000)
    assert benchmark.stats.stats.max < BUDGET_S / 4, "1,000 clips should take well under a minute"


def test_generate_one_clip(benchmark):
    clip = benchmark(synthav.generate_clip, "eval", 7)
    assert clip.meta["gt"]["audio_events"]


def test_perturbation_sweep_one_clip(benchmark):
    clip = synthav.generate_clip("eval", 7)

    def sweep():
        return [
            apply_perturbation(name, clip, s, seed=0)
            for name, levels in SEVERITIES.items()
            for s in levels
        ]

    out = benchmark(sweep)
    assert len(out) == sum(len(v) for v in SEVERITIES.values())


def test_write_javisbench_64_clips(benchmark, tmp_path):
    clips = synthav.eval_set(n=64)
    entries = benchmark.pedantic(lambda: write_javisbench(tmp_path, clips), rounds=1, iterations=1)
    assert len(entries) == 64
