"""Joint Embedding Predictive Architecture (paper Sec. 5, Figs. 9-10, our E13-E14).

x and y are encoded, s_x = Enc_x(x), s_y = Enc_y(y); a predictor with a latent z predicts
s_y from s_x, and the energy is the prediction error in representation space:

    E(x, y, z) = D(s_y, Pred(s_x, z)) + lam R(z),      F(x, y) = min_z E(x, y, z)   (E13)

with z confined to a ball ||z|| <= r during the minimization. Training is regularized, not
contrastive (E14): (1)-(2) VICReg's variance and covariance terms keep s_x and s_y
informative, (3) the prediction energy F on data pairs is lowered, (4) R(z), the ball and the
low dimension of z limit the information z carries, else z alone would explain y and the
energy would be flat.

This module works on representations: callers encode (any encoder from `hj.nn`), then hand
[B, D] batches to `loss`. `Pred(params, s_x, z)` is any pure function [D], [Z] -> [D].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, collapse, constraints, energies, latent, losses

__all__ = ["JEPAConfig", "energy", "free_energy", "loss", "predict_modes", "infer_latent"]


@dataclasses.dataclass(frozen=True)
class JEPAConfig:
    """The JEPA objective's settings (E13-E14).

    Attributes:
      latent_dim: Z, the size of z; 0 for a deterministic predictor (no inner loop).
      latent_steps: gradient steps of the inner minimization over z.
      latent_lr: its SGD step size. The energy sums over D dimensions, so its curvature in z
        grows with D and with how strongly Pred depends on z: a step above 2 / curvature
        oscillates (0.03 suits a 32-D state whose predictor leans on z; check that
        `res.trace` decreases).
      latent_starts: K starting points (z = 0 and K - 1 random ones, fixed by the key).
      latent_l2: lam, the weight of R(z) = ||z||^2.
      latent_radius: r, the ball z is projected onto.
      prediction: weight of the prediction energy (VICReg's "sim").
      variance, covariance: weights of VICReg's variance and covariance terms.

    Example:
      >>> import hjepa_jax as hj
      >>> hj.jepa.JEPAConfig(latent_dim=4).latent_steps
      10
      >>> hj.jepa.JEPAConfig(latent_steps=0)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ValueError: JEPAConfig: latent_steps=0, but latent_steps must be an integer >= 1; ...
    """

    latent_dim: int = 0
    latent_steps: int = 10
    latent_lr: float = 0.1
    latent_starts: int = 1
    latent_l2: float = 0.1
    latent_radius: float = 1.0
    prediction: float = 25.0
    variance: float = 25.0
    covariance: float = 1.0

    def __post_init__(self):
        fn = "JEPAConfig"
        _checks.integer(fn, "latent_dim", self.latent_dim, minimum=0, fix="0: no latent")
        _checks.integer(fn, "latent_steps", self.latent_steps, fix="e.g. latent_steps=10")
        _checks.integer(fn, "latent_starts", self.latent_starts, fix="e.g. latent_starts=1")
        _checks.positive(fn, "latent_lr", self.latent_lr, "pass a step size > 0, e.g. 0.1")
        _checks.positive(fn, "latent_radius", self.latent_radius, "pass a radius > 0")
        for name in ("latent_l2", "prediction", "variance", "covariance"):
            _checks.non_negative(fn, name, getattr(self, name), "pass a weight >= 0")


def energy(predict: Callable, cfg: JEPAConfig) -> Callable:
    """E(params, z, s_y, s_x) = ||s_y - Pred(params, s_x, z)||^2 + lam ||z||^2 (E13).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> e = hj.jepa.energy(lambda p, s_x, z: s_x + z, hj.jepa.JEPAConfig(latent_dim=2))
      >>> float(e(None, jnp.zeros(2), jnp.ones(2), jnp.ones(2)))
      0.0
    """
    _checks.function("jepa.energy", "predict", predict, "(params, s_x [D], z [Z]) -> [D]")
    return energies.latent_energy(lambda p, z, s_x: predict(p, s_x, z), lam=cfg.latent_l2)


def free_energy(predict: Callable, cfg: JEPAConfig, key: jax.Array) -> Callable:
    """F(params, s_y, s_x) -> MinimizeResult: min over z in the ball, from K starts.

    With latent_dim = 0 the predictor takes an empty z and F = E (no inner loop).
    `key` draws the K - 1 random starts (the first start is z = 0).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> cfg = hj.jepa.JEPAConfig(latent_dim=2, latent_steps=50, latent_l2=0.0)
      >>> f = hj.jepa.free_energy(lambda p, s_x, z: s_x + z, cfg, jax.random.PRNGKey(0))
      >>> res = f(None, jnp.array([0.5, 0.0]), jnp.zeros(2))  # s_y, s_x
      >>> round(float(res.energy), 3), res.z.shape
      (0.0, (2,))
    """
    _checks.function("jepa.free_energy", "predict", predict, "(params, s_x [D], z [Z]) -> [D]")
    e = energy(predict, cfg)
    if cfg.latent_dim == 0:

        def deterministic(params, s_y, s_x):
            z = jnp.zeros(0)
            value = e(params, z, s_y, s_x)
            return latent.MinimizeResult(z, value, value[None])

        return deterministic
    z0s = jnp.concatenate(
        [
            jnp.zeros((1, cfg.latent_dim)),
            cfg.latent_radius
            * jax.random.uniform(key, (cfg.latent_starts - 1, cfg.latent_dim), minval=-1.0),
        ]
    )
    opt = optax.chain(optax.sgd(cfg.latent_lr), constraints.ball(cfg.latent_radius))
    return energies.zero_temperature_free_energy(e, z0s, steps=cfg.latent_steps, optimizer=opt)


def loss(
    pred_params,
    predict: Callable,
    s_x: jax.Array,
    s_y: jax.Array,
    cfg: JEPAConfig,
    key: jax.Array,
) -> tuple[jax.Array, dict]:
    """The JEPA training objective on a batch of representation pairs (E14):

        L = prediction * mean_b F(s_x_b, s_y_b) / D + variance * v(s_x, s_y)
            + covariance * c(s_x, s_y)

    with v, c VICReg's variance and covariance terms (`hj.losses.vicreg`); F is divided by
    the dimension D so that the weights balance as VICReg's (whose invariance is a mean).

    Args:
      pred_params: the predictor's parameters.
      predict: `predict(pred_params, s_x [D], z [Z]) -> [D]`.
      s_x, s_y: [B, D] representations (gradients flow into the encoders).
      cfg: JEPAConfig.
      key: PRNG key (starting points of z).

    Returns:
      (loss, metrics): "energy" (mean F), "variance", "covariance", "z_norm", and the
      collapse diagnostics of s_y ("embedding_std", "effective_rank", "offdiag_cov").

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> s = jax.random.normal(jax.random.PRNGKey(0), (8, 4))
      >>> cfg, key = hj.jepa.JEPAConfig(), jax.random.PRNGKey(1)
      >>> total, metrics = hj.jepa.loss(None, lambda p, s_x, z: s_x, s, s, cfg, key)
      >>> total.shape, float(metrics["energy"])
      ((), 0.0)
    """
    fix = "pass the representations [B, D] of the B pairs (x, y), B >= 2"
    _checks.rank("jepa.loss", "s_x", s_x, 2, "[B, D]", fix)
    _checks.shape("jepa.loss", "s_y", s_y, jnp.shape(s_x), "s_x's shape [B, D]", fix)
    f = free_energy(predict, cfg, key)
    res = jax.vmap(lambda sy, sx: f(pred_params, sy, sx))(s_y, s_x)
    _, terms = losses.vicreg(s_x, s_y, sim=0.0, var=cfg.variance, cov=cfg.covariance)
    mean_f = jnp.mean(res.energy)
    # Per dimension, as VICReg's invariance term: the weights then balance for any D.
    total = cfg.prediction * mean_f / s_y.shape[-1] + cfg.variance * terms["variance"]
    total = total + cfg.covariance * terms["covariance"]
    metrics = {
        "energy": mean_f,
        "variance": terms["variance"],
        "covariance": terms["covariance"],
        "z_norm": jnp.mean(jnp.linalg.norm(res.z.reshape(res.z.shape[0], -1), axis=-1)),
        **collapse.collapse_metrics(jax.lax.stop_gradient(s_y)),
    }
    return total, metrics


def predict_modes(pred_params, predict: Callable, s_x: jax.Array, zs: jax.Array) -> jax.Array:
    """Several futures from one s_x: Pred(s_x, z_k) for each latent z_k (multimodal prediction).

    Args:
      s_x: [D]; zs: [K, Z] latents (e.g. corners of the ball, or minimizers from several
        starts). Returns [K, D].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> print(hj.jepa.predict_modes(None, lambda p, s_x, z: s_x + z, jnp.zeros(2), jnp.eye(2)))
      [[1. 0.]
       [0. 1.]]
    """
    _checks.rank("predict_modes", "zs", zs, 2, "[K, Z]", "stack the K latents on axis 0")
    return jax.vmap(lambda z: predict(pred_params, s_x, z))(zs)


def infer_latent(
    pred_params,
    predict: Callable,
    s_x: jax.Array,
    s_y: jax.Array,
    cfg: JEPAConfig,
    key: jax.Array,
) -> latent.MinimizeResult:
    """z_hat = argmin_z E(s_x, s_y, z): which of the possible futures happened.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> cfg = hj.jepa.JEPAConfig(latent_dim=2, latent_steps=50, latent_l2=0.0)
      >>> predict, key = lambda p, s_x, z: s_x + z, jax.random.PRNGKey(0)
      >>> res = hj.jepa.infer_latent(None, predict, jnp.zeros(2), jnp.array([0.5, 0.0]), cfg, key)
      >>> [round(float(v), 3) for v in res.z]
      [0.5, 0.0]
    """
    return free_energy(predict, cfg, key)(pred_params, s_y, s_x)
