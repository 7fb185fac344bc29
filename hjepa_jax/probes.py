"""Linear probes of frozen representations: how much of a label a linear map can read off.

Both probes are closed-form ridge regressions (no training loop, deterministic), on features
standardized with the training set's statistics:

    W = argmin ||[X, 1] W - T||^2 + alpha ||W||^2 = (X1^T X1 + alpha I)^-1 X1^T T

`classification_accuracy` regresses one-hot targets and predicts the argmax (a ridge
classifier); `regression_r2` regresses continuous labels (positions, velocities) and reports
R^2 and RMSE on the test set.
"""

from __future__ import annotations

import numpy as np


def _design(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    train_x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    test_x = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    ones = lambda a: np.concatenate([(a - mean) / std, np.ones((len(a), 1))], axis=1)
    return ones(train_x), ones(test_x)


def _ridge(x1: np.ndarray, t: np.ndarray, alpha: float) -> np.ndarray:
    reg = alpha * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0  # the bias is not penalized
    return np.linalg.solve(x1.T @ x1 + reg, x1.T @ t)


def classification_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    alpha: float = 1.0,
) -> float:
    """Test accuracy of a ridge classifier on frozen features.

    Args:
      train_x, test_x: [N, ...] features (flattened).
      train_y, test_y: [N] integer labels.
      alpha: ridge strength.
    """
    x1, t1 = _design(train_x, test_x)
    classes = np.unique(train_y)
    targets = (np.asarray(train_y)[:, None] == classes[None, :]).astype(np.float64)
    pred = classes[np.argmax(t1 @ _ridge(x1, targets, alpha), axis=1)]
    return float(np.mean(pred == np.asarray(test_y)))


def ridge_regressor(train_x: np.ndarray, train_y: np.ndarray, alpha: float = 1.0):
    """The fitted ridge map of `regression_r2`, as a function [..., D] -> [..., K] (e.g. to
    decode predicted states into positions)."""
    x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    mean, std = x.mean(0), x.std(0) + 1e-8
    x1 = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    y = np.asarray(train_y, np.float64).reshape(len(train_y), -1)
    w = _ridge(x1, y, alpha)
    return lambda f: ((np.asarray(f, np.float64) - mean) / std) @ w[:-1] + w[-1]


def regression_r2(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    alpha: float = 1.0,
) -> tuple[float, float]:
    """(R^2, RMSE) on the test set of a ridge regression from features to labels [N, K].

    R^2 = 1 - SSE / SST, averaged over the K label dimensions (1: perfect, 0: the mean).
    """
    predict = ridge_regressor(train_x, train_y, alpha)
    test_y = np.asarray(test_y, np.float64).reshape(len(test_y), -1)
    pred = predict(np.asarray(test_x).reshape(len(test_x), -1))
    sse = np.sum((pred - test_y) ** 2, axis=0)
    sst = np.sum((test_y - test_y.mean(0)) ** 2, axis=0)
    r2 = float(np.mean(1.0 - sse / np.maximum(sst, 1e-12)))
    return r2, float(np.sqrt(np.mean((pred - test_y) ** 2)))
