"""The metric registry: one decorator, one table, errors that say what to type instead.

A metric registers itself once with :func:`register`; the decorator attaches a frozen
:class:`MetricSpec` to the class.  Everything else (``evaluate``, rewards, the report, advantage
routing in the trainer) reads the spec rather than keeping its own list of names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar, get_args

if TYPE_CHECKING:
    from omninft_bench.metrics.base import Metric
    from omninft_bench.metrics.context import EvalContext

__all__ = [
    "ALL_ENCODER_METRICS",
    "DEFAULT_BACKEND",
    "KINDS",
    "MODALITIES",
    "NEEDS",
    "DuplicateMetricError",
    "Kind",
    "MetricSpec",
    "Modality",
    "Need",
    "UnknownMetricError",
    "build",
    "encoder_metrics",
    "get_metric_class",
    "get_spec",
    "list_metrics",
    "register",
    "resolve_names",
    "unregister",
]

Modality = Literal["video", "audio", "sync", "text_video", "text_audio"]
Kind = Literal["per_sample", "distribution"]
Need = Literal["video", "audio", "prompt", "reference"]
MODALITIES: tuple[str, ...] = get_args(Modality)
KINDS: tuple[str, ...] = get_args(Kind)
NEEDS: tuple[str, ...] = get_args(Need)

#: ``MetricSpec.backend`` value meaning "the configured default backend" (``encoders.default``):
#: metrics that need one joint text/video/audio embedding space (ImageBind in JavisBench).
DEFAULT_BACKEND = "default"

#: Key of a backend-override mapping that stands for every encoder metric: ``{"all": "synthbind"}``
#: (``evaluate backends=[all:synthbind]``); see :func:`omninft_bench.metrics.context.expand_backends`.
#: No metric may be registered under this name.
ALL_ENCODER_METRICS = "all"


class DuplicateMetricError(ValueError):
    """Two metrics registered under one name."""


class UnknownMetricError(KeyError):
    """A metric name that is not registered; the message suggests the closest names."""

    def __init__(self, name: str, suggestions: Iterable[str] = ()):
        self.name = name
        self.suggestions = list(suggestions)
        hint = f" Did you mean {' or '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        super().__init__(
            f"unknown metric {name!r}.{hint} Registered: {', '.join(sorted(_REGISTRY))} "
            "(python -m omninft_bench.metrics lists them)"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is and what it needs.

    ``name``: registry key = module-level name = MLflow metric key.  ``modality``: what the
    metric judges (``sync`` = joint audio-video; reward routing follows it).  ``kind``:
    ``per_sample`` (``score(batch) -> [B]``) or ``distribution`` (``compute(batch, reference)``).
    ``needs``: inputs a clip (or the run) must provide.  ``backend``: encoder backend name,
    :data:`DEFAULT_BACKEND` for "the configured default", ``None`` for weight-free metrics.
    """

    name: str
    modality: Modality
    higher_is_better: bool
    kind: Kind
    needs: frozenset[str]
    backend: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"metric name must be lower_snake_case, got {self.name!r}")
        if self.name == ALL_ENCODER_METRICS:
            raise ValueError(f"metric name {self.name!r} is reserved (backends=[{self.name}:BACKEND] means every metric)")
        if self.modality not in MODALITIES:
            raise ValueError(f"{self.name}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"{self.name}: unknown needs {sorted(unknown)}; valid: {NEEDS}")
        if not isinstance(self.higher_is_better, bool):
            raise ValueError(f"{self.name}: higher_is_better must be a bool")

    @property
    def per_sample(self) -> bool:
        return self.kind == "per_sample"

    def as_row(self) -> dict[str, str]:
        return {
            "name": self.name,
            "modality": self.modality,
            "kind": self.kind,
            "better": "higher" if self.higher_is_better else "lower",
            "needs": ",".join(n for n in NEEDS if n in self.needs),
            "backend": self.backend or "-",
            "description": self.description,
        }


_REGISTRY: dict[str, type[Metric]] = {}
M = TypeVar("M", bound="type[Metric]")


def register(
    name: str,
    *,
    modality: Modality,
    higher_is_better: bool,
    kind: Kind,
    needs: Iterable[str],
    backend: str | None = None,
) -> Callable[[M], M]:
    """Class decorator registering a metric under ``name``; a duplicate name is an error.

    The first paragraph of the class docstring becomes the spec's description.
    """
    def decorate(cls: M) -> M:
        from omninft_bench.metrics.base import DistributionMetric, PerSampleMetric

        paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
        spec = MetricSpec(
            name=name,
            modality=modality,
            higher_is_better=higher_is_better,
            kind=kind,
            needs=frozenset(needs),
            backend=backend,
            description=" ".join(line.strip() for line in paragraph.splitlines()),
        )
        base = PerSampleMetric if kind == "per_sample" else DistributionMetric
        if not issubclass(cls, base):
            raise TypeError(f"metric {name!r} is kind={kind!r} but {cls.__qualname__} is not a {base.__name__}")
        if name in _REGISTRY:
            raise DuplicateMetricError(
                f"metric {name!r} is already registered by {_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__}"
            )
        cls.spec = spec
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove a metric (for tests that register throwaway metrics)."""
    _REGISTRY.pop(name, None)


def get_metric_class(name: str) -> type[Metric]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMetricError(name, difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)) from None


def get_spec(name: str) -> MetricSpec:
    return get_metric_class(name).spec


def build(name: str, ctx: EvalContext | None = None) -> Metric:
    """Instantiate metric ``name`` with ``ctx`` (a fresh default :class:`EvalContext` if None)."""
    return get_metric_class(name)(ctx)


def resolve_names(names: Iterable[str]) -> list[str]:
    """Validate metric names up front (the first unknown one raises); duplicates dropped."""
    names = list(dict.fromkeys(names))
    for name in names:
        get_metric_class(name)
    return names


def list_metrics(*, kind: str | None = None, modality: str | None = None) -> list[MetricSpec]:
    """Specs of the registered metrics (sorted by name), optionally filtered."""
    specs = [cls.spec for _, cls in sorted(_REGISTRY.items())]
    return [s for s in specs if (kind is None or s.kind == kind) and (modality is None or s.modality == modality)]


def encoder_metrics() -> list[str]:
    """Names of the registered metrics that run on an encoder backend (``spec.backend`` set), sorted."""
    return [s.name for s in list_metrics() if s.backend is not None]
