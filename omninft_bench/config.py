"""Typed configuration for every entry point, composed by Hydra's compose API.

Each command (``run``, ``evaluate``, ``data.synthav``, ...) declares a dataclass whose fields are
created with :func:`option` (a default plus a one-line help).  :func:`parse_cli` registers it in
Hydra's ``ConfigStore``, composes it with the ``key=value`` overrides from the command line and
returns the typed dataclass.  We use the compose API rather than ``@hydra.main`` on purpose:

* the working directory never changes and no ``outputs/`` folder appears;
* a mistyped key or a wrong type becomes one :class:`ConfigError` line that names the key and
  lists the valid ones, instead of a Hydra traceback.

Every config inherits :class:`CommonConfig`, so ``out=DIR`` and ``tracking_uri=...`` work
everywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class ConfigError(ValueError):
    """A command-line override that does not fit the config (unknown key or wrong type)."""


def option(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best at call sites
    """A dataclass field with a default and a one-line help text shown by ``--help``."""
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help})
    if dataclasses.is_dataclass(default):  # a copy of the given instance, non-default fields kept
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class CommonConfig:
    """Keys shared by every entry point."""

    out: str = option("outputs", "directory where this command writes its outputs")
    tracking_uri: str = option(DEFAULT_TRACKING_URI, "MLflow tracking store (sqlite file in the cwd by default)")


def field_help(config_cls: type, prefix: str = "", instance: Any = None) -> list[tuple[str, str, str]]:
    """``(dotted key, default, help)`` for every leaf field, nested dataclasses flattened (a nested
    field's default is its parent's, e.g. ``train.sampler.precision``, not its class's)."""
    rows: list[tuple[str, str, str]] = []
    instance = config_cls() if instance is None else instance
    for f in dataclasses.fields(config_cls):
        value = getattr(instance, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            rows.extend(field_help(type(value), prefix=f"{key}.", instance=value))
        else:
            rows.append((key, repr(value), f.metadata.get("help", "")))
    return rows


def format_help(config_cls: type, command: str) -> str:
    rows = field_help(config_cls)
    width = max(len(k) for k, _, _ in rows)
    lines = [f"usage: python -m {command} [key=value ...]", "", "keys:"]
    lines += [f"  {k:<{width}}  {h} (default: {d})" for k, d, h in rows]
    return "\n".join(lines)


def _key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _check_keys(config_cls: type, overrides: Sequence[str]) -> None:
    valid = [k for k, _, _ in field_help(config_cls)]
    groups = {k.rsplit(".", 1)[0] for k in valid if "." in k}
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"argument {override!r} is not key=value; valid keys: {', '.join(valid)}")
        key = _key_of(override)
        if key in valid or key in groups:
            continue
        close = difflib.get_close_matches(key, valid, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}")


def _expand_shorthand(config_cls: type, overrides: Sequence[str]) -> list[str]:
    """``group=value`` means ``group.name=value`` for a nested config with a ``name`` field.

    This is what lets ``backbone=ltx2 backbone.pretrained=PATH`` read naturally.
    """
    leaves = {k for k, _, _ in field_help(config_cls)}
    out = []
    for override in overrides:
        key = _key_of(override)
        if "=" in override and key not in leaves and f"{key}.name" in leaves:
            override = override.replace(key, f"{key}.name", 1)
        out.append(override)
    return out


def compose_config(config_cls: type[T], overrides: Sequence[str] = ()) -> T:
    """Compose ``config_cls`` with Hydra and the given ``key=value`` overrides.

    Returns an instance of ``config_cls``.  Raises :class:`ConfigError` for an unknown key or a
    value of the wrong type, naming the key.
    """
    overrides = _expand_shorthand(config_cls, overrides)
    _check_keys(config_cls, overrides)
    name = f"_omninft_{config_cls.__module__}.{config_cls.__qualname__}".replace(".", "_")
    ConfigStore.instance().store(name=name, node=config_cls)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    dict_keys = {k for k, d, _ in field_help(config_cls) if d.startswith("{")}
    replaced = [o for o in overrides if _key_of(o) in dict_keys]
    try:
        with initialize(version_base="1.3", config_path=None):
            cfg = compose(config_name=name, overrides=[o for o in overrides if o not in replaced])
        _replace_dicts(cfg, replaced)
    except Exception as exc:  # Hydra wraps OmegaConf validation errors in its own types
        raise ConfigError(_explain(exc, config_cls)) from exc
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc, config_cls)) from exc
    except ValueError as exc:  # a dataclass __post_init__ rejecting a value
        raise ConfigError(f"invalid config: {exc}") from exc


def _replace_dicts(cfg: Any, overrides: Sequence[str]) -> None:
    """``weights={a: 1}`` replaces a dict-valued default instead of merging into it.

    Hydra merges dict overrides key by key (and refuses new keys), so the defaults' other keys
    would silently stay; for a field like reward weights that is never what the user means.
    """
    parser = OverridesParser.create()
    for override in overrides:
        parsed = parser.parse_overrides([override])[0]
        with open_dict(cfg):
            OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=False)


def _explain(exc: BaseException, config_cls: type) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    key = getattr(cause, "full_key", None)
    message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    if key:
        types = {k: d for k, d, _ in field_help(config_cls)}
        return f"config key {key!r}: {message} (default is {types.get(key, '?')})"
    return f"invalid config: {message}"


def parse_cli(config_cls: type[T], argv: Sequence[str] | None = None, *, command: str = "") -> T:
    """Parse ``key=value`` arguments for an entry point; ``--help`` prints every key and exits.

    A bad key or value prints one line to stderr and exits with status 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(format_help(config_cls, command or config_cls.__module__))
        raise SystemExit(0)
    try:
        return compose_config(config_cls, argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (for MLflow params and reports)."""
    return dataclasses.asdict(cfg)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``, for logging configs as MLflow params."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat
