"""Contrastive losses: push F down on data pairs (x, y), up on contrastive pairs (x, y_bar).

Each takes the free energies of a batch and returns a scalar, the mean over the batch of the
per-example loss. `f_pos`: [B] energies of data pairs; `f_neg`: [B] energies of one
contrastive pair per example (or `f_negs`: [B, K] for K of them).

Shapes and concrete settings are checked before tracing (a ValueError names the argument); a
traced margin, beta or temperature is not checked (a temperature <= 0 turns the loss over).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, latent

__all__ = ["hinge", "log_loss", "square_square", "square_exponential", "nll", "infonce"]

_PAIR_FIX = "pass one energy per example for the data pairs and for the contrastive pairs"


def _check_pair(fn: str, f_pos: jax.Array, f_neg: jax.Array) -> None:
    _checks.rank(fn, "f_pos", f_pos, 1, "[B]", _PAIR_FIX)
    _checks.shape(fn, "f_neg", f_neg, jnp.shape(f_pos), "f_pos's shape [B]", _PAIR_FIX)


def hinge(f_pos: jax.Array, f_neg: jax.Array, margin: float) -> jax.Array:
    """Hinge loss (our E7): mean max(0, m + F(x, y) - F(x, y_bar)). f_pos, f_neg: [B] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.losses.hinge(jnp.array([0.0]), jnp.array([0.5]), 1.0))
      0.5
    """
    _check_pair("hinge", f_pos, f_neg)
    _checks.non_negative("hinge", "margin", margin, "pass a margin m >= 0")
    return jnp.mean(jax.nn.relu(margin + f_pos - f_neg))


def log_loss(f_pos: jax.Array, f_neg: jax.Array) -> jax.Array:
    """Log (soft-hinge) loss (E8): mean log(1 + exp(F(x, y) - F(x, y_bar))). [B], [B] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> round(float(hj.losses.log_loss(jnp.zeros(1), jnp.zeros(1))), 4)
      0.6931
    """
    _check_pair("log_loss", f_pos, f_neg)
    return jnp.mean(jax.nn.softplus(f_pos - f_neg))


def square_square(f_pos: jax.Array, f_neg: jax.Array, margin: float) -> jax.Array:
    """Square-square loss (E10): mean F(x, y)^2 + max(0, m - F(x, y_bar))^2. [B], [B] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.losses.square_square(jnp.array([1.0]), jnp.array([0.5]), 1.0))
      1.25
    """
    _check_pair("square_square", f_pos, f_neg)
    _checks.non_negative("square_square", "margin", margin, "pass a margin m >= 0")
    return jnp.mean(f_pos**2 + jax.nn.relu(margin - f_neg) ** 2)


def square_exponential(f_pos: jax.Array, f_neg: jax.Array, gamma: float) -> jax.Array:
    """Square-exponential loss (E10): mean F(x, y)^2 + gamma exp(-F(x, y_bar)). [B], [B] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.losses.square_exponential(jnp.array([1.0]), jnp.array([0.0]), 2.0))
      3.0
    """
    _check_pair("square_exponential", f_pos, f_neg)
    _checks.positive("square_exponential", "gamma", gamma, "pass a weight gamma > 0")
    return jnp.mean(f_pos**2 + gamma * jnp.exp(-f_neg))


def nll(f_pos: jax.Array, f_negs: jax.Array, beta: float) -> jax.Array:
    """Negative log-likelihood (E9) with the integral over y' estimated on the samples:

        L = F(x, y) - soft_min_beta([F(x, y), F(x, y_bar_1..K)])  = -1/beta log p(y | x)

    Args:
      f_pos: [B] energies of data pairs.
      f_negs: [B, K] energies of K contrastive samples per example.
      beta: inverse temperature > 0.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> round(float(hj.losses.nll(jnp.zeros(1), jnp.zeros((1, 1)), 1.0)), 4)
      0.6931
    """
    fix = "pass f_pos [B] and K contrastive energies per example, f_negs [B, K]"
    _checks.rank("nll", "f_pos", f_pos, 1, "[B]", fix)
    _checks.shape("nll", "f_negs", f_negs, (jnp.shape(f_pos)[0], None), "[B, K]", fix)
    _checks.positive("nll", "beta", beta, "pass an inverse temperature > 0", allow_inf=True)
    all_energies = jnp.concatenate([f_pos[:, None], f_negs], axis=-1)
    return jnp.mean(f_pos - latent.soft_min(all_energies, beta, axis=-1))


def infonce(s_a: jax.Array, s_b: jax.Array, temperature: float) -> jax.Array:
    """InfoNCE: softmax cross-entropy over the batch, matching index as the positive.

        logits_ij = cos(s_a_i, s_b_j) / t,   L = mean_i -log softmax(logits_i)_i   (a -> b)

    The energy of a pair is -cos / t; the other examples of the batch are the negatives.

    Args:
      s_a, s_b: [B, D] embeddings of the two views.
      temperature: t > 0 (a traced one is not checked).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> round(float(hj.losses.infonce(jnp.eye(3), jnp.eye(3), 1.0)), 4)
      0.5514
    """
    fix = "pass embeddings [B, D] of the two views of the same B >= 2 examples"
    _checks.rank("infonce", "s_a", s_a, 2, "[B, D]", fix)
    _checks.shape("infonce", "s_b", s_b, jnp.shape(s_a), "s_a's shape [B, D]", fix)
    if jnp.shape(s_a)[0] < 2:
        _checks.fail("infonce", "B", jnp.shape(s_a)[0], "leaves no negatives in the batch", fix)
    _checks.positive("infonce", "temperature", temperature, "pass a temperature t > 0, e.g. 0.1")

    def unit(s):
        return s / jnp.maximum(jnp.linalg.norm(s, axis=-1, keepdims=True), 1e-12)

    logits = unit(s_a) @ unit(s_b).T / temperature
    labels = jnp.arange(s_a.shape[0])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
