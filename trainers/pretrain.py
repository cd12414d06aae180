"""Pretrain the tiny backbone on the SynthAV training stream with the flow-matching objective.

    OMP_WAIT_POLICY=PASSIVE python -m omninft_bench.run stage=pretrain   # = python -m trainers.pretrain
    python -m trainers.pretrain steps=200 out=/tmp/pt                     # a short smoke run

(``OMP_WAIT_POLICY=PASSIVE`` keeps OpenMP threads from spinning when the CPU is shared; it must
be set before torch is imported.)

Objective (rectified flow, diffusers convention): ``x_s = (1 - s) x0 + s eps`` with
``s ~ sigmoid(N(0.8, 0.8))`` (logit-normal biased to high noise, as JiT), target velocity
``eps - x0`` (the tiny backbone predicts x0 and returns ``(x_s - x0_hat)/s``, see
``Backbone.velocity``); loss = token MSE of the velocity on video + ``audio_weight`` x the same
on audio.  With probability ``independent_sigma`` the
audio stream gets its own ``s`` (so per-modality timesteps at sampling time are in-distribution),
and with probability ``caption_dropout`` the prompt is replaced by ``""`` (the null prompt for
classifier-free guidance).  The word vocabulary is built from ``vocab_prompts`` prompts of a
SynthAV train stream the batches never use, plus the grammar's colour/shape/size words.

AdamW with linear warm-up and cosine decay to 10 %, gradient clipping, and an EMA of the weights
(decay ``min(ema, (1 + k)/(10 + k))``); the EMA weights are what is saved.  Batches come from
a single DataLoader worker that renders and encodes SynthAV clips while the main process
trains, so a run is a pure function of the config (same thread count -> same weights).

Writes ``out/tiny_synthav.safetensors`` + ``.json`` (config, vocabulary, training summary) and
logs an MLflow run in experiment ``pretrain``: params, per-step losses, sample clips (mp4 + wav)
every ``sample_every`` steps and the checkpoint.  Ship a checkpoint by copying both files to
``trainers/backbone/weights/``.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from omninft_bench.config import CommonConfig, option, parse_cli, to_dict
from omninft_bench.data import synthav
from omninft_bench.data.layout import write_javisbench
from trainers.backbone import Backbone, TinyConfig, build_vocab
from trainers.sampling import SamplerConfig, sample

__all__ = ["PretrainConfig", "main", "train"]

WEIGHTS_NAME = "tiny_synthav.safetensors"
VOCAB_STREAM = 997  # a SynthAV train stream reserved for building the vocabulary


@dataclass
class PretrainConfig(CommonConfig):
    """``stage=pretrain``: flow-matching pretraining of the tiny backbone on SynthAV."""

    out: str = option("outputs/pretrain", "output folder (checkpoint, sample clips)")
    seed: int = option(0, "seed of the init, the data stream and the noise")
    steps: int = option(800, "optimizer steps")
    batch_size: int = option(32, "clips per step")
    lr: float = option(1e-3, "peak AdamW learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup: int = option(100, "linear warm-up steps")
    grad_clip: float = option(1.0, "gradient-norm clip")
    ema: float = option(0.995, "EMA decay of the saved weights")
    sigma_mean: float = option(0.8, "training noise levels: sigma = sigmoid(N(sigma_mean, sigma_std))")
    sigma_std: float = option(0.8, "spread of the logit-normal noise levels")
    audio_weight: float = option(1.0, "weight of the audio loss")
    caption_dropout: float = option(0.1, "probability of training on the null prompt")
    independent_sigma: float = option(0.2, "probability of an independent audio noise level")
    vocab_prompts: int = option(1000, "SynthAV prompts used to build the word vocabulary")
    threads: int = option(2, "torch CPU threads of the training process")
    log_every: int = option(10, "steps between MLflow loss flushes (every step is logged)")
    sample_every: int = option(600, "steps between logged sample clips (0 = only at the end)")
    n_samples: int = option(4, "sample clips logged each time (SynthAV eval prompts)")
    sampler: SamplerConfig = option(SamplerConfig(), "sampler for the logged samples")
    layers: int = option(4, "transformer blocks")
    video_heads: int = option(4, "video attention heads")
    video_head_dim: int = option(32, "video head width")
    audio_heads: int = option(4, "audio attention heads")
    audio_head_dim: int = option(16, "audio head width")
    text_dim: int = option(64, "text encoder width (= caption_channels)")
    experiment: str = option("pretrain", "MLflow experiment")
    track: bool = option(True, "log to MLflow")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps} and batch_size={self.batch_size} must be >= 1")
        for name in ("caption_dropout", "independent_sigma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} is not a probability")

    def tiny_config(self, vocab: list[str]) -> TinyConfig:
        return TinyConfig(
            layers=self.layers,
            video_heads=self.video_heads,
            video_head_dim=self.video_head_dim,
            audio_heads=self.audio_heads,
            audio_head_dim=self.audio_head_dim,
            text_dim=self.text_dim,
            vocab=vocab,
        )


def synthav_config(model: TinyConfig) -> synthav.SynthAVConfig:
    """The SynthAV generator settings that match the backbone's codec geometry."""
    return synthav.SynthAVConfig(
        duration=model.duration,
        height=model.height,
        width=model.width,
        fps=model.fps,
        sample_rate=model.sample_rate,
    )


def grammar_vocab(n_prompts: int, cfg: synthav.SynthAVConfig) -> list[str]:
    words = [*synthav.SHAPES, *synthav.COLORS, *synthav.SIZES, *synthav.BACKGROUNDS, *synthav.PITCH.values()]
    prompts = [c.prompt for c in synthav.iter_split("train", cfg, n_prompts, stream=VOCAB_STREAM)]
    return build_vocab([*prompts, " ".join(words)])


class _TokenStream(IterableDataset):
    """SynthAV train clips encoded to tokens: ``(video [Nv, Cv], audio [Na, Ca], prompt)``."""

    def __init__(self, model: TinyConfig, data: synthav.SynthAVConfig, stream: int) -> None:
        self.model, self.data, self.stream = model, data, stream

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, str]]:
        info = get_worker_info()
        if info is not None and info.num_workers > 1:
            raise RuntimeError("the pretraining stream is ordered: use one worker")
        torch.set_num_threads(1)
        video_codec, audio_codec = self.model.video_codec(), self.model.audio_codec()
        for clip in synthav.train_stream(self.data, seed=self.stream):
            video = torch.from_numpy(clip.video_float())[None]
            audio = torch.from_numpy(clip.audio_mono())[None]
            yield video_codec.encode(video)[0], audio_codec.encode(audio)[0], clip.prompt


def _lr_factor(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def flow_matching_loss(
    backbone: Backbone,
    video: torch.Tensor,
    audio: torch.Tensor,
    prompts: Sequence[str],
    generator: torch.Generator,
    independent_sigma: float = 0.0,
    sigma_mean: float = 0.0,
    sigma_std: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(video MSE, audio MSE) of the velocity prediction at logit-normal noise levels."""
    b = video.shape[0]
    sigma = torch.sigmoid(sigma_mean + sigma_std * torch.randn(b, generator=generator))
    audio_sigma = torch.sigmoid(sigma_mean + sigma_std * torch.randn(b, generator=generator))
    own = torch.rand(b, generator=generator) < independent_sigma
    audio_sigma = torch.where(own, audio_sigma, sigma)
    eps_v = torch.randn(video.shape, generator=generator)
    eps_a = torch.randn(audio.shape, generator=generator)
    x_v = (1 - sigma.view(b, 1, 1)) * video + sigma.view(b, 1, 1) * eps_v
    x_a = (1 - audio_sigma.view(b, 1, 1)) * audio + audio_sigma.view(b, 1, 1) * eps_a
    cond = backbone.encode_text(prompts)
    v, a = backbone.velocity(x_v, x_a, sigma, audio_sigma, cond)
    return (v - (eps_v - video)).square().mean(), (a - (eps_a - audio)).square().mean()


class _LossLog:
    """Per-step losses, flushed to MLflow in batches (one HTTP/sqlite round trip per flush)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.rows: list[tuple[int, dict[str, float]]] = []

    def add(self, step: int, values: dict[str, float]) -> None:
        if self.enabled:
            self.rows.append((step, values))

    def flush(self) -> None:
        if not self.enabled or not self.rows:
            return
        import mlflow
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for step, vals in self.rows for k, v in vals.items()]
        client = mlflow.MlflowClient()
        run_id = mlflow.active_run().info.run_id
        for start in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
            client.log_batch(run_id, metrics=metrics[start : start + 900])
        self.rows = []


def _write_samples(
    backbone: Backbone, cfg: PretrainConfig, data: synthav.SynthAVConfig, folder: Path
) -> Path:
    prompts = synthav.eval_set(data, cfg.n_samples)
    result = sample(backbone, [c.prompt for c in prompts], cfg.sampler, seed=cfg.seed)
    meta = [{"audio_text": c.meta.get("audio_text", ""), "categories": c.meta.get("categories", {})} for c in prompts]
    clips = backbone.decode(result.video, result.audio, [c.prompt for c in prompts], meta)
    write_javisbench(folder, clips)
    return folder


def train(cfg: PretrainConfig) -> tuple[Backbone, dict[str, Any]]:
    """Run pretraining; returns the EMA backbone and a summary dict (no file output)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    model_cfg = cfg.tiny_config([])
    data_cfg = synthav_config(model_cfg)
    model_cfg.vocab = grammar_vocab(cfg.vocab_prompts, data_cfg)
    backbone = Backbone.tiny(model_cfg, seed=cfg.seed)
    backbone.train()
    ema = Backbone.tiny(model_cfg, seed=cfg.seed)
    ema.load_state_dict(backbone.state_dict())
    ema.eval().requires_grad_(False)

    decay, no_decay = [], []
    for name, p in backbone.named_parameters():
        (no_decay if p.ndim < 2 or "table" in name or "pos" in name.split(".")[-1] else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.99),
    )
    loader = DataLoader(
        _TokenStream(model_cfg, data_cfg, cfg.seed),
        batch_size=cfg.batch_size,
        num_workers=1,
        prefetch_factor=4,
        persistent_workers=False,
    )
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    drop_rng = np.random.default_rng(cfg.seed + 2)
    log = _LossLog(cfg.track)
    summary: dict[str, Any] = {"losses": []}
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="pretrain", unit="step", file=sys.stderr)
    data_iter = iter(loader)
    recent: list[float] = []
    for step in range(cfg.steps):
        video, audio, prompts = next(data_iter)
        prompts = ["" if drop_rng.random() < cfg.caption_dropout else p for p in prompts]
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        loss_v, loss_a = flow_matching_loss(
            backbone, video, audio, prompts, generator, cfg.independent_sigma, cfg.sigma_mean, cfg.sigma_std
        )
        loss = loss_v + cfg.audio_weight * loss_a
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(backbone.parameters(), cfg.grad_clip)
        optimizer.step()
        with torch.no_grad():
            d = min(cfg.ema, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), backbone.parameters(), strict=True):
                pe.lerp_(p, 1 - d)
        values = {
            "loss": loss.item(),
            "loss_video": loss_v.item(),
            "loss_audio": loss_a.item(),
            "grad_norm": float(grad_norm),
            "lr": optimizer.param_groups[0]["lr"],
        }
        log.add(step, values)
        recent = (recent + [values["loss"]])[-50:]
        if (step + 1) % cfg.log_every == 0:
            log.flush()
            summary["losses"].append((step + 1, float(np.mean(recent))))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(recent):.4f}", v=f"{loss_v.item():.3f}", a=f"{loss_a.item():.3f}")
        if cfg.track and cfg.sample_every and (step + 1) % cfg.sample_every == 0 and step + 1 < cfg.steps:
            _log_samples(ema, cfg, data_cfg, step + 1)
    log.flush()
    if bar is not None:
        bar.close()
    del data_iter, loader
    summary.update(
        final_loss=float(np.mean(recent)),
        wall_time_s=round(time.perf_counter() - start, 1),
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        threads=cfg.threads,
    )
    return ema, summary


def _log_samples(backbone: Backbone, cfg: PretrainConfig, data: synthav.SynthAVConfig, step: int) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        folder = _write_samples(backbone, cfg, data, Path(tmp) / f"step_{step:06d}")
        mlflow.log_artifacts(str(folder), artifact_path=f"samples/step_{step:06d}")


def main(cfg: PretrainConfig) -> Path:
    """Train, save ``out/tiny_synthav.safetensors`` (+ .json), log to MLflow; returns the path."""
    from omninft_bench.tracking import log_artifact, log_metrics, log_params, mlflow_run

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / WEIGHTS_NAME
    run = mlflow_run(cfg.tracking_uri, cfg.experiment, run_name=f"pretrain seed={cfg.seed}") if cfg.track else None
    with run if run is not None else nullcontext():
        if cfg.track:
            log_params(to_dict(cfg))
        backbone, summary = train(cfg)
        losses = summary.pop("losses")
        summary["loss_curve"] = [[s, round(v, 5)] for s, v in losses[:: max(1, len(losses) // 50)]]
        summary["command"] = "python -m omninft_bench.run stage=pretrain " + " ".join(sys.argv[1:])
        backbone.save(path, extra={"pretrain": summary})
        print(f"saved {path} ({path.stat().st_size / 1e6:.1f} MB) in {summary['wall_time_s']:.0f} s")
        if cfg.track:
            log_metrics({"final_loss": summary["final_loss"], "wall_time_s": summary["wall_time_s"]})
            log_artifact(path, "checkpoint")
            log_artifact(path.with_suffix(".json"), "checkpoint")
            _log_samples(backbone, cfg, synthav_config(backbone.config), cfg.steps)
        samples = out / "samples"
        if samples.exists():
            shutil.rmtree(samples)
        _write_samples(backbone, cfg, synthav_config(backbone.config), samples)
    return path


if __name__ == "__main__":
    main(parse_cli(PretrainConfig, command="trainers.pretrain"))
