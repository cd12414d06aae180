"""VBench dimensions vs direct re-statements of the VBench protocol."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from omninft_bench.metrics.functional import (
    VBENCH_NORMALIZE,
    VBENCH_QUALITY_DIMS,
    VBENCH_SEMANTIC_DIMS,
    background_consistency,
    dynamic_degree,
    motion_smoothness,
    subject_consistency,
    temporal_flickering,
    vbench_normalize,
)


def textured_square_clip(positions, size=64, seed=0):
    """A textured 16x16 square at the given (x, y) top-left positions over a smooth
    background, one frame per position, with mild sensor noise."""
    rng = np.random.default_rng(seed)
    patch = cv2.resize(
        rng.integers(60, 250, (4, 4, 3)).astype(np.uint8), (16, 16), interpolation=cv2.INTER_CUBIC
    ).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    background = np.stack([40 + xx, 60 + 0.5 * yy, 90 + 0.3 * (xx + yy)], axis=-1).astype(
        np.float32
    )
    frames = []
    for x, y in positions:
        img = background.copy()
        img[y : y + 16, x : x + 16] = patch
        img += rng.normal(0.0, 1.5, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(frames)


def test_temporal_flickering_matches_direct_loop():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (6, 12, 10, 3), dtype=np.uint8)
    maes = [np.mean(cv2.absdiff(video[i], video[i + 1])) for i in range(len(video) - 1)]
    assert temporal_flickering(video) == pytest.approx((255.0 - np.mean(maes)) / 255.0)
    static = np.repeat(video[:1], 5, axis=0)
    assert temporal_flickering(static) == 1.0
    assert temporal_flickering(static.astype(np.float32) / 255.0) == 1.0


def test_dynamic_degree_follows_vbench_protocol():
    fps = 24.0
    moving = textured_square_clip([(4 + i, 20) for i in range(40)])  # 1 px/frame, 3 per pair
    result = dynamic_degree(moving, fps)
    kept = moving[::3]  # round(24 / 8) = 3
    assert result.count == round(4 * len(kept) / 16)
    assert result.threshold == pytest.approx(6 * 64 / 256)
    # Re-state VBench's per-pair score with the same (Farneback) flows: mean of the top 5%.
    expected = []
    for a, b in zip(kept[:-1], kept[1:], strict=True):
        flow = cv2.calcOpticalFlowFarneback(
            cv2.cvtColor(a, cv2.COLOR_RGB2GRAY),
            cv2.cvtColor(b, cv2.COLOR_RGB2GRAY),
            None,
            0.5,
            4,
            15,
            3,
            5,
            1.2,
            0,
        )
        rad = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2).ravel()
        expected.append(np.mean(np.sort(rad)[::-1][: int(64 * 64 * 0.05)]))
    np.testing.assert_allclose(result.pair_magnitudes, expected, rtol=1e-5)
    n_above = int(np.sum(np.asarray(expected) > result.threshold))
    assert result.is_dynamic == (n_above >= result.count)
    assert result.is_dynamic == (result.score > 1.0)


def test_dynamic_degree_separates_static_from_moving():
    static = textured_square_clip([(20, 20)] * 32)
    moving = textured_square_clip([(2 + i, 10 + i // 2) for i in range(32)])
    still, dyn = dynamic_degree(static, 16.0), dynamic_degree(moving, 16.0)
    assert not still.is_dynamic and still.score < 1.0
    assert dyn.is_dynamic and dyn.score > 1.0


def test_motion_smoothness_prefers_smooth_motion():
    rng = np.random.default_rng(3)
    smooth = textured_square_clip([(4 + 2 * i, 24) for i in range(17)])
    jitter = textured_square_clip([(int(x), int(y)) for x, y in rng.integers(0, 48, (17, 2))])
    static = textured_square_clip([(24, 24)] * 17)
    s_smooth, s_jitter, s_static = (motion_smoothness(v) for v in (smooth, jitter, static))
    assert 0.0 < s_jitter < s_smooth <= s_static <= 1.0
    assert s_smooth > 0.98


def test_consistency_matches_hand_computation():
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((6, 5))
    feats[3] = -feats[0]  # a negative cosine is clamped to 0

    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    terms = [
        (max(0.0, cos(feats[i - 1], feats[i])) + max(0.0, cos(feats[0], feats[i]))) / 2
        for i in range(1, 6)
    ]
    assert subject_consistency(feats) == pytest.approx(np.mean(terms), rel=1e-12)
    assert background_consistency(feats) == subject_consistency(feats)
    assert subject_consistency(np.ones((4, 3))) == pytest.approx(1.0)


def test_vbench_normalize_full_and_partial():
    raw = {name: 0.5 for name in VBENCH_NORMALIZE}
    raw["temporal flickering"] = raw.pop("temporal_flickering")  # spaced names accepted
    out = vbench_normalize(raw)
    norm = {k: (0.5 - lo) / (hi - lo) for k, (lo, hi) in VBENCH_NORMALIZE.items()}
    for k, v in norm.items():
        assert out[k] == pytest.approx(v)
    quality = (sum(norm[d] for d in VBENCH_QUALITY_DIMS) - 0.5 * norm["dynamic_degree"]) / 6.5
    semantic = sum(norm[d] for d in VBENCH_SEMANTIC_DIMS) / 9
    assert out["quality_score"] == pytest.approx(quality)
    assert out["semantic_score"] == pytest.approx(semantic)
    assert out["total_score"] == pytest.approx((4 * quality + semantic) / 5)

    partial = vbench_normalize({"temporal_flickering": 0.9, "motion_smoothness": 0.9975})
    assert partial["motion_smoothness"] == pytest.approx(1.0)
    assert partial["quality_score"] == pytest.approx(((0.9 - 0.6293) / (1 - 0.6293) + 1.0) / 2)
    assert "semantic_score" not in partial and "total_score" not in partial
    with pytest.raises(ValueError, match="did you mean motion_smoothness"):
        vbench_normalize({"motion_smoothnes": 0.9})
