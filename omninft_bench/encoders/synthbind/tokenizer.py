"""Word-level tokenizer of the SynthBind text tower.

SynthAV prompts come from a small grammar (under a hundred distinct words), so a word vocabulary
is exact and tiny.  The vocabulary is a fixed, sorted word list stored in the weights' JSON
config; words outside it (a generator's prompt set, a typo) fall into ``hash_buckets`` shared
ids chosen by CRC32, so they still reach the model deterministically instead of raising.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence

import torch

__all__ = ["WordTokenizer", "words"]

PAD = 0
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (hyphenated words such as ``mid-pitched`` stay whole)."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """``texts -> (ids [n, L] int64, mask [n, L] bool)``; id 0 is padding.

    Ids: 1..len(vocab) for vocabulary words, then ``hash_buckets`` ids for unknown words.
    Texts longer than ``max_len`` words are cut (SynthAV prompts have at most ~62 words).
    """

    def __init__(self, vocab: Sequence[str], *, hash_buckets: int = 32, max_len: int = 72):
        if len(set(vocab)) != len(vocab):
            raise ValueError("tokenizer vocabulary has duplicate words")
        self.vocab = list(vocab)
        self.hash_buckets = int(hash_buckets)
        self.max_len = int(max_len)
        self._index = {w: i + 1 for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], **kwargs: int) -> WordTokenizer:
        """A tokenizer whose vocabulary is every word of ``texts``, sorted (deterministic)."""
        seen: set[str] = set()
        for text in texts:
            seen.update(words(text))
        return cls(sorted(seen), **kwargs)

    @property
    def size(self) -> int:
        """Number of ids, padding included (the embedding table's height)."""
        return 1 + len(self.vocab) + self.hash_buckets

    def token_id(self, word: str) -> int:
        known = self._index.get(word)
        if known is not None:
            return known
        return 1 + len(self.vocab) + zlib.crc32(word.encode()) % self.hash_buckets

    def encode(self, text: str) -> list[int]:
        return [self.token_id(w) for w in words(text)[: self.max_len]]

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [self.encode(t) for t in texts]
        length = max(1, max((len(e) for e in encoded), default=1))
        ids = torch.zeros(len(encoded), length, dtype=torch.int64)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e, dtype=torch.int64)
        return ids, ids != PAD
