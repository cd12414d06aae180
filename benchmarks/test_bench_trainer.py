"""Training-step time of the GDPO baseline against full OmniNFT, side by side.

OmniNFT adds v2a attention capture during rollout, gradient-surgery hooks and token weights;
the budget is at most 1.15x the GDPO step.  Both run the same default-size tiny backbone
(random init: the cost does not depend on the weights) with the same trivial rewards, so the
ratio isolates the components' overhead.  The ratio of median step times (warm-up step left
out) is printed and stored in the last row's ``extra_info``; the rows' own times include building
the model.
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

STEPS = 6
# GDPO is measured before and after OmniNFT, so that drift in the machine's speed (other jobs on
# the shared cores) lands on both sides of the ratio instead of on one.
ORDER = [("gdpo", Variant("gdpo")), ("omninft", Variant("omninft", True, True, True)),
         ("gdpo_again", Variant("gdpo"))]
STEP_TIMES: dict[str, float] = {}


def _config() -> OmniNFTConfig:
    # Default group geometry and sampler; the first step (warm-up) is not counted.
    return OmniNFTConfig(steps=STEPS, checkpoint_every=0)


@pytest.mark.benchmark(group="trainer-step")
@pytest.mark.parametrize(("label", "variant"), ORDER, ids=[label for label, _ in ORDER])
def test_step_time(benchmark, tmp_path: Path, label: str, variant: Variant) -> None:
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
    STEP_TIMES[label] = float(np.median(times[1:]))
    benchmark.extra_info["median_step_s"] = STEP_TIMES[label]
    if len(STEP_TIMES) == len(ORDER):
        ratio = STEP_TIMES["omninft"] / np.mean([STEP_TIMES["gdpo"], STEP_TIMES["gdpo_again"]])
        benchmark.extra_info["omninft_over_gdpo"] = float(ratio)
        print(f"\nOmniNFT / GDPO median step time: {ratio:.3f} (budget 1.15)")
