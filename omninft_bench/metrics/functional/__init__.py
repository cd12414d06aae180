"""Pure functional core of the metrics: each function scores ONE clip's arrays (numpy in, floats
or small arrays / dataclasses out) or compares two embedding sets. Metric classes, rewards and
the evaluate CLI wrap these; nothing here loads models or touches the network.

Modules:
    distribution -- Frechet distance, KID/KVD, per-sample Gaussian score (fadtk individual FAD)
    similarity   -- CLIP score, AVH / AV scores, JavisScore and its windows
    onsets       -- librosa-style onset strength and onset detection
    sync         -- AV-Align and the weight-free AV offset estimate (+ = audio lags video)
    vbench       -- temporal flickering, dynamic degree, motion smoothness, consistency,
                    leaderboard normalisation
    flow         -- OpenCV optical-flow helpers
"""

from .distribution import (
    GaussianReference,
    KernelDistance,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_individual_score,
    gaussian_individual_scores,
    gaussian_reference,
    gaussian_stats,
    kernel_distance,
)
from .onsets import onset_detect, onset_strength, peak_pick
from .similarity import (
    JavisWindow,
    av_score,
    avh_score,
    clip_score,
    cosine_rows,
    javis_score,
    javis_windows,
)
from .sync import AVOffset, av_align, av_align_from_peaks, av_offset, video_flow_peaks
from .vbench import (
    VBENCH_DIM_WEIGHT,
    VBENCH_NORMALIZE,
    VBENCH_QUALITY_DIMS,
    VBENCH_SEMANTIC_DIMS,
    DynamicDegree,
    background_consistency,
    dynamic_degree,
    motion_smoothness,
    subject_consistency,
    temporal_flickering,
    vbench_normalize,
)

__all__ = [
    "GaussianReference",
    "VBENCH_DIM_WEIGHT",
    "VBENCH_NORMALIZE",
    "VBENCH_QUALITY_DIMS",
    "VBENCH_SEMANTIC_DIMS",
    "AVOffset",
    "DynamicDegree",
    "JavisWindow",
    "KernelDistance",
    "av_align",
    "av_align_from_peaks",
    "av_offset",
    "av_score",
    "avh_score",
    "background_consistency",
    "clip_score",
    "cosine_rows",
    "dynamic_degree",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_individual_score",
    "gaussian_individual_scores",
    "gaussian_reference",
    "gaussian_stats",
    "javis_score",
    "javis_windows",
    "kernel_distance",
    "motion_smoothness",
    "onset_detect",
    "onset_strength",
    "peak_pick",
    "subject_consistency",
    "temporal_flickering",
    "vbench_normalize",
    "video_flow_peaks",
]
