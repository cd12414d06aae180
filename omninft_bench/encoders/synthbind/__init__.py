"""SynthBind: in-house joint text/video/audio encoder for the SynthAV default domain.

* ``SynthBindBackend`` (registered as ``synthbind``): the encoder backend the metrics use.
* ``load_synthbind()``: the model with the weights shipped in ``weights/``.
* ``load_reference_stats()``: mean/covariance of its embeddings over the SynthAV reference split.

Training: ``python -m omninft_bench.encoders.synthbind.train``; held-out retrieval and
shift tests: ``python -m omninft_bench.encoders.synthbind.evaluate_retrieval``.  See MODEL_CARD.md.
"""

from omninft_bench.encoders.synthbind.backend import SynthBindBackend, weights_path
from omninft_bench.encoders.synthbind.model import (
    WEIGHTS_DIR,
    SynthBind,
    SynthBindSpec,
    load_synthbind,
    save_synthbind,
)
from omninft_bench.encoders.synthbind.stats import ReferenceStats, load_reference_stats
from omninft_bench.encoders.synthbind.tokenizer import WordTokenizer

__all__ = [
    "WEIGHTS_DIR",
    "ReferenceStats",
    "SynthBind",
    "SynthBindBackend",
    "SynthBindSpec",
    "WordTokenizer",
    "load_reference_stats",
    "load_synthbind",
    "save_synthbind",
    "weights_path",
]
