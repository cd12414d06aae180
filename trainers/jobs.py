"""Several variant x seed runs of an ablation at once, one process each (``jobs=N``).

On the 2-core machine the tiny backbone barely uses a second thread: a 32-clip, 10-step rollout
took 3.4-3.8 s on 2 torch threads and 3.7-4.2 s on 1, while two 1-thread processes side by side
took 4.1 and 4.2 s each (``/tmp`` timing script, 2026-12-03).  Two 1-thread runs at once
therefore do nearly twice the work of one 2-thread run (hence the defaults ``jobs=0``, 2 on
CPU, and ``train.threads=1``).  A run's numbers do not depend on ``jobs``: its prompts and noise
come from its own ``data_seed``.  They do depend on the thread count, in the last digits, so
``tests/test_run_smoke.py`` checks that a parallel ablation logs exactly the metrics of a
sequential one on the same threads.

The main process keeps the parent MLflow run and the base evaluation; each worker process
(``spawn``) builds its own rewards, opens its child run with the parent's id as
``mlflow.parentRunId`` (what MLflow's nested runs store) and trains and evaluates like the
sequential path (:func:`trainers.experiment.run_variant`).  A failing run is marked FAILED by
its worker; the others finish, then the first error is raised.  A killed worker leaves its run
RUNNING, and ``resume=true`` continues it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

__all__ = ["Job", "run_jobs"]


@dataclass(frozen=True)
class Job:
    """One variant x seed run to do; ``prior_id`` continues an unfinished MLflow run."""

    variant: Any  # trainers.omninft.Variant
    seed: int
    prior_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.variant.name} seed {self.seed}"


_WORKER: dict[str, Any] = {}


def _init_worker(cfg: Any) -> None:
    """Per process: MLflow target, rewards and evaluation prompts (built once, reused by its runs)."""
    import mlflow

    from omninft_bench.data import synthav
    from trainers.experiment import ablation_rewards, reference_folder

    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment(cfg.experiment)
    _WORKER.update(cfg=cfg, rewards=ablation_rewards(cfg), reference_dir=reference_folder(cfg),
                   eval_refs=synthav.eval_set(synthav.SynthAVConfig(), cfg.eval.n))


def _run_job(job: Job, tags: dict[str, str]) -> float:
    from trainers.experiment import run_variant

    start = time.perf_counter()
    w = _WORKER
    run_variant(w["cfg"], job.variant, job.seed, w["rewards"], w["eval_refs"], w["reference_dir"], tags,
                prior_id=job.prior_id)
    return time.perf_counter() - start


def run_jobs(cfg: Any, jobs: Sequence[Job], parent_id: str, tags: dict[str, str], processes: int) -> None:
    """Run ``jobs`` in ``processes`` worker processes under the MLflow run ``parent_id``."""
    from tqdm import tqdm

    if not jobs:
        return
    child_tags = {**tags, "mlflow.parentRunId": parent_id}
    worker_cfg = _quiet(cfg)
    errors: list[tuple[Job, BaseException]] = []
    bar = tqdm(total=len(jobs), desc=f"runs ({processes} at once)", unit="run", disable=not cfg.progress)
    with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(worker_cfg,)) as pool:
        running: dict[Future, Job] = {pool.submit(_run_job, job, child_tags): job for job in jobs}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    seconds = future.result()
                    bar.write(f"{job.label}: done in {seconds:.0f} s")
                except BaseException as exc:  # the worker marked its run FAILED; finish the others
                    bar.write(f"{job.label}: FAILED ({exc.__class__.__name__}: {exc})")
                    errors.append((job, exc))
                bar.update(1)
    bar.close()
    if errors:
        job, exc = errors[0]
        raise RuntimeError(f"{len(errors)} of {len(jobs)} runs failed, first {job.label}: "
                           f"{exc.__class__.__name__}: {exc} (its traceback is the run's traceback.txt artifact; "
                           "resume=true reruns the failed runs)") from exc


def _quiet(cfg: Any) -> Any:
    """The workers' copy of the config: no per-step progress bars (several would share one terminal)."""
    import dataclasses

    return dataclasses.replace(cfg, progress=False)
