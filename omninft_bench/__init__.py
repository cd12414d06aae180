"""omninft-bench: evaluation-first benchmarking harness for joint audio-video generators.

Layers, lowest first: ``media`` (clip I/O), ``data`` (SynthAV), ``metrics`` (registry and
functional core), ``encoders``, ``rewards``, ``evaluate``, ``tracking``, ``report``, ``run``.
Lower layers never import upper ones.  The trainer lives in the sibling package ``trainers``.
"""

__version__ = "0.1.0"
