"""Collapse diagnostics of a batch of embeddings, cheap enough for every train step.

A collapsed joint embedding maps every input to (nearly) one point, or to a low-dimensional
subspace (dimensional collapse). Three numbers show it while training:

    embedding_std   mean over dimensions of the std over the batch           -> 0 when collapsed
    effective_rank  exp(entropy of the normalized covariance eigenvalues)    in [1, D]
    offdiag_cov     mean squared off-diagonal covariance                      redundancy
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hjepa_jax import _checks

__all__ = ["covariance", "effective_rank", "collapse_metrics"]


def _check_batch(fn: str, s: jax.Array) -> None:
    fix = "pass a batch of embeddings [B, D] with B >= 2 (batch statistics)"
    _checks.rank(fn, "s", s, 2, "[B, D]", fix)
    if jnp.shape(s)[0] < 2:
        _checks.fail(fn, "B", jnp.shape(s)[0], "is too small: a covariance needs B >= 2", fix)


def covariance(s: jax.Array) -> jax.Array:
    """[B, D] -> [D, D] covariance over the batch, 1 / (B - 1); B >= 2.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> print(hj.collapse.covariance(jnp.array([[1.0, 0.0], [-1.0, 0.0]])))
      [[2. 0.]
       [0. 0.]]
    """
    _check_batch("covariance", s)
    centered = s - jnp.mean(s, axis=0)
    return centered.T @ centered / (s.shape[0] - 1)


def effective_rank(s: jax.Array) -> jax.Array:
    """exp(entropy) of the normalized eigenvalues of the covariance of s: [B, D] -> [] in [1, D].

    Scale-free (Roy & Vetterli 2007): how many directions the embeddings spread over, whatever
    their size (read it beside the std: a tiny collapsed cloud can still be round).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> s = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
      >>> round(float(hj.collapse.effective_rank(s)), 3)
      2.0
    """
    _check_batch("effective_rank", s)
    eig = jnp.clip(jnp.linalg.eigvalsh(covariance(s)), 0.0)
    p = eig / jnp.maximum(jnp.sum(eig), 1e-30)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-30)), 0.0)))


def collapse_metrics(s: jax.Array) -> dict[str, jax.Array]:
    """{"embedding_std", "effective_rank", "offdiag_cov"} of embeddings s: [B, D], B >= 2.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> m = hj.collapse.collapse_metrics(jnp.ones((4, 3)))  # every input on one point
      >>> {k: round(float(v), 3) for k, v in m.items()}
      {'embedding_std': 0.0, 'effective_rank': 1.0, 'offdiag_cov': 0.0}
    """
    _check_batch("collapse_metrics", s)
    cov = covariance(s)
    d = cov.shape[0]
    offdiag = (jnp.sum(cov**2) - jnp.sum(jnp.diag(cov) ** 2)) / max(d * (d - 1), 1)
    return {
        "embedding_std": jnp.mean(jnp.std(s, axis=0)),
        "effective_rank": effective_rank(s),
        "offdiag_cov": offdiag,
    }
