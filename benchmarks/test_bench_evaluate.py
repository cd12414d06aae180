"""Benchmarks of ``evaluate``: weight-free suite throughput, and cached vs uncached re-evaluation.

Run: ``pytest benchmarks/test_bench_evaluate.py`` (pytest-benchmark).  Numbers land in the
benchmark table and in ``extra_info`` (``clips_per_second``, ``cached_over_uncached``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil
import time
from pathlib import Path

import pytest

from omninft_bench.config import compose_config
from omninft_bench.evaluate import EvaluateConfig, evaluate, plan_evaluation
from omninft_bench.media import write_clip
from omninft_bench.metrics import WEIGHT_FREE_SUITE
from omninft_bench.metrics.testing import toy_clips

N_CLIPS = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "gen"
    for i, clip in enumerate(toy_clips(N_CLIPS, frames=32, size=64, fps=16.0)):  # 2 s, 64x64, 16 fps
        write_clip(root / f"clip_{i:02d}.mp4", clip)
    return root


def _plan(folder: Path, out: Path, cache_dir: str):
    overrides = [
        f"input={folder}",
        f"out={out}",
        f"cache_dir={cache_dir}",
        f"metrics=[{','.join(WEIGHT_FREE_SUITE)}]",
        "track=false",
        "progress=false",
    ]
    return plan_evaluation(compose_config(EvaluateConfig, overrides))


def test_weight_free_suite_throughput(benchmark, folder, tmp_path):
    plan = _plan(folder, tmp_path / "out", "")  # no cache: every round decodes and extracts
    results = benchmark.pedantic(evaluate, args=(plan,), rounds=3, iterations=1, warmup_rounds=1)
    assert results["n_evaluated"] == N_CLIPS
    benchmark.extra_info["clips"] = N_CLIPS
    benchmark.extra_info["clips_per_second"] = N_CLIPS / benchmark.stats.stats.mean


def test_cached_vs_uncached_reevaluation(benchmark, folder, tmp_path):
    cache = tmp_path / "cache"
    uncached = []
    for _ in range(2):  # each pass starts from an empty cache
        shutil.rmtree(cache, ignore_errors=True)
        start = time.perf_counter()
        evaluate(_plan(folder, tmp_path / "out", str(cache)))
        uncached.append(time.perf_counter() - start)
    results = benchmark.pedantic(
        lambda: evaluate(_plan(folder, tmp_path / "out", str(cache))), rounds=5, iterations=1
    )
    assert results["cache"]["misses"] == 0
    ratio = benchmark.stats.stats.mean / min(uncached)
    benchmark.extra_info["uncached_seconds"] = min(uncached)
    benchmark.extra_info["cached_over_uncached"] = ratio
    assert ratio < 0.25, f"cached re-evaluation costs {ratio:.0%} of the first pass"
