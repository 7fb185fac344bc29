"""hj.probes against known answers."""

import numpy as np
import pytest

from hjepa_jax import probes

RNG = np.random.default_rng(0)


def test_classification_probe_reads_a_linear_label_and_not_noise():
    x = RNG.normal(size=(600, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + 2 * (x[:, 2] > 0)
    acc = probes.classification_accuracy(x[:400], y[:400], x[400:], y[400:])
    assert acc > 0.85
    noise = RNG.normal(size=(600, 5))
    acc_noise = probes.classification_accuracy(noise[:400], y[:400], noise[400:], y[400:])
    assert acc_noise < 0.4  # 4 balanced classes: chance is 0.25


def test_regression_probe_r2_and_rmse():
    x = RNG.normal(size=(500, 3))
    y = x @ np.array([[1.0, 0.0], [2.0, -1.0], [0.0, 0.5]]) + 0.1 * RNG.normal(size=(500, 2))
    r2, rmse = probes.regression_r2(x[:300], y[:300], x[300:], y[300:], alpha=1e-3)
    assert r2 > 0.99 and abs(rmse - 0.1) < 0.02
    r2, _ = probes.regression_r2(
        RNG.normal(size=(500, 3))[:300], y[:300], RNG.normal(size=(200, 3)), y[300:]
    )
    assert r2 < 0.05


def test_dual_ridge_matches_the_primal_solution():
    """More dimensions than rows: the dual form gives the primal ridge's predictions."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 50))
    t = rng.normal(size=(30, 3))
    x1 = np.concatenate([x - x.mean(0), np.ones((30, 1))], axis=1)
    reg = 2.0 * np.eye(51)
    reg[-1, -1] = 0.0
    primal = np.linalg.solve(x1.T @ x1 + reg, x1.T @ t)
    np.testing.assert_allclose(probes._ridge(x1, t, 2.0), primal, atol=1e-9)


def test_knn_reads_clusters_and_beats_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 600)
    centres = rng.normal(size=(4, 16)) * 3
    x = centres[y] + rng.normal(size=(600, 16))
    assert probes.knn_accuracy(x[:400], y[:400], x[400:], y[400:], k=10) > 0.95
    noise = rng.normal(size=(600, 16))
    assert probes.knn_accuracy(noise[:400], y[:400], noise[400:], y[400:], k=10) < 0.45
    with pytest.raises(ValueError, match="knn_accuracy: k=401"):
        probes.knn_accuracy(x[:400], y[:400], x[400:], y[400:], k=401)
