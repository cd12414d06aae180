"""The trainer under ``accelerate launch`` with 2 CPU processes (gloo): weights stay in sync."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_two_process_training_keeps_replicas_identical(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # accelerate's --cpu flag runs a single process; --multi_gpu on a GPU-less machine starts
    # torchrun workers that initialise gloo (accelerate's MULTI_CPU mode).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(port), str(HERE / "dist_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["backend"] == "gloo" for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]  # DDP all-reduce kept the replicas equal
    assert ranks[0]["steps"] == [0, 1, 2] and ranks[1]["steps"] == []  # only rank 0 logs
    assert (tmp_path / "run" / "checkpoint.pt").exists()
