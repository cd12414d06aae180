"""``python -m omninft_bench.run ablation=...``: evaluate the base, train every variant x seed, report.

MLflow layout (docs/CONTRACTS.md): one parent run per ablation with nested child runs, one for
the base model's evaluation and one per variant x seed, each tagged with its variant, seed and
switches so the MLflow UI compares them directly.  Outputs under ``out/``: the SynthAV
reference clips, per-run checkpoints and evaluation folders (JavisBench layout, scored by
``omninft_bench.evaluate``), and the report.

``resume=true`` reuses the newest unfinished parent run of the experiment: finished children
are skipped, an interrupted child continues from its last checkpoint.  Any exception marks
the runs FAILED and stores the traceback as an artifact.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from omninft_bench.config import CommonConfig, flatten, option, to_dict
from omninft_bench.data import synthav
from omninft_bench.data.layout import iter_clips, write_javisbench
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.evaluate import EvaluateConfig, evaluate, plan_evaluation
from omninft_bench.media import AVClip, writer_settings
from omninft_bench.metrics import ALL_ENCODER_METRICS, EvalContext
from omninft_bench.rewards import make_rewards
from omninft_bench.tracking import run_context
from trainers.ablation import STREAMS, data_seed, expand_ablation
from trainers.backbone import Backbone
from trainers.jobs import Job, run_jobs
from trainers.omninft import OmniNFTConfig, StepLog, Variant, train
from trainers.sampling import SamplerConfig, sample

__all__ = ["AblationConfig", "evaluate_backbone", "run_ablation"]

# On the default (tiny, SynthAV) domain every encoder metric runs on the in-house SynthBind space.
SYNTHBIND_EVERYWHERE = {ALL_ENCODER_METRICS: "synthbind"}
# One reward per role, each weighted 1. Sync is javis_score, the alternative to av_offset:
# the weight-free av_offset estimate is not a learnable reward at this budget (its within-group
# spread is mostly estimator noise; cross-batch gradient cosine -0.003, and eval av_offset got
# worse with it as the reward: +0.032 s over the 16 runs at 1523f36). av_offset is still
# evaluated and reported. Measurements: README, "Which sync reward".
DEFAULT_REWARDS = {"clip_score": 1.0, "video_realism": 1.0, "clap_score": 1.0, "audio_realism": 1.0, "javis_score": 1.0}


@dataclass
class EvalSettings:
    n: int = option(64, "SynthAV evaluation prompts scored after training (one clip each)")
    n_reference: int = option(128, "SynthAV reference clips (distribution metrics and realism rewards)")
    seed: int = option(1234, "seed of the evaluation noise (same for every variant)")
    sampler: SamplerConfig = option(SamplerConfig(), "sampler used for evaluation clips")
    metrics: list[str] = option([], "metrics of the final evaluation; empty = every registered metric")
    n_samples: int = option(4, "evaluation clips logged as MLflow artifacts per run")
    n_bootstrap: int = option(1000, "bootstrap resamples of the CI of per-sample metrics")
    n_bootstrap_distribution: int = option(
        20, "bootstrap resamples of the CI of fvd/kvd/fad (each recomputes the metric; the report's CIs are over seeds)"
    )


@dataclass
class BackboneSettings:
    name: str = option("tiny", "tiny (shipped SynthAV checkpoint) or ltx2 (released checkpoint, GPU)")
    pretrained: str = option("", "checkpoint: tiny safetensors file, or the LTX-2 diffusers folder")


@dataclass
class AblationConfig(CommonConfig):
    """``python -m omninft_bench.run [ablation=all] [seeds=[0,1]] [preset=smoke] ...``"""

    out: str = option("outputs/ablation", "output folder (reference clips, checkpoints, evaluations, report)")
    ablation: Any = option("all", "all | none | full | loo | a list of variants, e.g. [gdpo,omninft,nft]")
    seeds: list[int] = option([0, 1], "seeds; every variant runs once per seed")
    streams: str = option("per_run", "per_run: each variant x seed run draws its own prompts and noise (independent replicates); per_seed: the variants of a seed share them (see trainers.ablation.data_seed)")
    preset: str = option("default", "default | smoke (tiny sizes, gdpo and omninft only, for tests)")
    experiment: str = option("omninft-default", "MLflow experiment")
    resume: bool = option(False, "continue the newest unfinished ablation of this experiment")
    report: bool = option(True, "render the report at the end")
    progress: bool = option(True, "show progress bars")
    jobs: int = option(0, "variant x seed runs at once, one process each with train.threads torch threads (trainers.jobs); 0 = 2 on CPU, 1 with a GPU")
    rewards: dict[str, float] = option(dict(DEFAULT_REWARDS), "reward name -> weight (names from the metric registry)")
    train: OmniNFTConfig = option(OmniNFTConfig(), "RL hyperparameters")
    eval: EvalSettings = option(EvalSettings(), "final evaluation")
    backbone: BackboneSettings = option(BackboneSettings(), "backbone")
    encoders: EncodersConfig = option(EncodersConfig(), "encoder backends")

    def __post_init__(self) -> None:
        if self.streams not in STREAMS:
            raise ValueError(f"streams={self.streams!r}; use one of {', '.join(STREAMS)}")
        if self.jobs < 0:
            raise ValueError(f"jobs={self.jobs}; use 0 (auto) or a positive number of processes")


SMOKE_PRESET = [
    "train.steps=2", "train.prompts_per_step=2", "train.group_size=4", "train.sampler.steps=4",
    "train.train_timesteps=1", "train.checkpoint_every=1", "eval.n=6", "eval.n_reference=24",
    "eval.sampler.steps=4", "eval.n_samples=2", "eval.n_bootstrap=200", "eval.n_bootstrap_distribution=5", "seeds=[0]", "ablation=[gdpo,omninft]",
    "jobs=1",  # two short runs: starting worker processes would cost more than it saves
]  # fmt: skip


def preset_overrides(argv: Sequence[str]) -> list[str]:
    """The preset's overrides go first, so explicit ``key=value`` arguments win."""
    presets = [a.split("=", 1)[1] for a in argv if a.startswith("preset=")]
    if presets and presets[-1] == "smoke":
        return SMOKE_PRESET + list(argv)
    if presets and presets[-1] != "default":
        raise ValueError(f"preset={presets[-1]!r}; expected default or smoke")
    return list(argv)


# --------------------------------------------------------------------------- provenance


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment() -> dict[str, Any]:
    names = ["torch", "diffusers", "transformers", "mlflow", "numpy", "scipy", "av", "opencv-python-headless",
             "hydra-core", "omninft-bench"]
    packages = {}
    for name in names:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": packages,
            "torch_threads": torch.get_num_threads()}


# --------------------------------------------------------------------------- MLflow


def _children(parent_id: str) -> dict[tuple[str, str], Any]:
    import mlflow

    runs = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", output_format="list")
    return {(r.data.tags.get("variant", ""), r.data.tags.get("seed", "")): r for r in runs}


def _resumable_parent(experiment: str) -> str | None:
    import mlflow

    runs = mlflow.search_runs(
        experiment_names=[experiment], filter_string="tags.`omninft.role` = 'parent'",
        order_by=["start_time DESC"], max_results=1, output_format="list",
    )
    if runs and runs[0].info.status != "FINISHED":
        return runs[0].info.run_id
    return None


# Keys a resumed ablation may change: how it is shown and scheduled, not what it computes.
RESUME_FREE_KEYS = ("resume", "progress", "report", "jobs")


def resume_mismatch(launched: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: launched -> now`` for every setting (dotted key) that differs between the config an
    unfinished ablation was launched with (its ``config.json``) and the one a ``resume=true``
    command composes.  A key only one side has (an option added or a dict entry dropped) counts."""
    a = flatten(launched)
    b = flatten(json.loads(json.dumps(current)))  # tuples -> lists, as the stored JSON has them
    unset = "(not set)"
    return [f"{k}: {a.get(k, unset)} -> {b.get(k, unset)}" for k in sorted(set(a) | set(b))
            if k.split(".")[0] not in RESUME_FREE_KEYS and a.get(k, unset) != b.get(k, unset)]


class ResumeMismatchError(ValueError):
    """``resume=true`` with settings other than those the unfinished ablation was launched with."""


def _check_resume_config(parent_id: str, cfg: AblationConfig) -> None:
    """Refuse to resume an ablation with settings other than those it was launched with."""
    import mlflow

    try:
        launched = mlflow.artifacts.load_dict(f"runs:/{parent_id}/config.json")
    except Exception:  # noqa: BLE001 - an ablation killed before it logged its config has nothing to compare
        return
    diff = resume_mismatch(launched, to_dict(cfg))
    if diff:
        commit = mlflow.get_run(parent_id).data.tags.get("git_commit", "unknown")
        raise ResumeMismatchError(
            f"resume=true: the unfinished ablation {parent_id} (commit {commit}) was launched with other "
            f"settings; resuming would mix two recipes. Differences (launched -> this command): "
            + "; ".join(diff) + ". Pass the launched values as overrides (a key '(not set)' when launched "
            "comes from a newer version: resume with the launching commit), or start a new ablation "
            "without resume=true.")


def _last_logged_step(run_id: str) -> int:
    """The last training step in a run's history, -1 if none (the trainer logs ``time/step_s`` at
    every step, in the same batch as the step's other metrics)."""
    from mlflow.tracking import MlflowClient

    return max((m.step for m in MlflowClient().get_metric_history(run_id, "time/step_s")), default=-1)


# --------------------------------------------------------------------------- evaluation


def generate_clips(backbone: Backbone, refs: Sequence[AVClip], sampler: SamplerConfig, seed: int,
                   batch_size: int = 32) -> list[AVClip]:
    """One generated clip per reference prompt; noise depends only on ``seed`` and the index."""
    clips: list[AVClip] = []
    for start in range(0, len(refs), batch_size):
        chunk = refs[start : start + batch_size]
        gen = torch.Generator().manual_seed(seed + start)
        result = sample(backbone, [c.prompt for c in chunk], sampler, generator=gen)
        metas = [{"audio_text": c.meta.get("audio_text", ""), "categories": c.meta.get("categories", {}),
                  "gt": {}} for c in chunk]
        clips.extend(backbone.decode(result.video, result.audio, [c.prompt for c in chunk], metas))
    return clips


def evaluate_backbone(
    backbone: Backbone, cfg: AblationConfig, eval_refs: Sequence[AVClip], reference_dir: Path, out_dir: Path
) -> tuple[dict[str, Any], Path]:
    """Sample the evaluation prompts, write them as a JavisBench folder, score the full suite."""
    with torch.no_grad():
        clips = generate_clips(backbone, eval_refs, cfg.eval.sampler, cfg.eval.seed)
    write_javisbench(out_dir, clips, total=len(clips), progress=False)
    ecfg = EvaluateConfig(
        input=str(out_dir), reference=str(reference_dir), metrics=list(cfg.eval.metrics or all_metric_names()),
        backends=[f"{k}:{v}" for k, v in SYNTHBIND_EVERYWHERE.items()] if cfg.backbone.name == "tiny" else [],
        track=False, out=str(out_dir / "eval"), cache_dir=str(reference_dir.parent / ".feature_cache"), n_bootstrap=cfg.eval.n_bootstrap,
        n_bootstrap_distribution=cfg.eval.n_bootstrap_distribution,
        progress=False, encoders=cfg.encoders, tracking_uri=cfg.tracking_uri,
    )
    return evaluate(plan_evaluation(ecfg)), out_dir


REFERENCE_STAMP = "reference_stamp.json"


def reference_stamp(n: int) -> dict[str, Any]:
    """What a reference folder's decoded clips depend on: their number, the SynthAV ground-truth
    version and the mp4 writer's settings (:func:`omninft_bench.media.writer_settings`)."""
    return {"n": n, "synthav_version": synthav.GT_VERSION, "writer": writer_settings()}


def write_reference(reference_dir: Path, n: int, *, progress: bool = False) -> None:
    """Write ``n`` SynthAV reference clips as a JavisBench folder, unless the folder's stamp
    (``reference_stamp.json``) says it already holds exactly these clips.

    A folder of another size, written by other encoder settings or library versions, or without a
    stamp is rewritten: the realism rewards and the distribution metrics score against the decoded
    files, so reusing clips encoded differently would move every number of a run.
    """
    stamp = reference_stamp(n)
    stamp_file = reference_dir / REFERENCE_STAMP
    if (reference_dir / "prompts.csv").exists() and stamp_file.exists():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                return
        except json.JSONDecodeError:
            pass  # a torn stamp: rewrite the folder
    stamp_file.unlink(missing_ok=True)  # an interrupted rewrite leaves no stamp, so it is redone
    reference = synthav.reference_set(synthav.SynthAVConfig(), n)
    write_javisbench(reference_dir, reference, total=n, progress=progress)
    stamp_file.write_text(json.dumps(stamp, indent=1) + "\n")


def read_reference(reference_dir: Path) -> list[AVClip]:
    """The reference clips as the final evaluation reads them: decoded from the mp4 (H.264, 4:2:0
    chroma) and wav files of ``reference_dir``, not the procedural frames they were written from.

    The realism rewards must score against this reference.  At 32 x 32 the codec's chroma
    subsampling moves the reference's frame-embedding Gaussian enough to flip the sign of
    ``video_realism``'s progress: trained against the procedural frames, a ``video_realism``-only
    run improved that reward on the training prompts and made the evaluated metric worse on both
    seeds (+0.043, +0.061); against this reference the same run improved it on both (-0.045,
    -0.024).  Measured 2026-12-03 (``ablation=[gdpo] seeds=[0,1] rewards={video_realism:1.0}``).
    """
    return list(iter_clips(reference_dir))


def all_metric_names() -> list[str]:
    from omninft_bench.metrics import list_metrics

    return [spec.name for spec in list_metrics()]


def log_evaluation(results: dict[str, Any], folder: Path, n_samples: int) -> None:
    from omninft_bench.tracking import log_artifact, log_metrics

    flat: dict[str, float | None] = {}
    for name, est in results["metrics"].items():
        flat[f"eval/{name}"] = est["value"]
        flat[f"eval/{name}/ci_low"] = est["ci_low"]
        flat[f"eval/{name}/ci_high"] = est["ci_high"]
    log_metrics(flat)
    log_artifact(folder / "eval" / "results.json", "eval")
    log_artifact(folder / "eval" / "per_sample.jsonl", "eval")
    log_artifact(folder / "prompts.csv", "samples")
    for i in range(n_samples):
        for suffix in (".mp4", ".wav"):
            path = folder / "samples" / f"sample_{i:04d}{suffix}"
            if path.exists():
                log_artifact(path, "samples")


# --------------------------------------------------------------------------- the ablation


def reference_folder(cfg: AblationConfig) -> Path:
    return Path(cfg.out) / "reference"


def ablation_rewards(cfg: AblationConfig) -> list:
    """The configured rewards, scoring against the decoded reference clips of ``cfg.out``; a
    missing encoder fails here, before any evaluation or training."""
    ctx = EvalContext(cfg.encoders, reference=read_reference(reference_folder(cfg)),
                      backends=SYNTHBIND_EVERYWHERE if cfg.backbone.name == "tiny" else None)
    rewards = make_rewards(list(cfg.rewards), ctx)
    ctx.check([r.metric for r in rewards])
    return rewards


def load_backbone(cfg: AblationConfig) -> Backbone:
    return Backbone.build(cfg.backbone.name, cfg.backbone.pretrained)


def run_ablation(cfg: AblationConfig, argv: Sequence[str] = ()) -> str | None:
    """Run the configured ablation; returns the parent MLflow run id (None on non-main processes).

    Under ``accelerate launch`` every process trains (data parallel: its own prompts and noise,
    gradients all-reduced); only the main process evaluates and talks to MLflow.
    """
    import mlflow
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process
    if state.num_processes > 1 and cfg.resume:
        raise ValueError("resume=true is supported in single-process runs only")
    if state.num_processes > 1 and cfg.jobs > 1:
        raise ValueError(f"jobs={cfg.jobs} runs variants in parallel processes; under accelerate launch use jobs=1")
    jobs = cfg.jobs or (1 if torch.cuda.is_available() or state.num_processes > 1 else 2)
    variants = expand_ablation(cfg.ablation)
    # The base evaluation runs on the threads the runs use: the thread count moves results in the
    # last digits, and a run's numbers must not depend on what this process did before.
    torch.set_num_threads(cfg.train.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    # Reference clips (distribution metrics, realism rewards) and evaluation prompts: SynthAV.
    gen_cfg = synthav.SynthAVConfig()
    reference_dir = reference_folder(cfg)
    if main:
        write_reference(reference_dir, cfg.eval.n_reference, progress=cfg.progress)
    state.wait_for_everyone()
    rewards = ablation_rewards(cfg)
    eval_refs = synthav.eval_set(gen_cfg, cfg.eval.n)

    if not main:
        for variant in variants:
            for seed in cfg.seeds:
                train_variant(cfg, variant, seed, rewards, log=None)
                state.wait_for_everyone()
        return None

    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment(cfg.experiment)
    commit = git_commit()
    parent_id = _resumable_parent(cfg.experiment) if cfg.resume else None
    if parent_id:
        _check_resume_config(parent_id, cfg)  # before the run is reopened: a refusal leaves it as it was
    tags = {"omninft.role": "parent", "git_commit": commit,
            "omninft.command": " ".join(["python -m omninft_bench.run", *argv])}
    with run_context(run_id=parent_id, run_name=None if parent_id else f"ablation {cfg.ablation}", tags=tags) as parent:
        parent_id = parent.info.run_id
        if not mlflow.get_run(parent_id).data.params:
            from omninft_bench.tracking import log_params

            log_params(to_dict(cfg))
            mlflow.log_dict(to_dict(cfg), "config.json")
            mlflow.log_dict(environment(), "environment.json")
        done = _children(parent_id)

        child_tags = {"git_commit": commit}
        base_seed = str(cfg.eval.seed)  # the base is not trained: its seed is the evaluation noise's
        prior = done.get(("base", base_seed))
        if prior is None or prior.info.status != "FINISHED":
            with run_context(run_id=prior.info.run_id if prior else None, run_name="base", nested=True,
                             tags={**child_tags, "omninft.role": "base", "variant": "base", "seed": base_seed}):
                results, folder = evaluate_backbone(load_backbone(cfg), cfg, eval_refs, reference_dir, out / "base")
                log_evaluation(results, folder, cfg.eval.n_samples)

        todo = [Job(variant, seed, prior.info.run_id if prior is not None else None)
                for variant in variants for seed in cfg.seeds
                if (prior := done.get((variant.name, str(seed)))) is None or prior.info.status != "FINISHED"]
        if jobs > 1:
            run_jobs(cfg, todo, parent_id, child_tags, jobs)
        else:
            for job in todo:
                run_variant(cfg, job.variant, job.seed, rewards, eval_refs, reference_dir, child_tags,
                            prior_id=job.prior_id)
                state.wait_for_everyone()

    if cfg.report:
        render(cfg, parent_id)
    return parent_id


def train_variant(cfg: AblationConfig, variant: Variant, seed: int, rewards, log, resume: bool = False):
    backbone = load_backbone(cfg)
    weights = {name: float(w) for name, w in cfg.rewards.items()}
    run_dir = Path(cfg.out) / "runs" / variant.name / f"seed{seed}"
    return train(backbone, variant, cfg.train, rewards, weights, seed=data_seed(variant.name, seed, cfg.streams),
                 run_dir=run_dir, resume=resume, log=log, progress=cfg.progress, label=f"{variant.name} seed {seed}")


def run_variant(cfg: AblationConfig, variant: Variant, seed: int, rewards, eval_refs, reference_dir: Path,
                tags: dict[str, str], prior_id: str | None) -> None:
    """Train one variant x seed in its own (nested) MLflow run and evaluate its EMA weights."""
    from omninft_bench.tracking import log_metrics, log_params

    stream = data_seed(variant.name, seed, cfg.streams)
    run_tags = {**tags, "omninft.role": "variant", "variant": variant.name, "seed": str(seed),
                "data_seed": str(stream),
                **{k: str(v).lower() for k, v in variant.switches().items()}, "advantage": variant.advantage}
    with run_context(run_id=prior_id, run_name=f"{variant.name} seed {seed}", nested=True, tags=run_tags):
        if prior_id is None:
            params = flatten({"train": dataclasses.asdict(cfg.train), "rewards": cfg.rewards})
            log_params({**params, **variant.switches(), "variant": variant.name, "seed": seed,
                        "data_seed": stream,
                        "advantage": variant.advantage})

        # A resumed run recomputes the steps since its last checkpoint; those logged before the
        # interruption are in the history already, with the same values (the loop is deterministic),
        # and logging them again would give the step two points.
        logged = _last_logged_step(prior_id) if prior_id is not None else -1

        def log(entry: StepLog) -> None:
            if entry.step > logged:
                log_metrics(entry.metrics, step=entry.step)

        backbone, ema = train_variant(cfg, variant, seed, rewards, log, resume=prior_id is not None)
        with ema.swapped_in(backbone.transformer):
            results, folder = evaluate_backbone(backbone, cfg, eval_refs, reference_dir,
                                                Path(cfg.out) / "runs" / variant.name / f"seed{seed}" / "eval_clips")
        log_evaluation(results, folder, cfg.eval.n_samples)


def render(cfg: AblationConfig, parent_id: str) -> None:
    from omninft_bench.report import render_report

    paths = render_report(cfg.experiment, Path(cfg.out) / "report", cfg.tracking_uri, parent_run_id=parent_id)
    print(f"report: {paths.markdown} and {paths.html}")


def summary_line(parent_id: str) -> str:
    return json.dumps({"parent_run_id": parent_id})
