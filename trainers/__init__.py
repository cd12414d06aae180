"""OmniNFT trainer: DiffusionNFT plus modality-wise routing, gradient surgery and region reweighting.

The backbone wrapper, the pure objective functions and the RL loop will live here (issues
"Backbone" and "Trainer"); nothing is implemented yet.
"""
