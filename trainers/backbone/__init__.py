"""The generator under training: LTX-2 dual-stream transformer + codecs + text conditioning.

``Backbone.build("tiny")`` loads the shipped SynthAV-pretrained tiny model;
``Backbone.build("ltx2", PATH)`` wraps the released LTX-2 checkpoint.  See docs/backbone.md.
"""

from trainers.backbone.codecs import LTX2AudioCodec, LTX2VideoCodec, MelAudioCodec, PatchVideoCodec
from trainers.backbone.model import (
    DEFAULT_WEIGHTS,
    GROUPS,
    Backbone,
    BackboneConfig,
    CrossModalBlock,
    TinyConfig,
    param_group,
)
from trainers.backbone.text import LTX2TextStack, TextCond, WordTextEncoder, build_vocab

__all__ = [
    "DEFAULT_WEIGHTS",
    "GROUPS",
    "Backbone",
    "BackboneConfig",
    "CrossModalBlock",
    "LTX2AudioCodec",
    "LTX2TextStack",
    "LTX2VideoCodec",
    "MelAudioCodec",
    "PatchVideoCodec",
    "TextCond",
    "TinyConfig",
    "WordTextEncoder",
    "build_vocab",
    "param_group",
]
