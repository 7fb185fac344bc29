"""Regularized and architectural methods: limit the volume of low energy (paper Sec. 4, E11-E12).

Instead of pushing energy up on contrastive points, these bound how much of the space can
take low energy: VICReg and Barlow Twins keep embeddings informative, sparse coding and
K-means restrict the latent, a bottleneck or a noisy latent (VAE) limits what z can carry.

Shapes and concrete settings are checked before tracing (a ValueError names the argument); a
traced weight, l1 or step size is not checked (a negative one makes the objective unbounded).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, latent

__all__ = [
    "vicreg",
    "barlow_twins",
    "soft_threshold",
    "FistaState",
    "ista",
    "fista",
    "reconstruction",
    "sparse_coding_energy",
    "sparse_code",
    "kmeans_free_energy",
    "gaussian_kl",
    "vae_energy",
]


def _offdiag_sq_sum(m: jax.Array) -> jax.Array:
    return jnp.sum(m**2) - jnp.sum(jnp.diag(m) ** 2)


def _check_views(fn: str, s_a: jax.Array, s_b: jax.Array) -> None:
    """s_a, s_b: [B, D] of the same shape, B >= 2 (batch statistics)."""
    fix = "pass embeddings [B, D] of the two branches for the same B >= 2 examples"
    _checks.rank(fn, "s_a", s_a, 2, "[B, D]", fix)
    _checks.shape(fn, "s_b", s_b, jnp.shape(s_a), "s_a's shape [B, D]", fix)
    b = jnp.shape(s_a)[0]
    if b < 2:
        _checks.fail(fn, "B", b, "is too small: batch statistics need B >= 2", fix)


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

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> s = jax.random.normal(jax.random.PRNGKey(0), (16, 4))
      >>> loss, terms = hj.losses.vicreg(s, s)
      >>> loss.shape, float(terms["invariance"])
      ((), 0.0)
    """
    _check_views("vicreg", s_a, s_b)
    for name, weight in (("sim", sim), ("var", var), ("cov", cov)):
        _checks.non_negative("vicreg", name, weight, "pass a weight >= 0")
    b, d = s_a.shape
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
      s_a, s_b: [B, D], B >= 2.
      lam: weight of the redundancy-reduction term.

    Returns:
      (loss [], {"on_diagonal", "off_diagonal"}).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> s = jax.random.normal(jax.random.PRNGKey(0), (16, 4))
      >>> loss, terms = hj.losses.barlow_twins(s, s)
      >>> round(float(terms["on_diagonal"]), 3)
      0.0
    """
    _check_views("barlow_twins", s_a, s_b)
    _checks.non_negative("barlow_twins", "lam", lam, "pass a weight >= 0, e.g. lam=5e-3")

    def standardize(s):
        return (s - jnp.mean(s, axis=0)) / (jnp.std(s, axis=0) + 1e-6)

    c = standardize(s_a).T @ standardize(s_b) / s_a.shape[0]
    on = jnp.sum((1.0 - jnp.diag(c)) ** 2)
    off = _offdiag_sq_sum(c)
    return on + lam * off, {"on_diagonal": on, "off_diagonal": off}


# ---- sparse coding: E(y, z) = ||y - W z||^2 + lam |z|_1, minimized by ISTA / FISTA ----


def soft_threshold(z: jax.Array, t: float | jax.Array) -> jax.Array:
    """prox of t |.|_1: sign(z) max(|z| - t, 0). z: [...], t >= 0 -> [...].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> print(hj.losses.soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0))
      [-1.  0.  2.]
    """
    _checks.non_negative("soft_threshold", "t", t, "pass a threshold t >= 0")
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) - t)


class FistaState(NamedTuple):
    """x_prev: the last proximal point (the pytree of z); t: [] the momentum sequence."""

    x_prev: optax.Params
    t: jax.Array


def _check_prox(fn: str, step_size, l1) -> None:
    fix = "pass 1 / L, L the Lipschitz constant of the smooth part's gradient"
    _checks.positive(fn, "step_size", step_size, fix)
    _checks.non_negative(fn, "l1", l1, "pass a sparsity weight >= 0")


def _check_dictionary(fn: str, w: jax.Array, y: jax.Array, z: jax.Array | None = None) -> None:
    """w: [Y, Z], y: [Y], z: [Z]."""
    fix = "pass a dictionary w [Y, Z], one signal y [Y] (jax.vmap over a batch) and z [Z]"
    _checks.rank(fn, "w", w, 2, "[Y, Z]", fix)
    _checks.shape(fn, "y", y, jnp.shape(w)[:1], "[Y]", fix)
    if z is not None:
        _checks.shape(fn, "z", z, jnp.shape(w)[1:], "[Z]", fix)


def ista(step_size: float, l1: float) -> optax.GradientTransformation:
    """ISTA as an optax transformation, for `latent.minimize` over the smooth part f(z):

        z <- prox_{step l1 |.|_1}(z - step * grad f(z))

    The returned update is the difference to that point, so `minimize` with this optimizer
    is proximal gradient descent on f(z) + l1 |z|_1.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> f = lambda w, z: jnp.sum((z - w) ** 2)  # smooth part; ista adds |z|_1
      >>> opt = hj.losses.ista(0.25, 1.0)
      >>> res = hj.latent.minimize(f, jnp.array([2.0, 0.1]), jnp.zeros(2), steps=100, optimizer=opt)
      >>> [round(float(v), 3) for v in res.z]
      [1.5, 0.0]
    """
    _check_prox("ista", step_size, l1)

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

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> f = lambda w, z: jnp.sum((z - w) ** 2)  # smooth part; fista adds |z|_1
      >>> opt = hj.losses.fista(0.25, 1.0)
      >>> res = hj.latent.minimize(f, jnp.array([2.0, 0.1]), jnp.zeros(2), steps=100, optimizer=opt)
      >>> [round(float(v), 3) for v in res.z]
      [1.5, 0.0]
    """
    _check_prox("fista", step_size, l1)

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
    """||y - W z||^2. w: [Y, Z], z: [Z], y: [Y] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> w, z, y = jnp.eye(2), jnp.ones(2), jnp.array([1.0, 3.0])
      >>> float(hj.losses.regularized.reconstruction(w, z, y))
      4.0
    """
    _check_dictionary("reconstruction", w, y, z)
    return jnp.sum((y - w @ z) ** 2)


def sparse_coding_energy(w: jax.Array, z: jax.Array, y: jax.Array, l1: float) -> jax.Array:
    """Sparse coding energy (E11): E(y, z) = ||y - W z||^2 + l1 |z|_1.
    w: [Y, Z], z: [Z], y: [Y], l1 >= 0 -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> w, z, y = jnp.eye(2), jnp.ones(2), jnp.array([1.0, 3.0])
      >>> float(hj.losses.sparse_coding_energy(w, z, y, 0.5))
      5.0
    """
    _check_dictionary("sparse_coding_energy", w, y, z)
    _checks.non_negative("sparse_coding_energy", "l1", l1, "pass a sparsity weight >= 0")
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

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> res = hj.losses.sparse_code(jnp.eye(2), jnp.array([2.0, 0.1]), 1.0)
      >>> [round(float(v), 3) for v in res.z]
      [1.5, 0.0]
    """
    _check_dictionary("sparse_code", w, y)
    _checks.non_negative("sparse_code", "l1", l1, "pass a sparsity weight >= 0")
    steps = _checks.integer("sparse_code", "steps", steps, fix="e.g. steps=200")
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

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> centroids = jnp.array([[0.0, 0.0], [3.0, 0.0]])
      >>> f, z = hj.losses.kmeans_free_energy(centroids, jnp.array([2.0, 0.0]))
      >>> float(f), z.tolist()
      (1.0, [0.0, 1.0])
    """
    fix = "pass centroids [K, Y] and one example y [Y] (jax.vmap over a batch)"
    _checks.rank("kmeans_free_energy", "centroids", centroids, 2, "[K, Y]", fix)
    if jnp.shape(centroids)[0] == 0:
        _checks.fail("kmeans_free_energy", "K", 0, "leaves no centroid", fix)
    want = jnp.shape(centroids)[1:]
    _checks.shape("kmeans_free_energy", "y", y, want, "[Y] as in centroids [K, Y]", fix)
    energies = jnp.sum((y[None, :] - centroids) ** 2, axis=-1)  # E(y, e_k), k = 1..K
    return latent.soft_min(energies, jnp.inf), jax.nn.one_hot(jnp.argmin(energies), len(energies))


# ---- VAE: a noisy latent with a KL bound on its information ----


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_var)) || N(0, I)) summed over the latent. [Z], [Z] -> [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.losses.gaussian_kl(jnp.zeros(2), jnp.zeros(2)))
      0.0
    """
    fix = "pass the posterior's mean and log-variance, both [Z]"
    _checks.shape("gaussian_kl", "log_var", log_var, jnp.shape(mean), "mean's shape [Z]", fix)
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
      beta: weight of the KL term, >= 0.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> decode = lambda params, z: z
      >>> mean, log_var = jnp.zeros(2), jnp.full(2, -20.0)
      >>> f = hj.losses.vae_energy(decode, None, mean, log_var, jnp.zeros(2), jax.random.PRNGKey(0))
      >>> round(float(f), 2)
      19.0
    """
    fn = "vae_energy"
    _checks.function(fn, "decode", decode, "(params, z) -> [Y]")
    fix = "pass the posterior's mean and log-variance, both [Z]"
    _checks.shape(fn, "log_var", log_var, jnp.shape(mean), "mean's shape [Z]", fix)
    _checks.non_negative(fn, "beta", beta, "pass a KL weight >= 0")
    fix = "pass y [Y] of the decoder's output shape"
    _checks.model_output(fn, "decode(params, mean)", decode, (params, mean), jnp.shape(y), fix)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    return jnp.sum((y - decode(params, z)) ** 2) + beta * gaussian_kl(mean, log_var)
