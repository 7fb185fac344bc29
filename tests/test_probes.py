"""hj.probes against known answers."""

import numpy as np

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
