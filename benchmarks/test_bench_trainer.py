"""Training-step time of the GDPO baseline against full OmniNFT, side by side.

OmniNFT adds v2a attention capture during rollout, gradient-surgery hooks and token weights;
the budget is at most 1.15x the GDPO step.  Both run the same default-size tiny backbone
(random init: the cost does not depend on the weights) with the same trivial rewards, so the
ratio isolates the components' overhead.  Compare the two ``trainer-step`` rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_trainer import Brightness, Loudness  # noqa: E402

from omninft_bench.rewards import MetricReward  # noqa: E402
from trainers.backbone import Backbone  # noqa: E402
from trainers.omninft import OmniNFTConfig, Variant, train  # noqa: E402

STEP_TIMES: dict[str, float] = {}


def _config() -> OmniNFTConfig:
    # Default group geometry (4 prompts x 8 clips, 10 sampler steps), two measured steps.
    return OmniNFTConfig(steps=2, checkpoint_every=0)


@pytest.mark.benchmark(group="trainer-step")
@pytest.mark.parametrize("variant", [Variant("gdpo"), Variant("omninft", True, True, True)], ids=lambda v: v.name)
def test_step_time(benchmark, tmp_path: Path, variant: Variant) -> None:
    rewards = [MetricReward(Brightness()), MetricReward(Loudness())]
    weights = {r.name: 1.0 for r in rewards}
    times: list[float] = []

    def once() -> None:
        torch.manual_seed(0)
        logs = []
        train(Backbone.tiny(), variant, _config(), rewards, weights, seed=0, run_dir=tmp_path / variant.name,
              log=logs.append, progress=False)
        times.extend(entry.metrics["time/step_s"] for entry in logs)

    benchmark.pedantic(once, rounds=1, iterations=1)
    STEP_TIMES[variant.name] = float(np.median(times))
    benchmark.extra_info["median_step_s"] = STEP_TIMES[variant.name]
    if len(STEP_TIMES) == 2:
        ratio = STEP_TIMES["omninft"] / STEP_TIMES["gdpo"]
        benchmark.extra_info["omninft_over_gdpo"] = ratio
        print(f"\nOmniNFT / GDPO step time: {ratio:.3f} (budget 1.15)")
