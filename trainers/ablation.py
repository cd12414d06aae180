"""The ablation grid: which variants ``ablation=...`` runs, and their names.

``all`` is the 2^3 factorial over routing, surgery and reweighting (all-off = ``gdpo``, all-on =
``omninft``); ``none`` is ``gdpo`` alone; ``full`` is ``omninft`` alone; ``loo`` is ``omninft``
plus each leave-one-out cell plus ``gdpo``; an explicit list names cells (``gdpo``, ``omninft``,
``nft``, ``routing``, ``routing+surgery``, ...).  ``nft`` is DiffusionNFT's own recipe (weighted
sum of raw rewards, one advantage), outside the factorial.
"""

from __future__ import annotations

import difflib
import itertools
import zlib
from collections.abc import Sequence

import numpy as np

from trainers.omninft import Variant

__all__ = ["STREAMS", "SWITCHES", "data_seed", "expand_ablation", "variant_from_name", "variant_name"]

SWITCHES = ("routing", "surgery", "reweighting")
STREAMS = ("per_run", "per_seed")


def data_seed(variant: str, seed: int, streams: str = "per_run") -> int:
    """The seed of one run's training prompts, rollout noise and training noise.

    ``per_run``: every variant x seed run draws its own (a stable hash of the variant's name
    and the seed), so the runs are independent replicates and an interval over all of them is
    an interval over training noise.  ``per_seed``: the variants of one seed share the seed's
    draws (common random numbers), which sharpens the contrasts between variants but leaves
    only as many independent replicates of "RL against the base" as there are seeds.

    The report groups runs by this value (the ``data_seed`` tag): runs that share it count as
    one replicate.
    """
    if streams == "per_seed":
        return int(seed)
    if streams != "per_run":
        raise ValueError(f"streams={streams!r}; use one of {', '.join(STREAMS)}")
    return int(np.random.SeedSequence([int(seed), zlib.crc32(variant.encode())]).generate_state(1)[0])


def variant_name(routing: bool, surgery: bool, reweighting: bool) -> str:
    on = [s for s, v in zip(SWITCHES, (routing, surgery, reweighting), strict=True) if v]
    if not on:
        return "gdpo"
    if len(on) == len(SWITCHES):
        return "omninft"
    return "+".join(on)


def _cell(routing: bool, surgery: bool, reweighting: bool) -> Variant:
    return Variant(variant_name(routing, surgery, reweighting), routing, surgery, reweighting)


def factorial() -> list[Variant]:
    """The 8 cells, all-off first, in a stable order."""
    return [_cell(*bits) for bits in itertools.product((False, True), repeat=3)]


def _known() -> dict[str, Variant]:
    cells = {v.name: v for v in factorial()}
    cells["nft"] = Variant("nft", advantage="nft")
    return cells


def variant_from_name(name: str) -> Variant:
    known = _known()
    key = "+".join(sorted(name.strip().split("+"), key=lambda s: SWITCHES.index(s) if s in SWITCHES else 9))
    if key in known:
        return known[key]
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown ablation variant {name!r}.{hint} Known: all, none, full, loo, or a list of {', '.join(known)}"
    )


def expand_ablation(spec: str | Sequence[str]) -> list[Variant]:
    """Variants for ``ablation=all|none|full|loo`` or an explicit list of cell names."""
    if isinstance(spec, str):
        if spec == "all":
            return factorial()
        if spec == "none":
            return [_cell(False, False, False)]
        if spec == "full":
            return [_cell(True, True, True)]
        if spec == "loo":
            cells = [_cell(True, True, True)]
            for off in SWITCHES:
                cells.append(_cell(*(s != off for s in SWITCHES)))
            cells.append(_cell(False, False, False))
            return cells
        spec = [spec]
    variants: list[Variant] = []
    for name in spec:
        v = variant_from_name(str(name))
        if v not in variants:
            variants.append(v)
    if not variants:
        raise ValueError("ablation list is empty")
    return variants
