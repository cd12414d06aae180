"""Text conditioning: a small learned word-level encoder (tiny default) or the LTX-2 text stack.

Both return a :class:`TextCond` (video context, audio context, mask) that
``LTX2VideoTransformer3DModel`` consumes as ``encoder_hidden_states`` /
``audio_encoder_hidden_states`` / ``*_attention_mask``.

* :class:`WordTextEncoder` (tiny default, trained with the transformer during pretraining):
  lower-cased words and punctuation; words of a fixed vocabulary (built from SynthAV prompts,
  stored with the checkpoint) get their own embedding, any other word one of ``hash_buckets``
  shared embeddings chosen by a stable CRC32 hash, so unseen words never fail.  A ``[BOS]`` token
  starts every prompt; the empty prompt is ``[BOS]`` alone and is the null prompt of
  classifier-free guidance (learned by caption dropout).  Embedding + learned positions + a small
  pre-norm ``nn.TransformerEncoder``; the same context feeds video and audio (as in LTX-2.0).
* :class:`LTX2TextStack` (released checkpoint): Gemma-3 tokenizer and encoder + the
  ``LTX2TextConnectors``, run through ``LTX2Pipeline.encode_prompt`` so the features match the
  released pipeline.  Frozen.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["LTX2TextStack", "TextCond", "WordTextEncoder", "build_vocab", "tokenize_words"]

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|[0-9]+|[^\sa-z0-9]")
PAD, BOS = 0, 1
_SPECIALS = 2


@dataclass
class TextCond:
    """Text context for one batch: ``video`` ``[B, L, Cv]``, ``audio`` ``[B, L, Ca]``, ``mask`` ``[B, L]``."""

    video: Tensor
    audio: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return self.video.shape[0]

    def repeat(self, n: int) -> TextCond:
        """Each row repeated ``n`` times consecutively (a group of ``n`` rollouts per prompt)."""
        return TextCond(*(t.repeat_interleave(n, dim=0) for t in (self.video, self.audio, self.mask)))

    def cat(self, other: TextCond) -> TextCond:
        """Rows of ``self`` then ``other``; pads the shorter sequence (mask 0)."""
        length = max(self.mask.shape[1], other.mask.shape[1])
        a, b = self.pad_to(length), other.pad_to(length)
        return TextCond(*(torch.cat([x, y]) for x, y in zip(a.astuple(), b.astuple(), strict=True)))

    def pad_to(self, length: int) -> TextCond:
        extra = length - self.mask.shape[1]
        if extra <= 0:
            return self
        pad3 = (0, 0, 0, extra)
        return TextCond(
            nn.functional.pad(self.video, pad3),
            nn.functional.pad(self.audio, pad3),
            nn.functional.pad(self.mask, (0, extra)),
        )

    def astuple(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.video, self.audio, self.mask


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words (hyphenated words stay whole), numbers and punctuation marks."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str]) -> list[str]:
    """Sorted word list of ``texts`` (deterministic; stored with the checkpoint)."""
    return sorted({w for t in texts for w in tokenize_words(t)})


class WordTextEncoder(nn.Module):
    """Word embeddings + learned positions + a small Transformer encoder (see module docstring)."""

    def __init__(
        self,
        vocab: Sequence[str],
        dim: int = 64,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 80,
        hash_buckets: int = 64,
    ) -> None:
        super().__init__()
        self.vocab = list(vocab)
        self.max_len = max_len
        self.hash_buckets = hash_buckets
        self._index = {w: i + _SPECIALS for i, w in enumerate(self.vocab)}
        self.embed = nn.Embedding(_SPECIALS + len(self.vocab) + hash_buckets, dim, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def token_ids(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``(ids [B, L], mask [B, L])``, right-padded; prompts longer than ``max_len`` are cut."""
        rows = []
        for p in prompts:
            ids = [BOS]
            for w in tokenize_words(p):
                idx = self._index.get(w)
                if idx is None:
                    idx = _SPECIALS + len(self.vocab) + zlib.crc32(w.encode()) % self.hash_buckets
                ids.append(idx)
            rows.append(ids[: self.max_len])
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, (ids != PAD).long()

    def forward(self, prompts: Sequence[str]) -> TextCond:
        ids, mask = self.token_ids(prompts)
        ids, mask = ids.to(self.pos.device), mask.to(self.pos.device)
        h = self.embed(ids) + self.pos[: ids.shape[1]]
        h = self.norm(self.encoder(h, src_key_padding_mask=mask == 0))
        h = h * mask.unsqueeze(-1)
        return TextCond(h, h, mask)


class LTX2TextStack(nn.Module):
    """Gemma-3 + ``LTX2TextConnectors`` through ``LTX2Pipeline``'s own prompt encoding."""

    def __init__(self, pipeline, max_sequence_length: int = 1024) -> None:
        super().__init__()
        self.text_encoder = pipeline.text_encoder
        self.connectors = pipeline.connectors
        self._pipeline = pipeline  # not a submodule: the transformer and VAEs live elsewhere
        self.max_sequence_length = max_sequence_length

    @torch.no_grad()
    def forward(self, prompts: Sequence[str]) -> TextCond:
        pipe = self._pipeline
        device = next(self.connectors.parameters()).device
        embeds, mask, _, _ = pipe.encode_prompt(
            list(prompts),
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
            device=device,
        )
        padding_side = getattr(pipe.tokenizer, "padding_side", "left")
        video, audio, mask = self.connectors(embeds, mask, padding_side=padding_side)
        return TextCond(video.float(), audio.float(), mask)
