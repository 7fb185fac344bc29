"""Regularized and architectural methods: limit the volume of low energy (paper Sec. 4, E11-E12).

Instead of pushing energy up on contrastive points, these bound how much of the space can
take low energy: VICReg and Barlow Twins keep embeddings informative, sparse coding and
K-means restrict the latent, a bottleneck or a noisy latent (VAE) limits what z can carry.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from hjepa_jax import latent


def _offdiag_sq_sum(m: jax.Array) -> jax.Array:
    return jnp.sum(m**2) - jnp.sum(jnp.diag(m) ** 2)


def vicreg(
    s_a: jax.Array, s_b: jax.Array, sim: float = 25.0, var: float = 25.0, cov: float = 1.0
) -> tuple[jax.Array, dict]:
    """VICReg (E12), as the VICReg paper's reference code computes it.

        invariance = mean((s_a - s_b)^2)
        variance   = mean_d relu(1 - sqrt(Var_unbiased(s[:, d]) + 1e-4)), averaged over a, b
        covariance = sum_{i != j} C(s)_ij^2 / D summed over a and b,  C with 1 / (B - 1)
        loss       = sim * invariance + var * variance + cov * covariance

    Batch statistics are over the whole batch: under jit with a sharded batch they are global.

    Args:
      s_a, s_b: [B, D] embeddings of the two branches (B >= 2).
      sim, var, cov: the weights.

    Returns:
      (loss [], {"invariance", "variance", "covariance"}).
    """
    chex.assert_rank(s_a, 2, custom_message="vicreg: s_a must be [B, D]")
    chex.assert_equal_shape((s_a, s_b), custom_message="vicreg: s_a and s_b")
    b, d = s_a.shape
    if b < 2:
        raise ValueError(f"vicreg: batch statistics need B >= 2, got B={b}.")
    invariance = jnp.mean((s_a - s_b) ** 2)

    def var_cov(s):
        s = s - jnp.mean(s, axis=0)
        std = jnp.sqrt(jnp.var(s, axis=0, ddof=1) + 1e-4)
        c = s.T @ s / (b - 1)
        return jnp.mean(jax.nn.relu(1.0 - std)), _offdiag_sq_sum(c) / d

    (var_a, cov_a), (var_b, cov_b) = var_cov(s_a), var_cov(s_b)
    variance = (var_a + var_b) / 2
    covariance = cov_a + cov_b
    loss = sim * invariance + var * variance + cov * covariance
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}


def barlow_twins(s_a: jax.Array, s_b: jax.Array, lam: float = 5e-3) -> tuple[jax.Array, dict]:
    """Barlow Twins: the cross-correlation of standardized embeddings pushed to the identity.

        C = z_a^T z_b / B  (z standardized per dimension over the batch)
        loss = sum_i (1 - C_ii)^2 + lam * sum_{i != j} C_ij^2

    Args:
      s_a, s_b: [B, D].
      lam: weight of the redundancy-reduction term.

    Returns:
      (loss [], {"on_diagonal", "off_diagonal"}).
    """
    chex.assert_rank(s_a, 2, custom_message="barlow_twins: s_a must be [B, D]")
    chex.assert_equal_shape((s_a, s_b), custom_message="barlow_twins: s_a and s_b")

    def standardize(s):
        return (s - jnp.mean(s, axis=0)) / (jnp.std(s, axis=0) + 1e-6)

    c = standardize(s_a).T @ standardize(s_b) / s_a.shape[0]
    on = jnp.sum((1.0 - jnp.diag(c)) ** 2)
    off = _offdiag_sq_sum(c)
    return on + lam * off, {"on_diagonal": on, "off_diagonal": off}


# ---- sparse coding: E(y, z) = ||y - W z||^2 + lam |z|_1, minimized by ISTA / FISTA ----


def soft_threshold(z: jax.Array, t: float | jax.Array) -> jax.Array:
    """prox of t |.|_1: sign(z) max(|z| - t, 0)."""
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) - t)


class FistaState(NamedTuple):
    """x_prev: the last proximal point (the pytree of z); t: [] the momentum sequence."""

    x_prev: optax.Params
    t: jax.Array


def ista(step_size: float, l1: float) -> optax.GradientTransformation:
    """ISTA as an optax transformation, for `latent.minimize` over the smooth part f(z):

        z <- prox_{step l1 |.|_1}(z - step * grad f(z))

    The returned update is the difference to that point, so `minimize` with this optimizer
    is proximal gradient descent on f(z) + l1 |z|_1.
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("ista needs params (the current z) in update().")
        new = jax.tree_util.tree_map(
            lambda z, g: soft_threshold(z - step_size * g, step_size * l1), params, updates
        )
        return jax.tree_util.tree_map(jnp.subtract, new, params), state

    return optax.GradientTransformation(init_fn, update_fn)


def fista(step_size: float, l1: float) -> optax.GradientTransformation:
    """FISTA (Beck & Teboulle 2009) as an optax transformation; z in the loop is the
    extrapolated point y_k:

        x_k     = prox_{step l1}(y_k - step * grad f(y_k))
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
        y_{k+1} = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})

    After the last step, `z` is the extrapolated point; apply one more `prox` step, or read
    `sparse_code` which does.
    """

    def init_fn(params):
        return FistaState(x_prev=params, t=jnp.ones((), jnp.float32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("fista needs params (the current z) in update().")
        x = jax.tree_util.tree_map(
            lambda y, g: soft_threshold(y - step_size * g, step_size * l1), params, updates
        )
        t_next = (1.0 + jnp.sqrt(1.0 + 4.0 * state.t**2)) / 2.0
        beta = (state.t - 1.0) / t_next
        y_next = jax.tree_util.tree_map(lambda a, b: a + beta * (a - b), x, state.x_prev)
        return jax.tree_util.tree_map(jnp.subtract, y_next, params), FistaState(x, t_next)

    return optax.GradientTransformation(init_fn, update_fn)


def reconstruction(w: jax.Array, z: jax.Array, y: jax.Array) -> jax.Array:
    """||y - W z||^2. w: [Y, Z], z: [Z], y: [Y] -> []."""
    return jnp.sum((y - w @ z) ** 2)


def sparse_coding_energy(w: jax.Array, z: jax.Array, y: jax.Array, l1: float) -> jax.Array:
    """Sparse coding energy (E11): E(y, z) = ||y - W z||^2 + l1 |z|_1. -> []."""
    return reconstruction(w, z, y) + l1 * jnp.sum(jnp.abs(z))


def sparse_code(
    w: jax.Array, y: jax.Array, l1: float, steps: int = 200, accelerated: bool = True
) -> latent.MinimizeResult:
    """z_hat = argmin_z ||y - W z||^2 + l1 |z|_1 by FISTA (or ISTA) in `latent.minimize`.

    The step size is 1 / L with L = 2 ||W||_2^2, the Lipschitz constant of the smooth part.
    The returned `energy` is the full sparse-coding energy F(y) = E(y, z_hat) (its gradient
    w.r.t. W is the envelope theorem's), `trace` the smooth part per step.

    Args:
      w: [Y, Z] dictionary.
      y: [Y] signal.
      l1: sparsity weight lam >= 0.
      steps: iterations.
      accelerated: FISTA (True) or ISTA.
    """
    chex.assert_rank((w, y), (2, 1))
    step = 1.0 / (2.0 * jnp.linalg.norm(jax.lax.stop_gradient(w), ord=2) ** 2 + 1e-12)
    opt = (fista if accelerated else ista)(step, l1)
    res = latent.minimize(
        reconstruction, w, jnp.zeros(w.shape[1], w.dtype), y, steps=steps, optimizer=opt
    )
    z = jax.lax.stop_gradient(
        soft_threshold(res.z - step * jax.grad(reconstruction, 1)(w, res.z, y), step * l1)
    )
    return latent.MinimizeResult(z, sparse_coding_energy(w, z, y, l1), res.trace)


# ---- K-means: a latent EBM whose latent is one-hot ----


def kmeans_free_energy(centroids: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """K-means as a latent EBM (E11): E(y, z) = ||y - W z||^2 with z one-hot over K columns.

    F(y) = min_z E = the squared distance to the nearest centroid, found by enumerating
    the K one-hot latents (`soft_min` at beta = inf).

    Args:
      centroids: [K, Y] (the columns of W, as rows).
      y: [Y].

    Returns:
      (F [], z_hat [K] one-hot).
    """
    chex.assert_rank((centroids, y), (2, 1))
    energies = jnp.sum((y[None, :] - centroids) ** 2, axis=-1)  # E(y, e_k), k = 1..K
    return latent.soft_min(energies, jnp.inf), jax.nn.one_hot(jnp.argmin(energies), len(energies))


# ---- VAE: a noisy latent with a KL bound on its information ----


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_var)) || N(0, I)) summed over the latent. [Z], [Z] -> []."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var)


def vae_energy(
    decode,
    params,
    mean: jax.Array,
    log_var: jax.Array,
    y: jax.Array,
    key: jax.Array,
    beta: float = 1.0,
) -> jax.Array:
    """VAE free energy (E11): ||y - Dec(z)||^2 with z = mean + exp(log_var / 2) * eps, plus
    beta * KL(q(z|y) || N(0, I)). The noise and the KL bound the information z carries.

    Args:
      decode: `decode(params, z) -> [Y]`.
      mean, log_var: [Z] the encoder's posterior.
      y: [Y].
      key: PRNG key of the reparameterization noise.
    """
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    return jnp.sum((y - decode(params, z)) ** 2) + beta * gaussian_kl(mean, log_var)
