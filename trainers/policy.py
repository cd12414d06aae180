"""Parameter averages of the trained model: the old (sampling) policy and the evaluation EMA.

Both keep a snapshot of the module's parameters and move it towards the live parameters:
    snapshot <- decay * snapshot + (1 - decay) * theta
and differ only in the decay rule (reference.md section 2):

* :class:`OldPolicy` -- DiffusionNFT's sampling policy theta_old, updated once per epoch with
  eta_i = min(0.001 i, 0.5) ("decay type 1", i = optimizer steps); eta = 0 is fully on-policy.
  Rollouts and v_old come from it.
* :class:`EMA` -- decay min((1 + s) / (10 + s), 0.9), used only for evaluation.

Parameters are averaged; buffers are copied (they are not trained). A snapshot is swapped into
the live module for rollouts or evaluation with ``swapped_in``, so one model instance serves
the current, old and EMA weights (with LoRA only the adapter weights need to be tracked:
``trainable_only=True``). ``state_dict()`` / ``load_state_dict()`` checkpoint the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "EMA",
    "OldPolicy",
    "ParameterAverage",
    "ema_decay",
    "old_policy_eta",
    "soft_update_",
]


def old_policy_eta(step: int, rate: float = 0.001, cap: float = 0.5, flat: int = 0) -> float:
    """Old-policy decay eta_i = min(rate * (i - flat), cap), 0 before ``flat`` steps.

    Defaults are DiffusionNFT's "decay type 1"; ``rate=0`` keeps eta = 0 (fully on-policy).
    """
    if step < flat:
        return 0.0
    return float(min(rate * (step - flat), cap))


def ema_decay(step: int, max_decay: float = 0.9) -> float:
    """Evaluation-EMA decay min((1 + s) / (10 + s), max_decay): fast warm-up, then fixed."""
    return float(min((1.0 + step) / (10.0 + step), max_decay))


@torch.no_grad()
def soft_update_(target: nn.Module, source: nn.Module, eta: float) -> None:
    """In place: target params <- eta * target + (1 - eta) * source; buffers copied from source.

    For a two-module setup (a separate old-policy copy of the model). Names must match.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    src_params = dict(source.named_parameters())
    tgt_params = dict(target.named_parameters())
    if src_params.keys() != tgt_params.keys():
        diff = sorted(src_params.keys() ^ tgt_params.keys())
        raise KeyError(f"source and target parameters differ: {diff[:5]}")
    for name, tgt in tgt_params.items():
        tgt.lerp_(src_params[name].to(tgt.dtype), 1.0 - eta)
    src_buffers = dict(source.named_buffers())
    for name, buf in target.named_buffers():
        if name in src_buffers:
            buf.copy_(src_buffers[name])


class ParameterAverage:
    """A detached snapshot of a module's parameters (averaged) and buffers (copied).

    module: the live model; trainable_only: track only parameters with requires_grad (e.g. LoRA
    adapters), leaving frozen weights shared; dtype: snapshot dtype (None = the parameter's own;
    float32 is advisable for bf16 training, where small (1 - decay) updates would round away).
    Subclasses define :meth:`decay`.
    """

    def __init__(
        self,
        module: nn.Module,
        trainable_only: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.trainable_only = trainable_only
        self.dtype = dtype
        self.num_updates = 0
        self.params: dict[str, Tensor] = {
            name: p.detach().clone().to(dtype or p.dtype) for name, p in self._named_params(module)
        }
        self.buffers: dict[str, Tensor] = {
            name: b.detach().clone() for name, b in module.named_buffers()
        }

    def _named_params(self, module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in module.named_parameters():
            if p.requires_grad or not self.trainable_only:
                yield name, p

    def decay(self, step: int) -> float:
        raise NotImplementedError

    def _live(self, module: nn.Module) -> dict[str, nn.Parameter]:
        live = dict(self._named_params(module))
        if live.keys() != self.params.keys():
            diff = sorted(live.keys() ^ self.params.keys())
            raise KeyError(f"module parameters do not match the snapshot: {diff[:5]}")
        return live

    @torch.no_grad()
    def update(self, module: nn.Module, step: int | None = None) -> float:
        """snapshot <- d * snapshot + (1 - d) * theta with d = decay(step); returns d.

        ``step`` defaults to the number of previous updates.
        """
        d = self.decay(self.num_updates if step is None else step)
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {d}")
        for name, p in self._live(module).items():
            snap = self.params[name]
            snap.lerp_(p.detach().to(device=snap.device, dtype=snap.dtype), 1.0 - d)
        for name, b in module.named_buffers():
            self.buffers[name] = b.detach().clone()
        self.num_updates += 1
        return d

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the snapshot into the module's parameters and buffers."""
        for name, p in self._live(module).items():
            p.copy_(self.params[name])
        live_buffers = dict(module.named_buffers())
        for name, b in self.buffers.items():
            if name in live_buffers:
                live_buffers[name].copy_(b)

    @contextmanager
    def swapped_in(self, module: nn.Module) -> Iterator[nn.Module]:
        """Run the module with the snapshot's weights inside the block; restore them after."""
        live = self._live(module)
        saved = {name: p.detach().clone() for name, p in live.items()}
        saved_buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, p in live.items():
                    p.copy_(saved[name])
                for name, b in module.named_buffers():
                    if name in saved_buffers:
                        b.copy_(saved_buffers[name])

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": {k: v.clone() for k, v in self.params.items()},
            "buffers": {k: v.clone() for k, v in self.buffers.items()},
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        params = state["params"]
        if params.keys() != self.params.keys():
            diff = sorted(params.keys() ^ self.params.keys())
            raise KeyError(f"checkpoint parameters do not match the snapshot: {diff[:5]}")
        for name, value in params.items():
            self.params[name].copy_(value)
        self.buffers = {k: v.clone() for k, v in state["buffers"].items()}
        self.num_updates = int(state["num_updates"])


class OldPolicy(ParameterAverage):
    """Sampling policy theta_old <- eta theta_old + (1 - eta) theta, eta = old_policy_eta(step).

    Call ``update(model, step=optimizer_steps)`` once per epoch (after the optimizer steps);
    sample rollouts and compute v_old inside ``swapped_in(model)``.
    """

    def __init__(
        self,
        module: nn.Module,
        rate: float = 0.001,
        cap: float = 0.5,
        trainable_only: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(module, trainable_only=trainable_only, dtype=dtype)
        self.rate = rate
        self.cap = cap

    def decay(self, step: int) -> float:
        return old_policy_eta(step, rate=self.rate, cap=self.cap)


class EMA(ParameterAverage):
    """Evaluation EMA with decay min((1 + s) / (10 + s), max_decay); s = optimizer step."""

    def __init__(
        self,
        module: nn.Module,
        max_decay: float = 0.9,
        trainable_only: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(module, trainable_only=trainable_only, dtype=dtype)
        self.max_decay = max_decay

    def decay(self, step: int) -> float:
        return ema_decay(step, self.max_decay)
