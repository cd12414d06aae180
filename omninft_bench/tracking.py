"""MLflow helpers shared by every entry point: one run per command, params flattened,
results as JSON artifacts, and a FAILED status when the command raises.

MLflow is imported on first use, so commands that do not track start fast.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from omninft_bench.config import flatten

__all__ = ["log_artifact", "log_dict", "log_metrics", "log_params", "mlflow_run", "run_context"]

_MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
_BATCH = 100


@contextmanager
def mlflow_run(
    tracking_uri: str,
    experiment: str,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """Start a run in ``experiment`` (created if needed) at ``tracking_uri``; yields the run.

    Ends as :func:`run_context` says.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with run_context(run_name=run_name, tags=tags) as run:
        yield run


@contextmanager
def run_context(
    *,
    run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """A run in the current experiment (new, or continued by ``run_id``); yields it.

    The run ends FINISHED on normal exit, KILLED on Ctrl-C, and FAILED on any other exception,
    which is saved as the artifact ``traceback.txt`` and re-raised.
    """
    import mlflow

    run = mlflow.start_run(run_id=run_id, run_name=run_name or None, tags=dict(tags or {}), nested=nested)
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.log_text(traceback.format_exc(), "traceback.txt")
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")


def log_params(params: Mapping[str, Any]) -> None:
    """Log a (nested) dict as params with dotted keys; long values are truncated."""
    import mlflow

    flat = {k: str(v)[:_MAX_PARAM_CHARS] for k, v in flatten(dict(params)).items()}
    items = list(flat.items())
    for start in range(0, len(items), _BATCH):
        mlflow.log_params(dict(items[start : start + _BATCH]))


def log_metrics(metrics: Mapping[str, float | int | None], step: int | None = None) -> None:
    """Log numeric metrics; ``None`` and non-finite values are skipped (MLflow rejects NaN)."""
    import mlflow

    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    items = list(clean.items())
    for start in range(0, len(items), _BATCH):
        mlflow.log_metrics(dict(items[start : start + _BATCH]), step=step)


def log_dict(obj: Mapping[str, Any], artifact_file: str) -> None:
    """Store a dict as a JSON (or YAML, by suffix) artifact of the active run."""
    import mlflow

    mlflow.log_dict(dict(obj), artifact_file)


def log_artifact(path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Copy a local file into the active run's artifacts."""
    import mlflow

    mlflow.log_artifact(os.fspath(path), artifact_path)
