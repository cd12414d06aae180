"""On-disk feature cache keyed by (file content hash, extractor key).

The expensive part of a metric is its per-clip feature extraction (decoding, optical flow,
encoder forward passes); scoring from features is cheap.  ``evaluate`` hashes each input file,
and a clip whose features are all cached is not even decoded, so re-evaluating unchanged clips
costs a small fraction of the first pass.  The extractor key carries the metric's feature version
and the encoder's weights fingerprint, so changing either misses the cache instead of returning
stale features.  A clip that an extractor could not score is cached too, as its reason.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["Features", "FeatureCache", "content_hash"]

#: What an extractor returns for one clip: a tensor or a dict of tensors; a ``str`` is the reason
#: the clip could not be scored.
Features = torch.Tensor | dict[str, torch.Tensor]

_CHUNK = 1 << 20


def content_hash(paths: Iterable[str | os.PathLike[str]]) -> str:
    """BLAKE2b (128-bit) over the bytes of the given files, in order (missing files skipped)."""
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        h.update(path.suffix.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _slug(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key.split(":", 1)[0])[:40]
    return f"{readable}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"


class FeatureCache:
    """Directory of ``<extractor slug>/<hash[:2]>/<hash>.pt`` files (``torch.save`` dicts)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _file(self, digest: str, key: str) -> Path:
        return self.root / _slug(key) / digest[:2] / f"{digest}.pt"

    def has(self, digest: str, key: str) -> bool:
        return self._file(digest, key).is_file()

    def get(self, digest: str, key: str) -> Features | str | None:
        """The cached entry, or ``None`` on a miss (an unreadable entry counts as a miss)."""
        path = self._file(digest, key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a file cut short by a killed run: recompute it
            self.misses += 1
            return None
        if payload.get("key") != key:  # slug collision (astronomically unlikely)
            self.misses += 1
            return None
        self.hits += 1
        return payload["reason"] if "reason" in payload else payload["features"]

    def put(self, digest: str, key: str, entry: Features | str) -> None:
        path = self._file(digest, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"key": key, "reason": entry} if isinstance(entry, str) else {"key": key, "features": entry}
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
