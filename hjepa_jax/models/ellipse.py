"""The latent-variable EBM of paper Fig. 4b: a decoder of an angle z, and the ellipse data.

    E(y, z) = ||y - Dec_w(z)||^2,   Dec_w(z) = MLP_w([cos z, sin z]),   z in R^1 (an angle)

The free energy F_inf(y) = min_z E(y, z) comes from `hj.latent.minimize` (K starting angles,
the lowest kept) inside the jitted train step; the outer gradient is the envelope theorem's
dE/dw at z_hat (or the unrolled loop's, `grad="unroll"`). The 1-D latent limits the volume of
low energy (paper Sec. 4): nothing pushes energy up.

    >>> import jax
    >>> from hjepa_jax.models.ellipse import EllipseConfig, ellipse_points
    >>> ellipse_points(jax.random.PRNGKey(0), 5, EllipseConfig()).shape
    (5, 2)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import _checks, energies, latent
from hjepa_jax import nn as hj_nn
from hjepa_jax.models import _common

__all__ = ["EllipseConfig", "EllipseModel", "ellipse_points", "true_squared_distance"]


@dataclasses.dataclass(frozen=True)
class EllipseConfig:
    """The ellipse (radii, noise) and the model (decoder widths, inner loop, angle grid).

    Attributes:
      radius_1, radius_2: the ellipse's half axes along y1 and y2.
      noise: std per axis of the noise added to ellipse points.
      hidden: decoder MLP widths before its 2-D output.
      n_starts: K starting angles of the inner loop, evenly spread over [0, 2 pi).
      inner_steps, inner_lr: SGD steps and step size of the inner loop over z.
      grad: gradient through the inner loop, "envelope" (E5) or "unroll".
      n_angles: the angle grid of the marginal free energy F_beta.

    Raises:
      ValueError: a field out of its range, naming it.
    """

    radius_1: float = 2.0
    radius_2: float = 1.5
    noise: float = 0.05
    hidden: tuple[int, ...] = (64, 64)
    n_starts: int = 8
    inner_steps: int = 30
    inner_lr: float = 0.05
    grad: str = "envelope"
    n_angles: int = 48

    def __post_init__(self):
        fn, fix = "EllipseConfig", "see EllipseConfig's attributes"
        _common.positives(fn, self, ("radius_1", "radius_2", "inner_lr"), fix)
        _common.non_negatives(fn, self, ("noise",), fix)
        object.__setattr__(self, "hidden", _common.widths(fn, "hidden", self.hidden, fix))
        _common.counts(fn, self, ("n_starts", "inner_steps", "n_angles"), fix)
        _checks.one_of(fn, "grad", self.grad, latent.GRAD_MODES, fix='use "envelope"')


def ellipse_points(key: jax.Array, n: int, cfg: EllipseConfig) -> jax.Array:
    """[n, 2] points [r1 cos t, r2 sin t] + N(0, noise^2), t uniform in [0, 2 pi).

    Raises:
      ValueError: `n` is not an integer >= 1 or `cfg` is not an EllipseConfig.
    """
    n = _checks.integer("ellipse_points", "n", n, fix="ask for at least one point")
    _common.config_of("ellipse_points", "cfg", cfg, EllipseConfig)
    return _ellipse_points(key, n, cfg.radius_1, cfg.radius_2, cfg.noise)


@functools.partial(jax.jit, static_argnums=1)  # one program, not a compile per operation
def _ellipse_points(key: jax.Array, n: int, r1, r2, noise) -> jax.Array:
    k_t, k_e = jax.random.split(key)
    t = jax.random.uniform(k_t, (n,), minval=0.0, maxval=2 * jnp.pi)
    clean = jnp.stack([r1 * jnp.cos(t), r2 * jnp.sin(t)], axis=-1)
    return clean + noise * jax.random.normal(k_e, (n, 2))


def true_squared_distance(y: jax.Array, cfg: EllipseConfig, n: int = 4096) -> jax.Array:
    """[N, 2] -> [N] squared distance to the noise-free ellipse (min over n angles).

    >>> import jax.numpy as jnp
    >>> d = true_squared_distance(jnp.array([[2.0, 0.0], [0.0, 0.5]]), EllipseConfig())
    >>> [round(float(v), 4) for v in d]
    [0.0, 1.0]

    Raises:
      ValueError: `y` is not [N, 2], `cfg` is not an EllipseConfig or `n` is not >= 1.
    """
    fn = "true_squared_distance"
    _checks.shape(fn, "y", y, (None, 2), "[N, 2]", fix="pass points of the plane")
    _common.config_of(fn, "cfg", cfg, EllipseConfig)
    n = _checks.integer(fn, "n", n, fix="use a few thousand angles")
    t = jnp.linspace(0.0, 2 * jnp.pi, n, endpoint=False)
    curve = jnp.stack([cfg.radius_1 * jnp.cos(t), cfg.radius_2 * jnp.sin(t)], axis=-1)
    return jax.lax.map(lambda p: jnp.min(jnp.sum((curve - p) ** 2, -1)), y, batch_size=1024)


class EllipseModel:
    """The decoder Dec_w(z) = MLP([cos z, sin z]) and the energies built on it.

    Attributes:
      energy: E(params, z [1], y [2]) -> [] (`hj.energies.latent_energy`).
      free_energy: (params, y [2]) -> MinimizeResult: F_inf and z_hat by the inner loop.
      angles: [n_angles, 1] the grid of F_beta.

    Raises:
      ValueError: `cfg` is not an EllipseConfig.
    """

    def __init__(self, cfg: EllipseConfig):
        _common.config_of("EllipseModel", "cfg", cfg, EllipseConfig)
        self.cfg = cfg
        self.net = hj_nn.MLP((*cfg.hidden, 2))
        self.energy = energies.latent_energy(self.decode)  # E(params, z, y)
        starts = jnp.linspace(0.0, 2 * jnp.pi, cfg.n_starts, endpoint=False)[:, None]  # [K, 1]
        self.free_energy = energies.zero_temperature_free_energy(
            self.energy,
            starts,
            steps=cfg.inner_steps,
            optimizer=optax.sgd(cfg.inner_lr),
            grad=cfg.grad,
        )
        self.angles = jnp.linspace(0.0, 2 * jnp.pi, cfg.n_angles, endpoint=False)[:, None]
        # compiled once per model (and shape), not once per call
        self._f_inf = jax.jit(jax.vmap(self.free_energy, (None, 0)))
        self._f_beta = jax.jit(self._f_beta_plain, static_argnums=2)

    def init(self, key: jax.Array):
        """The decoder's parameters."""
        return jax.jit(self.net.init)(key, jnp.zeros(2))

    def decode(self, params, z: jax.Array) -> jax.Array:
        """z: [1] angle -> [2] point on the learned curve, in the parameters' dtype (the
        energy ||y - Dec(z)||^2 is then taken in y's float32)."""
        features = jnp.concatenate([jnp.cos(z), jnp.sin(z)])
        return self.net.apply(params, features.astype(_common.compute_dtype(params)))

    def loss(self, params, batch: jax.Array, key: jax.Array):
        """Mean F_inf over a batch [B, 2] (energy loss, E6) -> (loss, {}). The per-step energy
        trace is left unused, so XLA drops it and the step's memory does not grow with the
        inner steps."""
        del key
        return jnp.mean(jax.vmap(lambda y: self.free_energy(params, y).energy)(batch)), {}

    def f_inf(self, params, ys: jax.Array):
        """[N, 2] -> MinimizeResult batched over N: F_inf [N] and z_hat [N, 1] of each point."""
        return self._f_inf(params, ys)

    def f_beta(self, params, ys: jax.Array, beta: float) -> jax.Array:
        """[N, 2] -> [N] F_beta over the angle grid (soft_min; beta = inf gives the min)."""
        return self._f_beta(params, ys, float(beta))

    def _f_beta_plain(self, params, ys: jax.Array, beta: float) -> jax.Array:
        f = energies.marginal_free_energy(self.energy, self.angles, beta)
        return jax.vmap(lambda y: f(params, y))(ys)
