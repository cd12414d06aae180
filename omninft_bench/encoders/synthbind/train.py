"""Train SynthBind on the SynthAV train stream: ``python -m omninft_bench.encoders.synthbind.train``.

Objective (symmetric InfoNCE, one learnable temperature per pair, in-batch negatives):

* text-video: prompt vs clip embedding, and prompt vs the mean of the per-frame embeddings (the
  quantity ``clip_score`` averages);
* text-audio: audio vs the prompt and vs the audio caption (``clap_score`` uses the caption);
* audio-video: clip embedding vs audio, and per-frame embeddings vs audio scored as JavisScore
  does (mean of the 40% lowest frame cosines).  For the video->audio direction each clip also
  competes against ``shifts_per_clip`` copies of *its own* audio shifted by 0.1-1.0 s
  (log-uniform) either way, the uncovered end filled with the clip's ambience, as ``perturb.audio_shift`` does;
* sync: the same two similarities, but each clip's aligned audio against its shifted copies
  only - a timing-only task with no content shortcut.
  A shifted negative borrows the content part of its aligned positive, so only the time code
  can tell them apart: timing is learned there, and content stays timing-free.
  In-batch negatives teach content; the shifted ones teach timing, so ``av_score`` and
  ``javis_score`` drop when the sound is out of sync.

Mild augmentation (pixel noise below the weakest ``video_noise`` severity, audio noise at 30-50
dB SNR) keeps the towers from being brittle without making them blind to the validity sweep's
perturbations.  Data: ``n_train`` clips of train stream ``seed`` generated in memory up front.

Outputs (``out``; default the package's ``weights/``): ``synthbind.safetensors``,
``synthbind.json`` (architecture, vocabulary, training info and wall time) and
``reference_stats.safetensors`` (mean/covariance of the embeddings of the SynthAV reference split).
Deterministic for a given seed and thread count on one machine.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from omninft_bench.config import CommonConfig, option, parse_cli, to_dict
from omninft_bench.data import synthav
from omninft_bench.encoders.synthbind.model import (
    WEIGHTS_DIR,
    SynthBind,
    SynthBindSpec,
    audio_statistics,
    save_synthbind,
    video_statistics,
)
from omninft_bench.encoders.synthbind.tokenizer import WordTokenizer

__all__ = ["TrainConfig", "TrainPool", "main", "make_pool", "shift_log_mel", "train"]


@dataclass
class TrainConfig(CommonConfig):
    out: str = option("", "directory for the weights (default: the package's synthbind/weights)")
    seed: int = option(0, "seed of the model init, the batches and the SynthAV train stream")
    n_train: int = option(20000, "training clips generated in memory up front (few repeats: less memorization)")
    steps: int = option(600, "optimizer steps")
    batch: int = option(64, "clips per step")
    lr: float = option(2e-3, "peak AdamW learning rate (linear warm-up, cosine decay)")
    warmup: int = option(20, "warm-up steps")
    weight_decay: float = option(0.05, "AdamW weight decay")
    shifts_per_clip: int = option(3, "shifted copies of each clip's own audio used as negatives")
    min_shift_s: float = option(0.1, "smallest shift of a negative (seconds; log-uniform in [min, max])")
    max_shift_s: float = option(1.0, "largest shift of a negative (seconds)")
    aug_p: float = option(0.25, "probability of the mild noise augmentation, per clip and modality")
    vocab_clips: int = option(2000, "train-stream clips whose prompt words form the vocabulary")
    n_reference: int = option(512, "SynthAV reference clips for the shipped reference statistics")
    threads: int = option(2, "torch CPU threads")


@dataclass
class TrainPool:
    """Training clips in memory: uint8 video ``[N, T, H, W, 3]`` and float16 log-mel ``[N, M, F]``.

    Audio is kept as log-mel because every audio operation of training (shift, noise) is done in
    the mel power domain: a shift by whole mel hops (1/64 s) moves mel frames exactly, and
    independent noise adds its expected power.  That saves recomputing spectrograms each step.
    """

    video: torch.Tensor
    log_mel: torch.Tensor
    ambience: torch.Tensor  # [N] RMS level of the clip's room tone (0 = none)
    prompts: list[str]
    audio_texts: list[str]


def make_pool(model: SynthBind, n: int, seed: int, progress: bool = True) -> TrainPool:
    videos, mels, levels, prompts, captions, chunk = [], [], [], [], [], []
    stream = synthav.train_stream(synthav.SynthAVConfig(), seed=seed)
    for i, clip in zip(tqdm(range(n), desc="SynthAV train clips", disable=not progress), stream, strict=False):
        videos.append(torch.from_numpy(clip.video_uint8()))
        chunk.append(torch.from_numpy(clip.audio_mono()))
        if len(chunk) == 256 or i == n - 1:
            with torch.no_grad():
                mels.append(model.audio.log_mel(torch.stack(chunk)).half())
            chunk = []
        ambience = clip.meta["gt"].get("ambience")
        levels.append(float(ambience["level"]) if ambience else 0.0)
        prompts.append(clip.prompt)
        captions.append(str(clip.meta.get("audio_text") or clip.prompt))
    return TrainPool(torch.stack(videos), torch.cat(mels), torch.tensor(levels), prompts, captions)


def shift_log_mel(log_mel: torch.Tensor, shift: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Delay each ``[M, F]`` log-mel of ``log_mel [B, M, F]`` by ``shift [B]`` frames (negative =
    advance), keeping its length; uncovered frames come from ``fill [B, M, F]``."""
    frames = log_mel.shape[-1]
    src = torch.arange(frames)[None, :] - shift[:, None]
    inside = ((src >= 0) & (src < frames))[:, None, :]
    moved = log_mel.gather(2, src.clamp(0, frames - 1)[:, None, :].expand(-1, log_mel.shape[1], -1))
    return torch.where(inside, moved, fill)


def _ce(logits: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, torch.arange(logits.shape[0]))


def _first(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with column 0 the right answer of every row."""
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.int64))


def _symmetric(sim: torch.Tensor, scale: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE on a square similarity matrix (row i's positive is column i); ``extra [B, K]``
    adds K more negatives to each row (the query side only)."""
    rows = sim if extra is None else torch.cat([sim, extra], dim=1)
    return 0.5 * (_ce(scale * rows) + _ce(scale * sim.T))


def _lowest_mean(sims: torch.Tensor, fraction: float = 0.4) -> torch.Tensor:
    """JavisScore's reduction over frames (dim 1): mean of the ``int(fraction * T)`` smallest."""
    k = max(1, int(fraction * sims.shape[1]))
    return sims.topk(k, dim=1, largest=False).values.mean(1)


def losses(
    model: SynthBind,
    frames: torch.Tensor,
    log_mel: torch.Tensor,
    jittered: torch.Tensor,
    shifted: torch.Tensor,
    prompt_ids: tuple[torch.Tensor, torch.Tensor],
    caption_ids: tuple[torch.Tensor, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """All loss terms for one batch.  ``shifted [B, K, M, F]``: copies of ``log_mel`` shifted by
    0.1-1 s (sync negatives); ``jittered [B, M, F]``: shifted by 0.05-0.3 s, a second positive for
    the text (a caption says what is heard, not exactly when: clap_score should not care)."""
    b, k = shifted.shape[:2]
    per_frame, clip = model.encode_video(frames)
    audio = model.encode_log_mel(torch.cat([log_mel, jittered, shifted.flatten(0, 1)]))
    audio, audio_jittered, audio_shifted = audio[:b], audio[b : 2 * b], audio[2 * b :].view(b, k, -1)
    # A shifted negative differs from its positive only in the time code: content stays about
    # *what* is heard, so text-audio similarity (clap_score) does not learn to care *when*.
    c = model.spec.content_dim
    audio_shifted = torch.cat([audio[:, None, :c].expand(-1, k, -1), audio_shifted[..., c:]], dim=-1)
    prompt = model.encode_text_ids(*prompt_ids)
    caption = model.encode_text_ids(*caption_ids)

    frame_mean = per_frame.mean(1)  # mean_t cos(f_t, x) = <mean_t f_t, x> for unit x
    fa = _lowest_mean(torch.einsum("btd,cd->btc", per_frame, audio))  # [B video, B audio]
    fa_shift = _lowest_mean(torch.einsum("btd,bkd->btk", per_frame, audio_shifted))
    av = clip @ audio.T
    av_shift = torch.einsum("bd,bkd->bk", clip, audio_shifted)
    return {
        "text_video": _symmetric(prompt @ clip.T, model.scale("text_video")),
        "text_frames": _symmetric(prompt @ frame_mean.T, model.scale("text_frames")),
        "text_audio": 0.25 * sum(
            _symmetric(text @ heard.T, model.scale("text_audio"))
            for text in (prompt, caption)
            for heard in (audio, audio_jittered)
        ),
        "audio_video": _symmetric(av, model.scale("audio_video"), av_shift),
        "audio_frames": _symmetric(fa, model.scale("audio_frames"), fa_shift),
        # Timing alone: each clip's own audio against its shifted copies (no content cue at all).
        "sync_video": _first(model.scale("sync_video") * torch.cat([av.diagonal()[:, None], av_shift], 1)),
        "sync_frames": _first(model.scale("sync_frames") * torch.cat([fa.diagonal()[:, None], fa_shift], 1)),
    }


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _batch(
    pool: TrainPool, idx: torch.Tensor, cfg: TrainConfig, banks: dict[str, torch.Tensor], gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video ``[B, T, 3, S, S]``, log-mel ``[B, M, F]``, its jittered copy ``[B, M, F]`` and its
    shifted copies ``[B, K, M, F]`` (see :func:`losses`)."""
    b, k = idx.numel(), cfg.shifts_per_clip
    frames = pool.video[idx].permute(0, 1, 4, 2, 3).float() / 255.0
    noisy = torch.rand(b, generator=gen) < cfg.aug_p
    sigma = torch.rand(b, generator=gen) * 0.015 * noisy
    frames = (frames + sigma[:, None, None, None, None] * torch.randn(frames.shape, generator=gen)).clamp(0, 1)

    clean = pool.log_mel[idx].float()
    hops_per_s = banks["hops_per_s"].item()
    # log-uniform: small shifts (the hard, informative negatives) are drawn as often as large ones
    log_lo, log_hi = math.log(cfg.min_shift_s), math.log(cfg.max_shift_s)
    magnitude = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b * k, generator=gen))
    # column 0: the jittered copy (0.05-0.3 s); columns 1..K: the sync negatives
    magnitude = torch.cat([0.05 + 0.25 * torch.rand(b, 1, generator=gen), magnitude.view(b, k)], dim=1).flatten()
    sign = torch.where(torch.rand(b * (k + 1), generator=gen) < 0.5, -1.0, 1.0)
    shift = torch.round(sign * magnitude * hops_per_s).long()
    room = banks["room"][torch.randint(banks["room"].shape[0], (b * (k + 1),), generator=gen)]
    level = pool.ambience[idx].repeat_interleave(k + 1)
    fill = (room * level[:, None, None] ** 2 + 1e-6).log()
    shifted = shift_log_mel(clean.repeat_interleave(k + 1, 0), shift, fill).view(b, k + 1, *clean.shape[1:])

    # Noise augmentation after the shift, on the aligned and the shifted copies alike, so that a
    # noise-free gap can never tell a shifted copy apart.  White noise of variance v adds
    # v * (mel power of unit white noise); v is set from the clip's power and a 30-50 dB SNR.
    audio = torch.cat([clean[:, None], shifted], dim=1).exp()  # [B, 2 + K, M, F] power
    noisy = torch.rand(b, generator=gen) < cfg.aug_p
    snr_db = 30.0 + 20.0 * torch.rand(b, generator=gen)
    variance = clean.exp().mean((1, 2)) / banks["white"].mean() / 10 ** (snr_db / 10) * noisy
    white = banks["white"][torch.randint(banks["white"].shape[0], (b * (k + 2),), generator=gen)]
    audio = (audio + variance[:, None, None, None] * white.view(b, k + 2, *clean.shape[1:])).log()
    return frames, audio[:, 0], audio[:, 1], audio[:, 2:]


def _noise_banks(model: SynthBind, seed: int) -> dict[str, torch.Tensor]:
    """Mel power of unit-RMS room tone (the fill of shifted audio) and of unit-variance white
    noise (the augmentation), 32 realizations each."""
    spec = model.spec
    n = spec.window_samples
    room = np.stack([synthav.ambience_noise(1.0, seed * 1000 + i, n) for i in range(32)])
    white = np.random.default_rng(seed).standard_normal((32, n))
    with torch.no_grad():
        banks = {
            name: model.audio.mel(torch.from_numpy(x).float())[..., : 8 * spec.steps]
            for name, x in (("room", room), ("white", white))
        }
    banks["hops_per_s"] = torch.tensor(spec.sample_rate / spec.hop)
    return banks


def _trim(ids: tuple[torch.Tensor, torch.Tensor], idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows ``idx``, cut to the longest of them (padding costs attention for nothing)."""
    tokens, mask = ids[0][idx], ids[1][idx]
    length = max(1, int(mask.sum(1).max()))
    return tokens[:, :length], mask[:, :length]


def train(cfg: TrainConfig, progress: bool = True) -> tuple[SynthBind, dict]:
    """Train from scratch; returns the model (eval mode) and a summary dict."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    # The vocabulary: every word of the first vocab_clips prompts and captions of the stream;
    # the model is built before the pool because the pool stores its log-mel features.
    vocab_clips = synthav.train_stream(synthav.SynthAVConfig(), seed=cfg.seed)
    texts = []
    for _, clip in zip(range(cfg.vocab_clips), vocab_clips, strict=False):
        texts += [clip.prompt, str(clip.meta.get("audio_text") or "")]
    tokenizer = WordTokenizer.from_texts(texts)
    spec = SynthBindSpec(vocab=tokenizer.vocab)
    model = SynthBind(spec)
    pool = make_pool(model, cfg.n_train, cfg.seed, progress)
    with torch.no_grad():  # normalization constants from a slice of the training clips
        fit = pool.log_mel[:512].float()
        model.audio.mel_mean.fill_(fit.mean())
        model.audio.mel_std.fill_(fit.std())
        video_stats = video_statistics(pool.video[:512].permute(0, 1, 4, 2, 3).float() / 255.0).flatten(0, 1)
        audio_stats = audio_statistics(fit)
        quantiles = torch.tensor([0.005, 0.995])
        for name, stats in (("video", video_stats), ("audio", audio_stats)):
            lo, hi = torch.quantile(stats, quantiles, dim=0)
            getattr(model, f"{name}_stats_lo").copy_(lo)
            getattr(model, f"{name}_stats_hi").copy_(hi)
            # unit: 5% of the clean range, at least 0.01 (the noise floor of a render is constant)
            getattr(model, f"{name}_stats_unit").copy_((0.05 * (hi - lo)).clamp_min(0.01))
    prompt_ids = tokenizer(pool.prompts)
    caption_ids = tokenizer(pool.audio_texts)
    banks = _noise_banks(model, cfg.seed)
    generated_s = time.perf_counter() - start

    decay = [p for name, p in model.named_parameters() if p.ndim >= 2 and "pos" not in name]
    rest = [p for name, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in name)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=cfg.lr
    )
    model.train()
    history: list[dict[str, float]] = []
    bar = tqdm(range(cfg.steps), desc="training SynthBind", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        idx = torch.randperm(cfg.n_train, generator=gen)[: cfg.batch]
        frames, log_mel, jittered, shifted = _batch(pool, idx, cfg, banks, gen)
        terms = losses(model, frames, log_mel, jittered, shifted, _trim(prompt_ids, idx), _trim(caption_ids, idx))
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        row = {"step": step, "loss": float(loss.detach())} | {k: float(v.detach()) for k, v in terms.items()}
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", av=f"{row['audio_video']:.3f}")
    model.eval()
    elapsed = time.perf_counter() - start
    last = history[-20:]
    summary = {
        "train_config": to_dict(cfg),
        "wall_time_s": round(elapsed, 1),
        "cpu_time_s": round(time.process_time() - cpu_start, 1),
        "data_generation_s": round(generated_s, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {cfg.threads} threads",
        "final_losses": {k: round(float(np.mean([r[k] for r in last])), 4) for k in last[0] if k != "step"},
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model, summary


def main(argv: list[str] | None = None) -> Path:
    cfg = parse_cli(TrainConfig, argv, command="omninft_bench.encoders.synthbind.train")
    out = Path(cfg.out) if cfg.out else WEIGHTS_DIR
    model, summary = train(cfg)
    save_synthbind(model, out, summary)
    from omninft_bench.encoders.synthbind.stats import write_reference_stats

    start = time.perf_counter()
    stats_path = write_reference_stats(model, out, n=cfg.n_reference)
    print(
        f"trained SynthBind in {summary['wall_time_s']:.0f} s ({summary['parameters']:,} parameters); "
        f"reference statistics in {time.perf_counter() - start:.0f} s -> {out} ({stats_path.name})",
        file=sys.stderr,
    )
    return out


if __name__ == "__main__":
    main()
