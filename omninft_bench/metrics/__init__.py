"""Metrics: one registry of small metric classes over a pure functional core.

>>> from omninft_bench.metrics import build, list_metrics
>>> metric = build("av_align")            # a PerSampleMetric
>>> metric.score(clips)                   # float32 Tensor[B], NaN where unscorable
>>> [s.name for s in list_metrics(kind="distribution")]
['fad', 'fvd', 'kvd']

Each metric declares a :class:`MetricSpec` (name, modality, higher_is_better, kind, needs,
backend).  Encoders, reference statistics and the feature cache come from an
:class:`EvalContext`.  ``python -m omninft_bench.metrics`` prints the table of registered metrics.
The formulas live in :mod:`omninft_bench.metrics.functional`.
"""

from omninft_bench.metrics import audio, sync, text, video  # noqa: F401  (importing registers)
from omninft_bench.metrics.base import (
    DistributionMetric,
    Metric,
    NotEnoughSamplesError,
    PerSampleMetric,
    Unscorable,
)
from omninft_bench.metrics.cache import FeatureCache, content_hash
from omninft_bench.metrics.context import EvalContext, MissingReferenceError, expand_backends
from omninft_bench.metrics.registry import (
    ALL_ENCODER_METRICS,
    DEFAULT_BACKEND,
    KINDS,
    MODALITIES,
    NEEDS,
    DuplicateMetricError,
    MetricSpec,
    UnknownMetricError,
    build,
    encoder_metrics,
    get_metric_class,
    get_spec,
    list_metrics,
    register,
    resolve_names,
    unregister,
)

#: Metrics that need no encoder weights: the default suite of ``evaluate`` until SynthBind lands.
WEIGHT_FREE_SUITE: tuple[str, ...] = (
    "av_align",
    "av_offset",
    "temporal_flickering",
    "dynamic_degree",
    "motion_smoothness",
)

__all__ = [
    "ALL_ENCODER_METRICS",
    "DEFAULT_BACKEND",
    "KINDS",
    "MODALITIES",
    "NEEDS",
    "WEIGHT_FREE_SUITE",
    "DistributionMetric",
    "DuplicateMetricError",
    "EvalContext",
    "FeatureCache",
    "Metric",
    "MetricSpec",
    "MissingReferenceError",
    "NotEnoughSamplesError",
    "PerSampleMetric",
    "UnknownMetricError",
    "Unscorable",
    "build",
    "content_hash",
    "encoder_metrics",
    "expand_backends",
    "get_metric_class",
    "get_spec",
    "list_metrics",
    "register",
    "resolve_names",
    "unregister",
]
