"""The main entry point: ``python -m omninft_bench.run [stage=...] key=value ...``.

Stages (each with its own typed config; ``--help`` after the stage lists its keys):

* ``stage=ablation`` (default): evaluate the base model, run the OmniNFT ablation
  (``ablation=all|none|full|loo|[...]`` x ``seeds=[...]``), log everything to MLflow, render
  the report.  ``preset=smoke`` shrinks every size for a run of about a minute.
* ``stage=pretrain``: flow-matching pretraining of the tiny backbone on SynthAV.
* ``stage=sample``: generate clips for prompts into a JavisBench folder.
* ``stage=reevaluate``: score a finished ablation's runs on another evaluation draw
  (``eval.n``, ``eval.seed``) without retraining.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from omninft_bench.config import parse_cli

STAGES = ("ablation", "pretrain", "sample", "reevaluate")


def split_stage(argv: Sequence[str]) -> tuple[str, list[str]]:
    stage, rest = "ablation", []
    for arg in argv:
        if arg.startswith("stage="):
            stage = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if stage not in STAGES:
        raise SystemExit(f"error: stage={stage!r}; expected one of {', '.join(STAGES)}")
    return stage, rest


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage, rest = split_stage(argv)
    command = f"omninft_bench.run stage={stage}"
    if stage == "pretrain":
        from trainers.pretrain import PretrainConfig
        from trainers.pretrain import main as pretrain

        pretrain(parse_cli(PretrainConfig, rest, command=command))
        return 0
    if stage == "sample":
        from trainers.sample import SampleConfig
        from trainers.sample import main as sample

        sample(parse_cli(SampleConfig, rest, command=command))
        return 0
    from omninft_bench.encoders import EncoderError
    from omninft_bench.metrics import UnknownMetricError

    if stage == "reevaluate":
        from trainers.reevaluate import ReevaluateConfig, ReevaluateError, reevaluate

        try:
            reevaluate(parse_cli(ReevaluateConfig, rest, command=command), rest)
        except (EncoderError, UnknownMetricError, ReevaluateError) as exc:  # configuration problems: one line
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    from trainers.experiment import (
        AblationConfig,
        ResumeMismatchError,
        preset_overrides,
        run_ablation,
    )

    try:
        overrides = preset_overrides(rest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = parse_cli(AblationConfig, overrides, command=command)
    try:
        run_ablation(cfg, argv)
    except (EncoderError, UnknownMetricError, ResumeMismatchError) as exc:  # configuration problems: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
