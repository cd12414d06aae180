"""Config composition through Hydra's compose API: defaults, overrides, and actionable errors."""

from __future__ import annotations

import dataclasses
import os

import pytest

from omninft_bench.config import (
    CommonConfig,
    ConfigError,
    compose_config,
    field_help,
    flatten,
    option,
    parse_cli,
    to_dict,
)


@dataclasses.dataclass
class Sampler:
    steps: int = option(10, "denoising steps")
    cfg_scale: float = option(1.0, "classifier-free guidance scale")


@dataclasses.dataclass
class Demo(CommonConfig):
    n: int = option(4, "number of clips")
    seeds: list[int] = option([0, 1], "seeds to run")
    sampler: Sampler = option(Sampler(), "sampler settings")
    rollout: Sampler = option(Sampler(steps=3), "a nested default that differs from its class's")


def test_defaults_and_overrides() -> None:
    cfg = compose_config(Demo, ["n=7", "seeds=[3,4,5]", "sampler.steps=20", "out=/tmp/x"])
    assert isinstance(cfg, Demo) and isinstance(cfg.sampler, Sampler)
    assert (cfg.n, cfg.seeds, cfg.sampler.steps, cfg.out) == (7, [3, 4, 5], 20, "/tmp/x")
    assert cfg.sampler.cfg_scale == 1.0
    assert cfg.tracking_uri == "sqlite:///mlflow.db"


def test_defaults_are_not_shared_between_instances() -> None:
    a, b = compose_config(Demo), compose_config(Demo)
    a.seeds.append(9)
    assert b.seeds == [0, 1]


def test_nested_default_keeps_the_given_instance() -> None:
    cfg = compose_config(Demo, ["rollout.cfg_scale=2.0"])
    assert (cfg.rollout.steps, cfg.rollout.cfg_scale, cfg.sampler.steps) == (3, 2.0, 10)
    a, b = Demo(), Demo()
    a.rollout.steps = 99
    assert b.rollout.steps == 3  # copies, not one shared instance
    assert ("rollout.steps", "3") in [(key, default) for key, default, _ in field_help(Demo)]


def test_unknown_key_names_it_and_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(Demo, ["sampler.step=3"])
    msg = str(err.value)
    assert "'sampler.step'" in msg and "Did you mean sampler.steps" in msg
    for key in ("out", "tracking_uri", "n", "seeds", "sampler.steps", "sampler.cfg_scale"):
        assert key in msg


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match="'sampler.steps'"):
        compose_config(Demo, ["sampler.steps=many"])
    with pytest.raises(ConfigError, match="'n'"):
        compose_config(Demo, ["n=1.5"])


def test_argument_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not key=value"):
        compose_config(Demo, ["verbose"])


def test_cwd_unchanged_and_no_hydra_outputs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    compose_config(Demo, ["n=2"])
    assert os.getcwd() == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_parse_cli_exit_codes(capsys) -> None:
    assert parse_cli(Demo, ["n=3"]).n == 3
    with pytest.raises(SystemExit) as bad:
        parse_cli(Demo, ["nn=3"])
    assert bad.value.code == 2
    assert "unknown config key 'nn'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as helped:
        parse_cli(Demo, ["--help"], command="demo")
    assert helped.value.code == 0
    out = capsys.readouterr().out
    assert "sampler.steps" in out and "denoising steps" in out


def test_every_field_has_help() -> None:
    assert all(h for _, _, h in field_help(Demo))


def test_flatten_for_mlflow_params() -> None:
    flat = flatten(to_dict(compose_config(Demo, ["sampler.steps=5"])))
    assert flat["sampler.steps"] == 5 and flat["out"] == "outputs"


@dataclasses.dataclass
class Checked(CommonConfig):
    n: int = option(1, "must be positive")

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n}; need at least one")


def test_post_init_validation_becomes_config_error() -> None:
    with pytest.raises(ConfigError, match="need at least one"):
        compose_config(Checked, ["n=0"])


@dataclasses.dataclass
class Backbone:
    name: str = option("tiny", "backbone size")
    pretrained: str = option("", "checkpoint path")


@dataclasses.dataclass
class WithGroup(CommonConfig):
    backbone: Backbone = option(Backbone(), "backbone")


def test_group_shorthand_sets_name() -> None:
    cfg = compose_config(WithGroup, ["backbone=ltx2", "backbone.pretrained=/ckpt"])
    assert (cfg.backbone.name, cfg.backbone.pretrained) == ("ltx2", "/ckpt")


@dataclasses.dataclass
class Weighted(CommonConfig):
    weights: dict[str, float] = option({"a": 1.0, "b": 0.5}, "reward weights")


def test_dict_override_replaces_instead_of_merging() -> None:
    assert compose_config(Weighted).weights == {"a": 1.0, "b": 0.5}
    assert compose_config(Weighted, ["weights={c:2.0}"]).weights == {"c": 2.0}
    with pytest.raises(ConfigError, match="'weights"):
        compose_config(Weighted, ["weights={c:lots}"])
