"""Registry of encoder backends by name (``synthbind``, ``open_clip``, ``clap``, ``i3d``, ...)."""

from __future__ import annotations

import difflib

from omninft_bench.encoders.base import EncoderBackend, EncoderError, UnknownBackendError
from omninft_bench.encoders.config import EncodersConfig

__all__ = ["available_backends", "backend_class", "check_backend", "load_backend", "register_backend"]

_BACKENDS: dict[str, type[EncoderBackend]] = {}

# Backends the project plans but that are not installed in this version, with what to do instead.
_PLANNED = {
}


def register_backend(cls: type[EncoderBackend]) -> type[EncoderBackend]:
    """Class decorator: register a backend under ``cls.name``; a duplicate name is an error."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.name in _BACKENDS and _BACKENDS[cls.name] is not cls:
        raise ValueError(f"encoder backend {cls.name!r} is already registered by {_BACKENDS[cls.name].__qualname__}")
    _BACKENDS[cls.name] = cls
    return cls


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def backend_class(name: str) -> type[EncoderBackend]:
    """The class registered as ``name``; :class:`UnknownBackendError` with suggestions if none."""
    try:
        return _BACKENDS[name]
    except KeyError:
        pass
    if name in _PLANNED:
        raise UnknownBackendError(
            f"encoder backend {name!r} is not available: {_PLANNED[name]} "
            f"(available: {', '.join(available_backends())})"
        )
    close = difflib.get_close_matches(name, list(_BACKENDS), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownBackendError(
        f"unknown encoder backend {name!r}.{hint} Available: {', '.join(available_backends())}"
    )


def check_backend(name: str, config: EncodersConfig) -> type[EncoderBackend]:
    """Validate that ``name`` exists and is configured, without loading any weights."""
    cls = backend_class(name)
    cls.check_config(config)
    return cls


def load_backend(name: str, config: EncodersConfig) -> EncoderBackend:
    """Build backend ``name`` (loads its weights).  Prefer ``EvalContext.backend``, which caches."""
    cls = check_backend(name, config)
    try:
        return cls(config)
    except EncoderError:
        raise
    except Exception as exc:  # a corrupt checkpoint, a wrong file: say which backend and why
        raise EncoderError(f"encoder backend {name!r} failed to load: {exc.__class__.__name__}: {exc}") from exc
