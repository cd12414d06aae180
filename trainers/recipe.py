"""This run's training recipe next to the released OmniNFT and DiffusionNFT recipes.

:func:`recipe_comparison` reads a run's flattened config (the parent MLflow run's params, e.g.
``train.lr`` -> ``"3e-05"``) and returns one row per setting: our value, the released OmniNFT
value, the released DiffusionNFT value (``"–"`` where that recipe does not set it), whether we
depart from OmniNFT, and why.  The report renders the rows, so every departure is stated next to
the numbers it produced.  Released values: ../shared/docs/reference.md, sections 1 and 2.

No torch: the report imports this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["RecipeRow", "recipe_comparison", "trained_sigma_count", "trained_sigmas"]

NOT_SET = "–"


def trained_sigma_count(sampler_steps: int, fraction: float) -> int:
    """How many of the sampler's ``sampler_steps`` sigmas (highest first) the NFT loss trains at."""
    return max(1, math.ceil(fraction * sampler_steps - 1e-9))


def trained_sigmas(sampler_steps: int, fraction: float) -> np.ndarray:
    """The trained noise levels: the highest ``fraction`` of the sampler's sigmas
    ``linspace(1, 1/N, N)`` (diffusers FlowMatchEuler with shift 1 visits exactly these)."""
    sigmas = np.linspace(1.0, 1.0 / sampler_steps, sampler_steps)
    return sigmas[: trained_sigma_count(sampler_steps, fraction)]


@dataclass(frozen=True)
class RecipeRow:
    setting: str
    ours: str
    omninft: str
    diffusionnft: str
    departs: bool  # from the released OmniNFT recipe
    why: str


def _g(x: float) -> str:
    return f"{x:g}"


def _rewards(p: Mapping[str, str]) -> str:
    pairs = [(k[len("rewards."):], float(v)) for k, v in p.items() if k.startswith("rewards.")]
    if not pairs:
        raise KeyError("rewards.*")
    return ", ".join(f"{name} {_g(w)}" for name, w in sorted(pairs))


def _reward_count(p: Mapping[str, str]) -> int:
    return sum(1 for k, v in p.items() if k.startswith("rewards.") and float(v) != 0)


def _lora(p: Mapping[str, str]) -> tuple[int, float]:
    rank = int(float(p["train.lora_rank"]))
    if rank == -1:  # auto: full fine-tuning for the tiny backbone, the released rank for LTX-2
        rank = 0 if p["backbone.name"] == "tiny" else 32
    alpha = float(p["train.lora_alpha"]) or 2.0 * rank
    return rank, alpha


def _fine_tuning(p: Mapping[str, str]) -> str:
    rank, alpha = _lora(p)
    return "full" if rank == 0 else f"LoRA r={rank}, alpha {_g(alpha)}"


def _kl(p: Mapping[str, str]) -> str:
    """The KL weight, with the audio branch's own when it differs (runs before it existed: none)."""
    video = float(p["train.kl_coef"])
    audio = float(p.get("train.audio_kl_coef", -1))
    if audio < 0 or audio == video:
        return _g(video)
    return f"{_g(video)}, audio {_g(audio)}"


def _sigmas(p: Mapping[str, str]) -> str:
    n = int(float(p["train.sampler.steps"]))
    sigmas = trained_sigmas(n, float(p["train.train_sigma_fraction"]))
    top = ", ".join(_g(round(float(x), 4)) for x in sigmas[:4])
    text = f"the {len(sigmas)} highest of {n} ({top}{', ...' if len(sigmas) > 4 else ''})"
    audio = _float_list(p.get("train.audio_sigmas", "[]"))
    if audio:
        text = f"video: {text}; audio: its own level, one of {', '.join(_g(x) for x in audio)}"
    return text


def _lr_scales(p: Mapping[str, str]) -> dict[str, float]:
    """The learning-rate multipliers that are not 1 (``train.lr_scales.<group>`` params)."""
    prefix = "train.lr_scales."
    scales = {k[len(prefix):]: float(v) for k, v in p.items() if k.startswith(prefix)}
    return {g: x for g, x in scales.items() if x != 1.0}


def _lr(p: Mapping[str, str]) -> str:
    lr = float(p["train.lr"])
    scaled = ", ".join(f"{g} x{_g(x)}" for g, x in _lr_scales(p).items())
    return f"{_g(lr)} ({scaled})" if scaled else _g(lr)


def _float_list(value: str) -> list[float]:
    """A list param as MLflow stores it (``"[0.4, 0.3]"``, ``"[]"``)."""
    inner = value.strip().strip("[]").strip()
    return [float(x) for x in inner.split(",")] if inner else []


# (setting, our value from the params, released OmniNFT, released DiffusionNFT,
#  departs-from-OmniNFT test, why).  A row whose keys a run lacks (an older run) is skipped.
_Spec = tuple[str, Callable[[Mapping[str, str]], str], str, str, Callable[[Mapping[str, str]], bool], str]

_SPECS: tuple[_Spec, ...] = (
    ("backbone",
     lambda p: f"tiny LTX-2 ({p.get('backbone.pretrained') or 'shipped checkpoint'})" if p["backbone.name"] == "tiny"
     else f"LTX-2 ({p.get('backbone.pretrained') or 'checkpoint'})",
     "LTX-2 19B, 48 blocks", "SD3.5-M (text-to-image)",
     lambda p: p["backbone.name"] == "tiny",
     "the 19B model does not fit 2 CPU cores; the tiny one is 4 blocks (docs/backbone.md)"),
    ("rewards (weights)", _rewards,
     "video: HPSv3 1.5, VideoAlign 1.0; audio: audiobox-aesthetics 0.5, CLAP 1.0; "
     "sync: Synchformer DeSync as 1/(1+d) 1.0", NOT_SET,
     lambda p: True,
     "no pretrained reward models offline: SynthBind encoders and weight-free metrics, "
     "one of each modality role (text-video, video realism, text-audio, audio realism, sync); "
     "sync is javis_score because the weight-free DeSync stand-in av_offset was not learnable "
     "at this budget (README: Which sync reward)"),
    ("rollouts scored as",
     lambda p: "the written mp4 + wav, read back" if p["train.score_written"] == "True" else "the decoded tensors",
     "the decoded frames", "the decoded images",
     lambda p: p["train.score_written"] == "True",
     "train.score_written scores what the evaluation reads (the H.264 round trip at 32 x 32 "
     "reorders video_realism's within-group ranking: correlation +0.86); it moved no rewarded "
     "metric by more than 0.003 and costs about 45 ms a clip, so it is off by default"),
    ("fine-tuning",
     _fine_tuning,
     "LoRA r=32, alpha 64", NOT_SET,
     lambda p: _lora(p) != (32, 64.0),
     "set by train.lora_rank; for the tiny backbone (2.1 M parameters) the default is full "
     "fine-tuning: LoRA was not better at the lrs tried"),
    ("learning rate", _lr, "3e-05", NOT_SET,
     lambda p: float(p["train.lr"]) != 3e-5 or bool(_lr_scales(p)),
     "train.lr is the released value (1e-4 and 3e-4 lost clap_score here); train.lr_scales halves the "
     "video stream's, whose updates cost the audio and sync rewards (OmniNFTConfig docstring)"),
    ("clips per step",
     lambda p: f"{p['train.prompts_per_step']} prompts x {p['train.group_size']}",
     "groups of 8 (16 GPUs x 2)", "groups of 24",
     lambda p: int(float(p["train.group_size"])) != 8, "group size as released"),
    ("rollout sampler steps", lambda p: p["train.sampler.steps"], "20", "10",
     lambda p: int(float(p["train.sampler.steps"])) != 20, "as DiffusionNFT: half the rollout cost of 20"),
    ("trained noise levels", _sigmas, "the 8 highest of 20 (40 %)", "a random 9 of 10",
     lambda p: True,
     "the video rewards here are decided at high noise, where lower sigmas added per-clip noise; "
     "the audio stream shares the video's level, as released (a low level of its own, "
     "train.audio_sigmas, gave no gain that replicated: OmniNFTConfig docstring)"),
    ("noise levels per clip and step", lambda p: p["train.train_timesteps"], "8 (each trained sigma)",
     "9 (each trained sigma)", lambda p: int(float(p["train.train_timesteps"])) != 8,
     "one fwd+bwd per clip fits the CPU budget; the level is drawn per group or per clip"),
    ("re-noising the clips of a group",
     lambda p: "one shared sigma and noise draw" if p["train.shared_noise"] == "True" else "per clip",
     "per clip", "per clip",
     lambda p: p["train.shared_noise"] == "True",
     "variance reduction: the part of the gradient due to the noise cancels within a group"),
    ("NFT beta", lambda p: _g(float(p["train.nft_beta"])), NOT_SET, "1.0 (0.1 for multi-reward)",
     lambda p: float(p["train.nft_beta"]) != (0.1 if _reward_count(p) > 1 else 1.0),
     "beta drops out of the gradient when the old policy equals the current one, and here it "
     "nearly does: one update per rollout batch, old-policy decay at most 0.001 x steps "
     "(tests/test_nft_loss.py)"),
    ("advantage clip", lambda p: _g(float(p["train.adv_clip"])), "5", "5",
     lambda p: float(p["train.adv_clip"]) != 5, ""),
    ("KL to the reference", _kl, "0.0001", "0.0001",
     lambda p: _kl(p) != "0.0001", "set by the run; what a stronger audio KL does is measured in the OmniNFTConfig docstring"),
    ("old-policy decay",
     lambda p: f"min({_g(float(p['train.old_policy_rate']))} i, {_g(float(p['train.old_policy_cap']))})",
     "min(0.001 i, 0.5)", "min(0.001 i, 0.5)",
     lambda p: (float(p["train.old_policy_rate"]), float(p["train.old_policy_cap"])) != (0.001, 0.5), ""),
    ("evaluation EMA decay cap", lambda p: _g(float(p["train.ema_max_decay"])), NOT_SET, "0.9",
     lambda p: False, ""),
    ("reweighting w_max ramp",
     lambda p: f"1 to {_g(float(p['train.w_max']))} over {p['train.w_ramp_steps']} steps",
     "1 to 1.5 over 400 steps", NOT_SET,
     lambda p: (float(p["train.w_max"]), int(float(p["train.w_ramp_steps"]))) != (1.5, 400),
     "scaled to a run of a few dozen steps"),
    ("surgery schedule",
     lambda p: "the released shape scaled to the depth of the backbone"
     if p["train.surgery_scales"] in ("[]", "") else p["train.surgery_scales"],
     "48 blocks: 0; 0.1 x 10; 1.0 x 29; 0.3 x 8", NOT_SET,
     lambda p: p["backbone.name"] == "tiny" or p["train.surgery_scales"] not in ("[]", ""),
     "4 blocks give (0, 1, 1, 0.3) (trainers.surgery.surgery_schedule)"),
    ("evaluation sampler steps", lambda p: p["eval.sampler.steps"], "40", NOT_SET,
     lambda p: int(float(p["eval.sampler.steps"])) != 40, "CPU budget; the default equals the rollout steps"),
)


def recipe_comparison(params: Mapping[str, str]) -> list[RecipeRow]:
    """One row per setting for a run's flattened config (MLflow params, all strings)."""
    rows = []
    for setting, ours, omninft, diffusionnft, departs, why in _SPECS:
        try:
            rows.append(RecipeRow(setting, ours(params), omninft, diffusionnft, departs(params), why))
        except KeyError:  # a run logged before the setting existed
            continue
    return rows
