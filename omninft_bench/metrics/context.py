"""``EvalContext``: what a metric may use besides its batch, instead of module globals.

It holds the encoder configuration and builds backends lazily (a heavy model loads on the first
call that needs it, then stays), the reference set, the optional on-disk feature cache, and a
small memo so that several metrics scoring the same clip share one encoder pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from omninft_bench.encoders import (
    EncoderBackend,
    EncodersConfig,
    backend_class,
    check_backend,
    load_backend,
)
from omninft_bench.encoders.base import CapabilityError
from omninft_bench.media import AVClip
from omninft_bench.metrics.cache import FeatureCache, Features
from omninft_bench.metrics.registry import (
    ALL_ENCODER_METRICS,
    DEFAULT_BACKEND,
    MetricSpec,
    encoder_metrics,
    get_metric_class,
    get_spec,
)

if TYPE_CHECKING:
    from omninft_bench.metrics.base import Metric

__all__ = ["EvalContext", "MissingReferenceError", "expand_backends"]


class MissingReferenceError(ValueError):
    """A metric that needs a reference set, asked to run without one."""


def expand_backends(
    backends: Mapping[str, str] | None = None,
    names: Iterable[str] | None = None,
    *,
    capable_only: bool = False,
) -> dict[str, str]:
    """Per-metric backend overrides with the ``all`` shorthand expanded.

    ``{"all": X}`` sends every encoder metric (``spec.backend`` set; of ``names`` if given, else
    every registered one) to backend ``X``; explicit per-metric entries win over it, so
    ``{"all": "synthbind", "fvd": "i3d"}`` runs fvd on i3d and the rest on synthbind.  With
    ``capable_only`` a metric is sent to ``X`` only when ``X`` can embed what it ``requires``.
    An unknown ``X`` raises :class:`UnknownBackendError` (suggestions, available backends), an
    unknown metric name :class:`UnknownMetricError`; nothing is loaded.
    """
    overrides = dict(backends or {})
    shared = overrides.pop(ALL_ENCODER_METRICS, None)
    for name in overrides:
        get_spec(name)  # an override for an unknown metric is a typo: fail loudly
    if shared is None:
        return overrides
    capabilities = backend_class(shared).capabilities
    pool = encoder_metrics() if names is None else [n for n in dict.fromkeys(names) if get_spec(n).backend is not None]
    if capable_only:
        pool = [n for n in pool if set(get_metric_class(n).requires) <= capabilities]
    return {name: shared for name in pool} | overrides


class EvalContext:
    """Shared resources of one evaluation (or one trainer's reward computation).

    Args:
        encoders: backend configuration (``encoders.*`` keys); defaults to :class:`EncodersConfig`.
        reference: reference clips for distribution metrics and ``*_realism``.
        cache: a :class:`FeatureCache` or a directory for one; ``None`` disables caching.  Only
            clips carrying ``meta["content_hash"]`` (set by ``evaluate``) are cached.
        backends: per-metric backend overrides, ``{"clip_score": "synthbind"}``; the key ``"all"``
            means every encoder metric (explicit entries win), see :func:`expand_backends`.
    """

    def __init__(
        self,
        encoders: EncodersConfig | None = None,
        *,
        reference: Sequence[AVClip] | None = None,
        cache: FeatureCache | str | os.PathLike[str] | None = None,
        backends: Mapping[str, str] | None = None,
    ):
        self.encoders = encoders if encoders is not None else EncodersConfig()
        self.reference: list[AVClip] = list(reference or [])
        self.cache = FeatureCache(cache) if isinstance(cache, str | os.PathLike) else cache
        self.backend_overrides = expand_backends(backends)
        self._backends: dict[str, EncoderBackend] = {}
        self._reference_features: dict[str, list[Features]] = {}
        self._text: dict[tuple[str, str], torch.Tensor] = {}
        self._memo_clip: AVClip | None = None
        self._memo: dict[tuple, torch.Tensor] = {}

    # ------------------------------------------------------------------------- backends

    def backend_name(self, spec: MetricSpec) -> str | None:
        """The backend a metric runs on: override, else its spec, ``default`` -> ``encoders.default``."""
        if spec.name in self.backend_overrides:
            return self.backend_overrides[spec.name]
        if spec.backend == DEFAULT_BACKEND:
            return self.encoders.default
        return spec.backend

    def backend(self, name: str) -> EncoderBackend:
        """Backend ``name``, built on first use and cached for the life of the context."""
        if name not in self._backends:
            self._backends[name] = load_backend(name, self.encoders)
        return self._backends[name]

    def fingerprint(self, name: str) -> str:
        return backend_class(name).fingerprint(self.encoders)

    def check(self, metrics: Iterable[Metric]) -> None:
        """Fail fast, without loading weights: every backend exists, is configured and can embed
        what its metrics need (raises ``EncoderError`` subclasses naming the config key)."""
        for metric in metrics:
            name = self.backend_name(metric.spec)
            if name is None:
                continue
            cls = check_backend(name, self.encoders)
            missing = set(metric.requires) - cls.capabilities
            if missing:
                raise CapabilityError(
                    f"metric {metric.spec.name!r} needs a backend that embeds {', '.join(sorted(missing))}; "
                    f"{name!r} embeds {', '.join(sorted(cls.capabilities))}"
                )

    # ------------------------------------------------------------------------- features

    def features(self, metric: Metric, clip: AVClip) -> Features | str:
        """The metric's features of ``clip`` (a ``str`` = why it cannot be scored), via the cache."""
        key = metric.feature_key()
        digest = clip.meta.get("content_hash")
        if digest and self.cache is not None:
            hit = self.cache.get(digest, key)
            if hit is not None:
                return hit
        entry = metric.extract_or_reason(clip)
        if digest and self.cache is not None:
            self.cache.put(digest, key, entry)
        return entry

    def memo(self, clip: AVClip, key: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Share one encoder pass between metrics scoring the same clip (the last clip is kept)."""
        if self._memo_clip is not clip:
            self._memo_clip, self._memo = clip, {}
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def text_embedding(self, backend: str, text: str) -> torch.Tensor:
        """``[d]`` embedding of ``text``; memoized (training prompts repeat every epoch)."""
        key = (backend, text)
        if key not in self._text:
            self._text[key] = self.backend(backend).embed_text([text])[0]
        return self._text[key]

    # ------------------------------------------------------------------------- reference

    def set_reference_features(self, key: str, entries: Sequence[Features | str]) -> None:
        """Install precomputed reference features for a feature key (``evaluate`` does this)."""
        self._reference_features[key] = [e for e in entries if not isinstance(e, str)]

    def reference_features(self, metric: Metric) -> list[Features]:
        """Features of every scorable reference clip, computed once per feature key."""
        key = metric.feature_key()
        if key not in self._reference_features:
            if not self.reference:
                raise MissingReferenceError(
                    f"metric {metric.spec.name!r} needs reference clips (evaluate: reference=DIR)"
                )
            self.set_reference_features(key, [self.features(metric, c) for c in self.reference])
        return self._reference_features[key]
