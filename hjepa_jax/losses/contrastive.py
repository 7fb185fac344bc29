"""Contrastive losses: push F down on data pairs (x, y), up on contrastive pairs (x, y_bar).

Each takes the free energies of a batch and returns a scalar, the mean over the batch of the
per-example loss. `f_pos`: [B] energies of data pairs; `f_neg`: [B] energies of one
contrastive pair per example (or `f_negs`: [B, K] for K of them).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

from hjepa_jax import latent


def _check_pair(name: str, f_pos: jax.Array, f_neg: jax.Array) -> None:
    chex.assert_rank(f_pos, 1, custom_message=f"{name}: f_pos must be [B]")
    chex.assert_equal_shape((f_pos, f_neg), custom_message=f"{name}: f_pos and f_neg")


def hinge(f_pos: jax.Array, f_neg: jax.Array, margin: float) -> jax.Array:
    """Hinge loss (our E7): mean max(0, m + F(x, y) - F(x, y_bar)). f_pos, f_neg: [B] -> []."""
    _check_pair("hinge", f_pos, f_neg)
    return jnp.mean(jax.nn.relu(margin + f_pos - f_neg))


def log_loss(f_pos: jax.Array, f_neg: jax.Array) -> jax.Array:
    """Log (soft-hinge) loss (E8): mean log(1 + exp(F(x, y) - F(x, y_bar))). [B], [B] -> []."""
    _check_pair("log_loss", f_pos, f_neg)
    return jnp.mean(jax.nn.softplus(f_pos - f_neg))


def square_square(f_pos: jax.Array, f_neg: jax.Array, margin: float) -> jax.Array:
    """Square-square loss (E10): mean F(x, y)^2 + max(0, m - F(x, y_bar))^2. [B], [B] -> []."""
    _check_pair("square_square", f_pos, f_neg)
    return jnp.mean(f_pos**2 + jax.nn.relu(margin - f_neg) ** 2)


def square_exponential(f_pos: jax.Array, f_neg: jax.Array, gamma: float) -> jax.Array:
    """Square-exponential loss (E10): mean F(x, y)^2 + gamma exp(-F(x, y_bar)). [B], [B] -> []."""
    _check_pair("square_exponential", f_pos, f_neg)
    return jnp.mean(f_pos**2 + gamma * jnp.exp(-f_neg))


def nll(f_pos: jax.Array, f_negs: jax.Array, beta: float) -> jax.Array:
    """Negative log-likelihood (E9) with the integral over y' estimated on the samples:

        L = F(x, y) - soft_min_beta([F(x, y), F(x, y_bar_1..K)])  = -1/beta log p(y | x)

    Args:
      f_pos: [B] energies of data pairs.
      f_negs: [B, K] energies of K contrastive samples per example.
      beta: inverse temperature > 0.
    """
    chex.assert_rank((f_pos, f_negs), (1, 2), custom_message="nll: f_pos [B], f_negs [B, K]")
    chex.assert_equal_shape_prefix((f_pos, f_negs), 1, custom_message="nll: batch sizes")
    all_energies = jnp.concatenate([f_pos[:, None], f_negs], axis=-1)
    return jnp.mean(f_pos - latent.soft_min(all_energies, beta, axis=-1))


def infonce(s_a: jax.Array, s_b: jax.Array, temperature: float) -> jax.Array:
    """InfoNCE: softmax cross-entropy over the batch, matching index as the positive.

        logits_ij = cos(s_a_i, s_b_j) / t,   L = mean_i -log softmax(logits_i)_i   (a -> b)

    The energy of a pair is -cos / t; the other examples of the batch are the negatives.

    Args:
      s_a, s_b: [B, D] embeddings of the two views.
      temperature: t > 0.
    """
    chex.assert_rank(s_a, 2, custom_message="infonce: s_a must be [B, D]")
    chex.assert_equal_shape((s_a, s_b), custom_message="infonce: s_a and s_b")

    def unit(s):
        return s / jnp.maximum(jnp.linalg.norm(s, axis=-1, keepdims=True), 1e-12)

    logits = unit(s_a) @ unit(s_b).T / temperature
    labels = jnp.arange(s_a.shape[0])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
