"""Re-score a finished ablation on another evaluation draw, without retraining.

``python -m omninft_bench.run stage=reevaluate experiment=omninft-default out=outputs/ablation eval.n=256``

Every run of an ablation is scored on the same evaluation prompts and sampling noise, and that
draw can move a change from the base as much as the training seeds do (README, "How the runs
count").  This stage reads the EMA weights that each finished run saved with its final checkpoint
(``OUT/runs/<variant>/seed<k>/checkpoint.pt``), scores them and the base model on another draw
(``eval.n`` prompts, noise from ``eval.seed``), and logs the result as an ablation of its own: a
parent run carrying the source's parameters (so the rewards are known) and one child per run
with the source's ``variant``, ``seed``, ``data_seed`` and switch tags.  The report and the
MLflow UI then read it like the original.

The reference clips are the ablation's own (its ``eval.n_reference``), so realism and
distribution metrics compare against the same set.  A run whose checkpoint is missing, stopped
before its last step, or not loadable into the model its parameters describe is skipped with a
message; the others are still scored.  A run trained with LoRA adapters (``train.lora_rank``;
the default for ``backbone=ltx2``) saved only the adapters' EMA: the base is loaded, the run's
adapters (rank, alpha and target modules from its parameters) are added, and the EMA is swapped
into them.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

from omninft_bench.config import CommonConfig, option, to_dict
from omninft_bench.data import synthav
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.tracking import run_context
from trainers.experiment import (
    BackboneSettings,
    EvalSettings,
    evaluate_backbone,
    git_commit,
    load_backbone,
    log_evaluation,
    read_reference,
    write_reference,
)
from trainers.lora import DEFAULT_TARGETS, add_lora
from trainers.omninft import OmniNFTConfig, lora_rank
from trainers.policy import EMA

__all__ = ["ReevaluateConfig", "ReevaluateError", "reevaluate"]

# tags a re-scored run keeps from its source run (the report groups and compares by them)
KEPT_TAGS = ("variant", "seed", "data_seed", "routing", "surgery", "reweighting", "advantage", "git_commit")


class ReevaluateError(ValueError):
    """The ablation to re-score cannot be: no such experiment or runs, or another backbone."""


@dataclasses.dataclass
class ReevaluateConfig(CommonConfig):
    """``python -m omninft_bench.run stage=reevaluate [experiment=...] [eval.n=256] [eval.seed=7] ...``"""

    out: str = option("outputs/ablation", "the ablation's output folder (reference clips, runs/<variant>/seed<k>/checkpoint.pt)")
    experiment: str = option("omninft-default", "MLflow experiment of the ablation; its newest parent run is re-scored")
    into: str = option("", "MLflow experiment of the re-evaluation; empty = <experiment>-eval<n>-seed<seed>")
    report: bool = option(True, "render the re-evaluation's report into OUT/reevaluate/<into>/report")
    progress: bool = option(True, "show progress bars")
    eval: EvalSettings = option(EvalSettings(), "the new evaluation draw")
    backbone: BackboneSettings = option(BackboneSettings(), "backbone the ablation trained (checked against its parent's params)")
    encoders: EncodersConfig = option(EncodersConfig(), "encoder backends")

    def target(self) -> str:
        return self.into or f"{self.experiment}-eval{self.eval.n}-seed{self.eval.seed}"


def _source(client: Any, experiment: str) -> tuple[Any, list[Any]]:
    """The newest parent run of ``experiment`` and its finished variant runs."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ReevaluateError(f"no MLflow experiment {experiment!r} in this tracking store; pass experiment=NAME")
    parents = client.search_runs([exp.experiment_id], "tags.`omninft.role` = 'parent'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise ReevaluateError(f"experiment {experiment!r} has no ablation parent run")
    parent = parents[0]
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  max_results=1000)
    variants = [r for r in children if r.data.tags.get("omninft.role") == "variant" and r.info.status == "FINISHED"]
    if not variants:
        raise ReevaluateError(f"the newest ablation of {experiment!r} ({parent.info.run_id}) has no finished variant runs")
    return parent, sorted(variants, key=lambda r: (r.data.tags.get("variant", ""), int(r.data.tags.get("seed", 0))))


def _check_backbone(cfg: ReevaluateConfig, params: dict[str, str]) -> None:
    for key, value in (("backbone.name", cfg.backbone.name), ("backbone.pretrained", cfg.backbone.pretrained)):
        if key in params and params[key] != str(value):
            raise ReevaluateError(f"the ablation ran with {key}={params[key]!r}, not {value!r}; pass {key}={params[key]}")


def _lora_settings(params: dict[str, str], backbone_kind: str) -> tuple[int, float, list[str]]:
    """``(rank, alpha, targets)`` of a run's LoRA adapters from its MLflow params, as the trainer
    chose them (``trainers.omninft.lora_rank``: -1 = full fine-tuning for the tiny backbone, the
    released r=32 for LTX-2); rank 0 = full fine-tuning."""
    rank = lora_rank(OmniNFTConfig(lora_rank=int(params.get("train.lora_rank", "-1"))), backbone_kind)
    alpha = float(params.get("train.lora_alpha", "0"))
    targets = params.get("train.lora_targets")
    return rank, alpha, list(ast.literal_eval(targets)) if targets else list(DEFAULT_TARGETS)


def _load_ema(backbone: Any, path: Path, steps: int | None, trainable_only: bool = False) -> EMA | str:
    """The run's evaluation EMA from its final checkpoint, or why it cannot be used.

    ``trainable_only``: the run trained LoRA adapters (already added to ``backbone``), so its EMA
    holds only them."""
    if not path.exists():
        return f"no checkpoint at {path}"
    state = torch.load(path, map_location="cpu", weights_only=False)
    if steps is not None and int(state["step"]) != steps:
        return f"{path} is from step {state['step']}, not the run's last ({steps})"
    ema = EMA(backbone.transformer, trainable_only=trainable_only)
    try:
        ema.load_state_dict(state["ema"])
    except KeyError as exc:
        what = "LoRA adapters" if trainable_only else "full fine-tuning"
        return f"{path} does not fit the model its run's parameters describe ({what}): {exc}"
    return ema


def reevaluate(cfg: ReevaluateConfig, argv: list[str] | None = None) -> str:
    """Score the base model and every finished run of the ablation on ``cfg.eval``'s draw;
    returns the new parent run id."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from omninft_bench.tracking import log_params

    client = MlflowClient(cfg.tracking_uri)
    source, runs = _source(client, cfg.experiment)
    _check_backbone(cfg, source.data.params)
    out = Path(cfg.out)
    folder = out / "reevaluate" / cfg.target()
    # the ablation's own reference clips: realism and distribution metrics compare against them
    n_reference = int(source.data.params.get("eval.n_reference", cfg.eval.n_reference))
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, n_reference=n_reference))
    reference_dir = out / "reference"
    write_reference(reference_dir, n_reference, progress=cfg.progress)
    read_reference(reference_dir)  # fails now on an unreadable reference, not after the base
    eval_refs = synthav.eval_set(synthav.SynthAVConfig(), cfg.eval.n)

    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment(cfg.target())
    tags = {"omninft.role": "parent", "git_commit": git_commit(), "omninft.source_run": source.info.run_id,
            "omninft.command": " ".join(["python -m omninft_bench.run stage=reevaluate", *(argv or [])])}
    with run_context(run_name=f"reevaluate {source.info.run_name}", tags=tags) as parent:
        params = {k: v for k, v in source.data.params.items() if not k.startswith("eval.")}
        log_params({**params, **{f"eval.{k}": v for k, v in dataclasses.asdict(cfg.eval).items()}})
        mlflow.log_dict(to_dict(cfg), "config.json")
        with run_context(run_name="base", nested=True, tags={"omninft.role": "base", "variant": "base",
                                                             "seed": str(cfg.eval.seed)}):
            results, clips = evaluate_backbone(load_backbone(cfg), cfg, eval_refs, reference_dir, folder / "base")
            log_evaluation(results, clips, cfg.eval.n_samples)
        for run in runs:
            t = run.data.tags
            backbone = load_backbone(cfg)
            rank, alpha, targets = _lora_settings({**source.data.params, **run.data.params}, backbone.kind)
            if rank:
                add_lora(backbone.transformer, rank, alpha, targets)
            steps = run.data.params.get("train.steps")
            ckpt = out / "runs" / t.get("variant", "") / f"seed{t.get('seed', '')}" / "checkpoint.pt"
            ema = _load_ema(backbone, ckpt, int(steps) if steps else None, trainable_only=bool(rank))
            if isinstance(ema, str):
                print(f"skipping {run.info.run_name}: {ema}", file=sys.stderr)
                continue
            kept = {k: t[k] for k in KEPT_TAGS if k in t}
            with run_context(run_name=run.info.run_name, nested=True,
                             tags={**kept, "omninft.role": "variant", "omninft.source_run": run.info.run_id}):
                log_params(dict(run.data.params))
                with ema.swapped_in(backbone.transformer):
                    results, clips = evaluate_backbone(backbone, cfg, eval_refs, reference_dir,
                                                       folder / t.get("variant", "") / f"seed{t.get('seed', '')}")
                log_evaluation(results, clips, cfg.eval.n_samples)
        parent_id = parent.info.run_id
    if cfg.report:
        from omninft_bench.report import render_report

        paths = render_report(cfg.target(), folder / "report", cfg.tracking_uri, parent_run_id=parent_id)
        print(f"report: {paths.markdown} and {paths.html}")
    return parent_id
