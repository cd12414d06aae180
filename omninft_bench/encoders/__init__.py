"""Encoder backends: one small interface to embed video frames, whole videos, audio and text.

| backend   | used for                                   | weights                              |
|-----------|--------------------------------------------|--------------------------------------|
| synthbind | the SynthAV default (later release)        | shipped in the package               |
| open_clip | clip_score, background_consistency         | ``encoders.open_clip.pretrained``    |
| clap      | clap_score, fad (FAD-CLAP)                 | ``encoders.clap.path``               |
| i3d       | fvd, kvd                                   | ``encoders.i3d.path`` (TorchScript)  |
| dino      | subject_consistency                        | ``encoders.dino.path``               |
| random    | chance baseline, tests (no weights)        | none                                 |

Backends are built by :class:`omninft_bench.metrics.EvalContext` on first use and cached.
"""

import importlib

from omninft_bench.encoders import (  # noqa: F401  (importing registers the backends)
    clap_backend,
    dino_backend,
    i3d_backend,
    open_clip_backend,
    random_backend,
)
from omninft_bench.encoders.base import (
    CAPABILITIES,
    CapabilityError,
    EncoderBackend,
    EncoderError,
    MissingWeightsError,
    UnknownBackendError,
)
from omninft_bench.encoders.config import EncodersConfig
from omninft_bench.encoders.registry import (
    available_backends,
    backend_class,
    check_backend,
    load_backend,
    register_backend,
)

try:  # The SynthBind backend lands as a subpackage; it registers itself when present.
    importlib.import_module(f"{__name__}.synthbind")
except ModuleNotFoundError as _exc:
    if _exc.name != f"{__name__}.synthbind":
        raise

__all__ = [
    "CAPABILITIES",
    "CapabilityError",
    "EncoderBackend",
    "EncoderError",
    "EncodersConfig",
    "MissingWeightsError",
    "UnknownBackendError",
    "available_backends",
    "backend_class",
    "check_backend",
    "load_backend",
    "register_backend",
]
