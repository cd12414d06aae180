"""End to end: ``resume=true`` continues an ablation killed with SIGKILL, to the same result.

Two smoke ablations of one variant and seed, each in its own output folder and sqlite MLflow
store: A runs uninterrupted; B is killed with SIGKILL part-way through training and rerun with
``resume=true``.  On CPU the trainer is deterministic, so the resumed run's final evaluation
must equal A's exactly, and its MLflow history must read as if it had never been interrupted.

The kill lands after B has logged a step past its last checkpoint: the resumed run then
recomputes that step, which is exactly where a resume could log a step twice.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from omninft_bench.config import compose_config, to_dict
from trainers.experiment import AblationConfig, resume_mismatch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STEPS, CHECKPOINT_EVERY = 4, 2  # one mid-run checkpoint at step 2, then steps 2 and 3 to replay
STEP_METRIC = "time/step_s"  # logged at every step whatever the rewards and losses do
TIMEOUT = 300  # seconds per run; one takes about 30 s on 2 cores
CHECKPOINT = Path("runs") / "omninft" / "seed0" / "checkpoint.pt"


def command(tmp: Path) -> list[str]:
    # Weight-free rewards and metrics, as in test_run_smoke: SynthBind needs its shipped weights.
    return [
        sys.executable, "-m", "omninft_bench.run", "preset=smoke", "ablation=[omninft]",
        f"train.steps={STEPS}", f"train.checkpoint_every={CHECKPOINT_EVERY}",
        f"out={tmp / 'out'}", f"tracking_uri={uri(tmp)}", "experiment=resume",
        "progress=false", "report=false", "rewards={av_offset:1.0,temporal_flickering:0.5}",
        "eval.metrics=[av_offset,av_align,temporal_flickering,motion_smoothness,dynamic_degree]",
    ]  # fmt: skip


def uri(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'mlflow.db'}"


def start(tmp: Path, *extra: str) -> subprocess.Popen:
    """The command in a subprocess (SIGKILL must hit a whole interpreter), output to a log file."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    with open(tmp / "log.txt", "a") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command(tmp), *extra], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def wait(proc: subprocess.Popen) -> int:
    """The return code (-9 after SIGKILL); a run still going after ``TIMEOUT`` is killed."""
    try:
        return proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()


def log_tail(tmp: Path) -> str:
    return (tmp / "log.txt").read_text()[-3000:]


@functools.cache
def client(tmp: Path):
    """One client per store: opening a sqlite store costs about a second (schema check)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri(tmp))


def runs(tmp: Path) -> dict[str, Any]:
    """The ablation's MLflow runs by role ('parent') or variant ('base', 'omninft')."""
    exp = client(tmp).get_experiment_by_name("resume")
    found = client(tmp).search_runs([exp.experiment_id]) if exp else []
    return {r.data.tags.get("variant", r.data.tags.get("omninft.role")): r for r in found}


def logged_steps(tmp: Path, run) -> list[int]:
    return [m.step for m in client(tmp).get_metric_history(run.info.run_id, STEP_METRIC)]


def eval_metrics(run) -> dict[str, float]:
    # Every eval/* value, including the bootstrap CIs: the bootstrap is seeded, so they must match.
    return {k: v for k, v in run.data.metrics.items() if k.startswith("eval/")}


def kill_past_checkpoint(proc: subprocess.Popen, tmp: Path) -> None:
    """SIGKILL ``proc`` once it has logged step ``CHECKPOINT_EVERY``, i.e. during the next step.

    The window is one training step (about 2 s here), so each poll must be cheap: the store is
    opened while the base model is evaluated (its folder appears inside the parent run, so the
    store's tables exist by then), and afterwards each poll is one metric-history query.
    """

    def wait_for(ready: Callable[[], Any]) -> Any:
        while proc.poll() is None:
            if found := ready():
                return found
            time.sleep(0.05)
        return None

    if not wait_for(lambda: (tmp / "out" / "base").exists()):
        return
    child = wait_for(lambda: runs(tmp).get("omninft"))
    if child and wait_for(lambda: max(logged_steps(tmp, child), default=-1) >= CHECKPOINT_EVERY):
        os.kill(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ablations(tmp_path_factory) -> dict[str, Path]:
    a, b = tmp_path_factory.mktemp("uninterrupted"), tmp_path_factory.mktemp("killed")
    assert wait(start(a)) == 0, log_tail(a)

    proc = start(b)
    try:
        kill_past_checkpoint(proc, b)
    finally:
        rc = wait(proc)
    # The run must really have been interrupted mid-training, or the test would prove nothing.
    assert rc == -signal.SIGKILL, f"the run was not killed (rc={rc}):\n{log_tail(b)}"
    ckpt = torch.load(b / "out" / CHECKPOINT, map_location="cpu", weights_only=False)
    assert 1 <= ckpt["step"] < STEPS
    child = runs(b)["omninft"]
    assert child.info.status == "RUNNING"
    assert max(logged_steps(b, child)) >= ckpt["step"]  # a logged step the resume recomputes
    assert runs(b)["parent"].info.status == "RUNNING"

    # Other settings than the launched ones are refused, naming the key, and leave the run as it was.
    assert wait(start(b, "resume=true", "train.lr=0.001")) == 2, log_tail(b)
    assert "train.lr: 3e-05 -> 0.001" in log_tail(b)
    assert runs(b)["parent"].info.status == "RUNNING"

    assert wait(start(b, "resume=true")) == 0, log_tail(b)
    return {"uninterrupted": a, "resumed": b}


def test_resumed_run_finishes_in_the_same_runs(ablations) -> None:
    tmp = ablations["resumed"]
    resumed = runs(tmp)
    assert set(resumed) == {"parent", "base", "omninft"}
    assert len(client(tmp).search_runs([resumed["parent"].info.experiment_id])) == 3  # reused runs
    assert {r.info.status for r in resumed.values()} == {"FINISHED"}
    assert resumed["omninft"].data.tags["mlflow.parentRunId"] == resumed["parent"].info.run_id


def test_resumed_evaluation_equals_uninterrupted(ablations) -> None:
    full = eval_metrics(runs(ablations["uninterrupted"])["omninft"])
    resumed = eval_metrics(runs(ablations["resumed"])["omninft"])
    assert "eval/av_offset/ci_low" in full and len(full) == 15
    assert resumed == full


def test_resumed_history_has_every_step_once(ablations) -> None:
    tmp = ablations["resumed"]
    assert logged_steps(tmp, runs(tmp)["omninft"]) == list(range(STEPS))


def test_resume_mismatch_names_changed_added_and_dropped_keys() -> None:
    launched = to_dict(compose_config(AblationConfig, ["train.lr_scales={}", "progress=false"]))
    same = to_dict(compose_config(AblationConfig, ["train.lr_scales={}", "jobs=1"]))  # free keys only
    assert resume_mismatch(launched, same) == []
    now = to_dict(compose_config(AblationConfig, ["train.lr=0.001", "seeds=[0,1,2]"]))
    assert resume_mismatch(launched, now) == [
        "seeds: [0, 1] -> [0, 1, 2]", "train.lr: 3e-05 -> 0.001", "train.lr_scales.video: (not set) -> 0.5"]
