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

STEPS = 4
ROUNDS = 3
# GDPO and OmniNFT alternate, ROUNDS times each, so that drift in the machine's speed (other jobs
# on the shared cores, which moved a single pair of runs by 10-30 %) lands on both sides of the
# ratio instead of on one.
VARIANTS = {"gdpo": Variant("gdpo"), "omninft": Variant("omninft", True, True, True)}
ORDER = [(f"{name}-{k}", name) for k in range(ROUNDS) for name in VARIANTS]
STEP_TIMES: dict[str, list[float]] = {name: [] for name in VARIANTS}  # median step of each round


def _config() -> OmniNFTConfig:
    # Default group geometry and sampler; the first step (warm-up) is not counted.
    return OmniNFTConfig(steps=STEPS, checkpoint_every=0)


@pytest.mark.benchmark(group="trainer-step")
@pytest.mark.parametrize(("label", "name"), ORDER, ids=[label for label, _ in ORDER])
def test_step_time(benchmark, tmp_path: Path, label: str, name: str) -> None:
    rewards = [MetricReward(Brightness()), MetricReward(Loudness())]
    weights = {r.name: 1.0 for r in rewards}
    times: list[float] = []

    def once() -> None:
        torch.manual_seed(0)
        logs = []
        train(Backbone.tiny(), VARIANTS[name], _config(), rewards, weights, seed=0, run_dir=tmp_path / label,
              log=logs.append, progress=False)
        times.extend(entry.metrics["time/step_s"] for entry in logs)

    benchmark.pedantic(once, rounds=1, iterations=1)
    STEP_TIMES[name].append(float(np.median(times[1:])))
    benchmark.extra_info["median_step_s"] = STEP_TIMES[name][-1]
    if all(len(v) == ROUNDS for v in STEP_TIMES.values()):
        # One ratio per round (adjacent runs), combined by the geometric mean.
        rounds = np.array(STEP_TIMES["omninft"]) / np.array(STEP_TIMES["gdpo"])
        ratio = float(np.exp(np.log(rounds).mean()))
        benchmark.extra_info["omninft_over_gdpo"] = ratio
        benchmark.extra_info["per_round"] = rounds.round(3).tolist()
        print(f"\nOmniNFT / GDPO step time: {ratio:.3f} (rounds {rounds.round(3).tolist()}; budget 1.15)")
