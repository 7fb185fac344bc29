"""hj.losses (contrastive) against hand computations."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import hjepa_jax as hj

F_POS = jnp.array([0.2, 1.0, 3.0])
F_NEG = jnp.array([1.5, 0.5, 3.5])


def test_hinge():
    # max(0, 1 + .2 - 1.5) = 0, max(0, 1 + 1 - .5) = 1.5, max(0, 1 + 3 - 3.5) = 0.5
    np.testing.assert_allclose(hj.losses.hinge(F_POS, F_NEG, 1.0), 2.0 / 3.0, rtol=1e-6)


POS, NEG = [0.2, 1.0, 3.0], [1.5, 0.5, 3.5]


def test_log_loss():
    ref = np.mean([math.log1p(math.exp(p - n)) for p, n in zip(POS, NEG, strict=True)])
    np.testing.assert_allclose(hj.losses.log_loss(F_POS, F_NEG), ref, rtol=1e-6)


def test_square_square():
    ref = np.mean([0.04 + 0.25, 1.0 + 2.25, 9.0 + 0.0])  # margin 2: relu(2 - f_neg)^2
    np.testing.assert_allclose(hj.losses.square_square(F_POS, F_NEG, 2.0), ref, rtol=1e-6)


def test_square_exponential():
    ref = np.mean([p**2 + 0.5 * math.exp(-n) for p, n in zip(POS, NEG, strict=True)])
    np.testing.assert_allclose(hj.losses.square_exponential(F_POS, F_NEG, 0.5), ref, rtol=1e-6)


def test_nll_is_minus_log_probability_of_positive():
    f_negs = jnp.array([[1.0, 2.0], [0.0, 0.5], [3.0, 4.0]])
    beta = 2.0
    ref = []
    for p, negs in zip([0.2, 1.0, 3.0], np.asarray(f_negs), strict=True):
        all_e = np.array([p, *negs])
        prob = math.exp(-beta * p) / np.sum(np.exp(-beta * all_e))
        ref.append(-math.log(prob) / beta)
    np.testing.assert_allclose(hj.losses.nll(F_POS, f_negs, beta), np.mean(ref), rtol=1e-5)


def test_infonce_against_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    t = 0.3
    cos = (
        (a / np.linalg.norm(a, axis=1, keepdims=True))
        @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
        / t
    )
    log_p = cos - np.log(np.exp(cos).sum(axis=1, keepdims=True))
    ref = -np.mean(np.diag(log_p))
    got = hj.losses.infonce(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), t)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_shape_errors_are_named():
    with pytest.raises(ValueError, match=r"hinge: f_neg.shape=\(2,\), but f_neg must have"):
        hj.losses.hinge(F_POS, F_NEG[:2], 1.0)
    with pytest.raises(ValueError, match=r"nll: f_negs.shape=\(\d+,\), .* \[B, K\]"):
        hj.losses.nll(F_POS, F_NEG, 1.0)
