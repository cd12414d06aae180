"""Data: the SynthAV procedural benchmark, its perturbations and on-disk layouts.

* :mod:`omninft_bench.data.synthav` renders audio-video clips with ground truth (event times,
  object attributes, planted offset) from a seed.
* :mod:`omninft_bench.data.perturb` damages a clip in a controlled, graded way and updates its
  ground truth, for metric-validity sweeps.
* :mod:`omninft_bench.data.layout` reads and writes folders in the JavisBench layout.

Submodules are not imported here, so that ``python -m omninft_bench.data.synthav`` runs cleanly.
"""
