"""Worker for test_distributed.py: the OmniNFT loop under ``accelerate launch`` (2 CPU processes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer import Brightness, Loudness, config, small_backbone  # noqa: E402

from omninft_bench.rewards import MetricReward  # noqa: E402
from trainers.omninft import Variant, train  # noqa: E402

out = Path(sys.argv[1])
state = PartialState(cpu=True)
logs = []
rewards = [MetricReward(Brightness()), MetricReward(Loudness())]
backbone, _ = train(small_backbone(), Variant("omninft", True, True, True), config(steps=3), rewards,
                    {r.name: 1.0 for r in rewards}, seed=0, run_dir=out / "run", log=logs.append, progress=False)
digest = float(sum(p.detach().double().sum() for p in backbone.transformer.parameters()))
(out / f"rank{state.process_index}.json").write_text(json.dumps({
    "world": state.num_processes, "digest": digest, "steps": [entry.step for entry in logs],
    "backend": str(torch.distributed.get_backend()) if torch.distributed.is_initialized() else None,
}))
