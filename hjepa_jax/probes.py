"""Linear probes of frozen representations: how much of a label a linear map can read off.

Both probes are closed-form ridge regressions (no training loop, deterministic), on features
standardized with the training set's statistics:

    W = argmin ||[X, 1] W - T||^2 + alpha ||W||^2 = (X1^T X1 + alpha I)^-1 X1^T T

`classification_accuracy` regresses one-hot targets and predicts the argmax (a ridge
classifier); `regression_r2` regresses continuous labels (positions, velocities) and reports
R^2 and RMSE on the test set. With more feature dimensions D than training rows N (raw
pixels) the same W is solved in its dual form, X^T (X X^T + alpha I)^-1 (T - mean T) (the
features are centered, so the unpenalized bias is mean T), an N x N system instead of D x D.

`knn_accuracy` is the other usual probe of self-supervised features: a k-nearest-neighbour
vote by cosine similarity, with no fitted weights.
"""

from __future__ import annotations

import numpy as np

from hjepa_jax import _checks

__all__ = ["classification_accuracy", "knn_accuracy", "ridge_regressor", "regression_r2"]


def _check_rows(fn: str, x, y, x_name: str, y_name: str) -> None:
    """x [N, ...] and y [N, ...]: as many rows, N >= 1."""
    n = np.shape(x)[:1]
    fix = f"pass one label row per feature row of {x_name}"
    if n in ((), (0,)):
        _checks.broken(fn, f"{x_name}.shape", np.shape(x), "[N >= 1, ...]", fix)
    _checks.shape(fn, y_name, y, n + np.shape(y)[1:], f"[N, ...], N as in {x_name}", fix)


def _check_split(fn: str, train_x, train_y, test_x, test_y, alpha) -> None:
    _check_rows(fn, train_x, train_y, "train_x", "train_y")
    _check_rows(fn, test_x, test_y, "test_x", "test_y")
    fix = "extract the test features as the training features"
    want = np.shape(test_x)[:1] + np.shape(train_x)[1:]
    _checks.shape(fn, "test_x", test_x, want, "[N_test, ...] as train_x's features", fix)
    _checks.non_negative(fn, "alpha", alpha, "pass a ridge strength >= 0, e.g. alpha=1.0")


def _design(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    train_x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    test_x = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    ones = lambda a: np.concatenate([(a - mean) / std, np.ones((len(a), 1))], axis=1)
    return ones(train_x), ones(test_x)


def _ridge(x1: np.ndarray, t: np.ndarray, alpha: float) -> np.ndarray:
    """W [D + 1, K] for the design [X, 1] (X's columns centered) and targets t [N, K]."""
    x = x1[:, :-1]
    if x.shape[1] > x.shape[0] and alpha > 0:  # dual form: an N x N system
        mean = t.mean(0)
        w = x.T @ np.linalg.solve(x @ x.T + alpha * np.eye(len(x)), t - mean)
        return np.concatenate([w, mean[None]], axis=0)
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

    Example:
      >>> import numpy as np
      >>> import hjepa_jax as hj
      >>> x, y = np.array([[0.0], [1.0], [10.0], [11.0]]), np.array([0, 0, 1, 1])
      >>> hj.probes.classification_accuracy(x, y, x, y)
      1.0
    """
    _check_split("classification_accuracy", train_x, train_y, test_x, test_y, alpha)
    fix = "pass integer class labels [N]"
    _checks.rank("classification_accuracy", "train_y", train_y, 1, "[N]", fix)
    _checks.rank("classification_accuracy", "test_y", test_y, 1, "[N_test]", fix)
    x1, t1 = _design(train_x, test_x)
    classes = np.unique(train_y)
    targets = (np.asarray(train_y)[:, None] == classes[None, :]).astype(np.float64)
    pred = classes[np.argmax(t1 @ _ridge(x1, targets, alpha), axis=1)]
    return float(np.mean(pred == np.asarray(test_y)))


def knn_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 20,
) -> float:
    """Test accuracy of a k-nearest-neighbour vote on frozen features (cosine similarity).

    Each test row takes the most frequent label among its k most similar training rows
    (ties: the label whose neighbours are the more similar in sum).

    Args:
      train_x, test_x: [N, ...] features (flattened).
      train_y, test_y: [N] integer labels.
      k: neighbours, 1 <= k <= N_train.

    Example:
      >>> import numpy as np
      >>> import hjepa_jax as hj
      >>> x, y = np.array([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0], [0.1, 1.0]]), np.array([0, 0, 1, 1])
      >>> hj.probes.knn_accuracy(x, y, x, y, k=2)
      1.0
    """
    fn = "knn_accuracy"
    _check_split(fn, train_x, train_y, test_x, test_y, 0.0)
    _checks.rank(fn, "train_y", train_y, 1, "[N]", "pass integer class labels [N]")
    _checks.rank(fn, "test_y", test_y, 1, "[N_test]", "pass integer class labels [N_test]")
    n = len(train_x)
    k = _checks.integer(fn, "k", k, maximum=n, fix=f"pass 1 <= k <= N_train = {n}")

    def unit(a):
        a = np.asarray(a, np.float32).reshape(len(a), -1)
        return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)

    train, test = unit(train_x), unit(test_x)
    classes, train_label = np.unique(np.asarray(train_y), return_inverse=True)
    correct = 0
    for start in range(0, len(test), 1024):  # [1024, N] similarities at a time
        sim = test[start : start + 1024] @ train.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(sim), len(classes)))
        rows = np.arange(len(sim))[:, None]
        np.add.at(votes, (rows, train_label[top]), 1.0 + 1e-3 * sim[rows, top])
        pred = classes[np.argmax(votes, axis=1)]
        correct += int(np.sum(pred == np.asarray(test_y)[start : start + 1024]))
    return correct / len(test)


def ridge_regressor(train_x: np.ndarray, train_y: np.ndarray, alpha: float = 1.0):
    """The fitted ridge map of `regression_r2`, as a function [..., D] -> [..., K] (e.g. to
    decode predicted states into positions).

    Example:
      >>> import numpy as np
      >>> import hjepa_jax as hj
      >>> x = np.arange(4.0)[:, None]
      >>> predict = hj.probes.ridge_regressor(x, 2 * x + 1, alpha=1e-9)
      >>> print(predict(np.array([[5.0]])).round(3))
      [[11.]]
    """
    _check_rows("ridge_regressor", train_x, train_y, "train_x", "train_y")
    _checks.non_negative("ridge_regressor", "alpha", alpha, "pass a ridge strength >= 0")
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

    Example:
      >>> import numpy as np
      >>> import hjepa_jax as hj
      >>> x = np.arange(4.0)[:, None]
      >>> r2, rmse = hj.probes.regression_r2(x, 2 * x + 1, x, 2 * x + 1, alpha=1e-9)
      >>> round(r2, 3), round(rmse, 3)
      (1.0, 0.0)
    """
    _check_split("regression_r2", train_x, train_y, test_x, test_y, alpha)
    fix = "pass test labels with the training labels' K dimensions"
    k = np.shape(np.reshape(train_y, (len(train_y), -1)))[1:]
    got = np.reshape(test_y, (len(test_y), -1))
    _checks.shape("regression_r2", "test_y (flattened)", got, (len(got), *k), "[N_test, K]", fix)
    predict = ridge_regressor(train_x, train_y, alpha)
    test_y = np.asarray(test_y, np.float64).reshape(len(test_y), -1)
    pred = predict(np.asarray(test_x).reshape(len(test_x), -1))
    sse = np.sum((pred - test_y) ** 2, axis=0)
    sst = np.sum((test_y - test_y.mean(0)) ** 2, axis=0)
    r2 = float(np.mean(1.0 - sse / np.maximum(sst, 1e-12)))
    return r2, float(np.sqrt(np.mean((pred - test_y) ** 2)))
