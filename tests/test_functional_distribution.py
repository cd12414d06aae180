"""Parity of the distribution distances with reference formulas written out here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from omninft_bench.metrics.functional import (
    KernelDistance,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_individual_score,
    gaussian_individual_scores,
    gaussian_reference,
    gaussian_stats,
    kernel_distance,
)


def reference_fd(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
    """pytorch-fid style: np.cov statistics, scipy sqrtm with an eps*I retry, real part."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def correlated_gaussian(rng, n, d, scale=1.0, shift=0.0):
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mix) * scale + shift


@pytest.mark.parametrize("d", [2, 8, 64, 256])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    x = correlated_gaussian(rng, 3 * d + 50, d)
    y = correlated_gaussian(rng, 2 * d + 80, d, scale=1.3, shift=0.2)
    ours = frechet_distance(x, y)
    assert ours == pytest.approx(reference_fd(x, y), rel=1e-6)


def test_frechet_distance_accepts_torch_and_float32():
    rng = np.random.default_rng(0)
    x = correlated_gaussian(rng, 300, 16).astype(np.float32)
    y = correlated_gaussian(rng, 300, 16, shift=0.5).astype(np.float32)
    expected = reference_fd(x.astype(np.float64), y.astype(np.float64))
    assert frechet_distance(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
        expected, rel=1e-6
    )


def test_frechet_distance_warns_when_fewer_samples_than_dims():
    rng = np.random.default_rng(1)
    with pytest.warns(UserWarning, match="N=10 samples < d=32"):
        value = frechet_distance(rng.standard_normal((10, 32)), rng.standard_normal((100, 32)))
    assert np.isfinite(value) and value >= 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(rng.standard_normal((40, 32)), rng.standard_normal((40, 32)))


def test_frechet_distance_identical_sets_is_zero_and_non_negative():
    rng = np.random.default_rng(2)
    for d in (4, 64, 128):
        x = correlated_gaussian(rng, 2 * d + 10, d)
        value = frechet_distance(x, x.copy())
        assert 0.0 <= value < 1e-8 * np.trace(np.cov(x, rowvar=False))
    # Rank-deficient covariance (all samples on a plane) still gives 0, not NaN.
    plane = np.zeros((50, 6))
    plane[:, :2] = rng.standard_normal((50, 2))
    assert 0.0 <= frechet_distance(plane, plane) < 1e-10


def test_gaussian_stats_and_from_stats_are_consistent():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((200, 12)), rng.standard_normal((150, 12)) + 1.0
    mu, sigma = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    stats = (*gaussian_stats(x), *gaussian_stats(y))
    assert frechet_distance_from_stats(*stats) == pytest.approx(frechet_distance(x, y))
    # Two Gaussians differing only in the mean: FD = ||mu1 - mu2||^2.
    eye = np.eye(3)
    assert frechet_distance_from_stats([0, 0, 0], eye, [1, 2, 2], eye) == pytest.approx(9.0)


# ------------------------------------------------------------------------------ KID / KVD


def reference_mmd2(x: np.ndarray, y: np.ndarray, degree=3, coef0=1.0) -> float:
    """Unbiased polynomial MMD^2 by explicit double loops (equal set sizes)."""
    m, d = x.shape

    def k(a, b):
        return (float(a @ b) / d + coef0) ** degree

    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (m * m)


def test_kernel_distance_full_set_matches_double_loop():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((7, 5)), rng.standard_normal((7, 5)) * 1.5 + 0.3
    result = kernel_distance(x, y)
    assert isinstance(result, KernelDistance)
    assert result.mean == pytest.approx(reference_mmd2(x, y), rel=1e-10)
    assert result.std == 0.0
    # A hand-checkable case: d = 1, k(a, b) = (a b + 1)^3.
    tiny = kernel_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]]))
    # kxx off-diag: 2 * (0*1+1)^3 = 2; kyy: 2 * (2+1)^3 = 54; kxy: 1 + 1 + 8 + 27 = 37.
    assert tiny.mean == pytest.approx(2 / 2 + 54 / 2 - 2 * 37 / 4)


def test_kernel_distance_subsets():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) + 0.5
    # Subsets that are whole-set permutations give the full-set value with zero spread.
    perm = kernel_distance(x, y, subsets=3, subset_size=40)
    assert perm.mean == pytest.approx(kernel_distance(x, y).mean, rel=1e-10)
    assert perm.std == pytest.approx(0.0, abs=1e-10)
    # Proper subsets: deterministic for a seed, mean of the per-subset values, population std.
    a = kernel_distance(x, y, subsets=20, subset_size=10, seed=1)
    b = kernel_distance(x, y, subsets=20, subset_size=10, seed=1)
    assert a == b and a.std > 0.0
    draws = np.random.default_rng(1)
    values = []
    for _ in range(20):
        xs = x[draws.choice(40, 10, replace=False)]
        ys = y[draws.choice(40, 10, replace=False)]
        values.append(reference_mmd2(xs, ys))
    assert a.mean == pytest.approx(np.mean(values), rel=1e-10)
    assert a.std == pytest.approx(np.std(values), rel=1e-8)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_distance(x, y, subsets=2, subset_size=41)


def test_kernel_distance_near_zero_for_same_distribution():
    rng = np.random.default_rng(6)
    same = kernel_distance(rng.standard_normal((300, 8)), rng.standard_normal((300, 8)))
    shifted = kernel_distance(rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 1)
    assert abs(same.mean) < 0.05 < shifted.mean


# ----------------------------------------------------------------- per-sample Gaussian score


def test_individual_score_single_frame_is_mean_term():
    rng = np.random.default_rng(7)
    ref = correlated_gaussian(rng, 500, 16)
    mu, sigma = gaussian_stats(ref)
    frame = rng.standard_normal((1, 16))
    expected = float(((frame[0] - mu) ** 2).sum())
    assert gaussian_individual_score(frame, mu, sigma) == pytest.approx(expected, rel=1e-8)


def test_individual_score_without_prior_is_plain_fd():
    rng = np.random.default_rng(8)
    mu, sigma = gaussian_stats(correlated_gaussian(rng, 400, 10))
    frames = correlated_gaussian(rng, 60, 10, shift=0.3)
    expected = frechet_distance_from_stats(*gaussian_stats(frames), mu, sigma)
    assert gaussian_individual_score(frames, mu, sigma, prior_frames=0) == pytest.approx(
        expected, rel=1e-7
    )


def test_individual_score_few_frames_is_finite_and_ranks_samples():
    rng = np.random.default_rng(9)
    d = 64
    ref = correlated_gaussian(rng, 2000, d)
    mu, sigma = gaussian_stats(ref)
    samples = [
        correlated_gaussian(rng, 5, d),  # n < d: rank-deficient sample covariance
        correlated_gaussian(rng, 5, d, shift=1.0),
        correlated_gaussian(rng, 5, d, shift=3.0),
    ]
    scores = gaussian_individual_scores(samples, mu, sigma)
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(scores >= 0)
    assert scores[0] < scores[1] < scores[2]
    singles = [gaussian_individual_score(s, mu, sigma) for s in samples]
    np.testing.assert_allclose(scores, singles, rtol=1e-10)


def test_individual_score_covariance_part_has_no_first_order_term():
    """With n frames and the prior n0, the covariance part of the score (the squared Bures
    distance between the shrunk covariance and the reference's) has no first-order term in the
    sample weight w = (n - 1) / (n - 1 + n0): for a well-conditioned reference, halving w
    quarters it.  So with few frames (n - 1 << n0 = d) the score is, nearly, the squared distance
    of the sample's mean embedding to the reference mean."""
    rng = np.random.default_rng(11)
    d, n = 16, 3
    mu, sigma = gaussian_stats(rng.standard_normal((3000, d)))  # eigenvalues near 1
    frames = correlated_gaussian(rng, n, d, scale=2.0, shift=0.5)  # a wider spread than the reference
    mean_term = float(((frames.mean(0) - mu) ** 2).sum())

    def covariance_part(w):
        n0 = (n - 1) * (1 - w) / w
        return gaussian_individual_score(frames, mu, sigma, prior_frames=n0) - mean_term

    first, half = covariance_part(0.002), covariance_part(0.001)
    assert first > 0 and half > 0
    assert first / half == pytest.approx(4.0, rel=0.05)


def test_prepared_reference_scores_like_the_one_shot_function():
    """A GaussianReference built once scores every batch as the function that rebuilds it does:
    its square root squares back to the covariance, and shrinkage (prior_frames) passes through."""
    rng = np.random.default_rng(10)
    mu, sigma = gaussian_stats(correlated_gaussian(rng, 300, 12))
    prepared = gaussian_reference(mu, sigma)
    np.testing.assert_allclose(prepared.root @ prepared.root, sigma, atol=1e-10)
    batches = [[correlated_gaussian(rng, n, 12, shift=s) for n in (1, 3, 40)] for s in (0.0, 0.5)]
    for batch in batches:
        for prior in (None, 0, 4.0):
            np.testing.assert_array_equal(
                prepared.scores(batch, prior_frames=prior),
                gaussian_individual_scores(batch, mu, sigma, prior_frames=prior),
            )
    with pytest.raises(ValueError, match="ref_sigma must be"):
        gaussian_reference(mu, sigma[:-1, :-1])
