"""Action-conditioned JEPA world model: s_{t+1} = Pred(s_t, a_t) in representation space.

The world model of the paper's agent (Fig. 1) learned from observation alone: an encoder maps
observations to states s_t = Enc(o_t) (the caller applies it), a predictor rolls states
forward under actions, and training lowers the multi-step prediction energy

    F = 1/H sum_{h=1..H} ||Pred^h(s_t, a_t..a_{t+h-1}) - s_{t+h}||^2 / D

while keeping the states informative without reconstructing pixels: VICReg's variance and
covariance terms on the states (E14), an optional inverse-dynamics head that must read a_t
from (s_t, s_{t+1}) (so states keep what actions change), and an optional temporal
smoothness term. The planners of `hj.planning` then minimize a cost over the actions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

from hjepa_jax import collapse, losses, planning


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Attributes:
    horizon: H, the number of steps each training rollout predicts.
    prediction: weight of the multi-step prediction energy (per dimension).
    variance, covariance: VICReg weights on the states.
    inverse_dynamics: weight of the inverse-dynamics error (0: off).
    smoothness: weight of mean ||s_{t+1} - s_t||^2 / D (0: off).
    unroll: unroll the rollouts (`hj.planning.rollout`); True for a convolutional predictor
      trained on a CPU.
    """

    horizon: int = 4
    prediction: float = 25.0
    variance: float = 25.0
    covariance: float = 1.0
    inverse_dynamics: float = 1.0
    smoothness: float = 0.0
    unroll: bool = False


def multistep_energy(
    pred_params,
    predict: Callable,
    states: jax.Array,
    actions: jax.Array,
    horizon: int,
    unroll: bool = False,
) -> jax.Array:
    """Mean over start times t and steps h <= H of ||Pred^h(s_t, a) - s_{t+h}||^2 / D.

    Args:
      states: [T + 1, D] encoded states of one trajectory; actions: [T, A]; T >= horizon.
    Returns [].
    """
    t = actions.shape[0]
    if t < horizon:
        raise ValueError(f"world_model: trajectories of {t} steps are shorter than H={horizon}.")
    starts = jnp.arange(t - horizon + 1)

    def from_start(i):
        acts = jax.lax.dynamic_slice_in_dim(actions, i, horizon)
        target = jax.lax.dynamic_slice_in_dim(states, i + 1, horizon)
        pred = planning.rollout(predict, pred_params, states[i], acts, unroll)
        return jnp.mean(jnp.sum((pred - target) ** 2, axis=-1))

    return jnp.mean(jax.vmap(from_start)(starts)) / states.shape[-1]


def loss(
    params: dict,
    predict: Callable,
    states: jax.Array,
    actions: jax.Array,
    cfg: WorldModelConfig,
    inverse: Callable | None = None,
) -> tuple[jax.Array, dict]:
    """The world model's training objective on a batch of encoded trajectories.

    Args:
      params: {"pred": predictor params, "inv": inverse-dynamics params (if used)}.
      predict: `predict(pred, s [D], a [A]) -> [D]`.
      states: [B, T + 1, D] encoder outputs (gradients flow to the encoder).
      actions: [B, T, A].
      cfg: WorldModelConfig.
      inverse: `inverse(inv, s_t [D], s_next [D]) -> [A]`, required if
        cfg.inverse_dynamics > 0.

    Returns:
      (loss, metrics): "prediction", "variance", "covariance", "inverse_dynamics",
      "smoothness" and the collapse diagnostics of the states.
    """
    chex.assert_rank((states, actions), (3, 3))
    b, t1, d = states.shape
    one = lambda s, a: multistep_energy(params["pred"], predict, s, a, cfg.horizon, cfg.unroll)
    energy = jnp.mean(jax.vmap(one)(states, actions))
    flat = states.reshape(b * t1, d)
    _, terms = losses.vicreg(flat, flat, sim=0.0, var=cfg.variance, cov=cfg.covariance)
    smooth = jnp.mean(jnp.sum((states[:, 1:] - states[:, :-1]) ** 2, -1)) / d
    inv_err = jnp.zeros(())
    if cfg.inverse_dynamics > 0:
        if inverse is None:
            raise ValueError("world_model: inverse_dynamics > 0 needs an `inverse` function.")
        guess = jax.vmap(jax.vmap(lambda s, n: inverse(params["inv"], s, n)))(
            states[:, :-1], states[:, 1:]
        )
        inv_err = jnp.mean(jnp.sum((guess - actions) ** 2, -1))
    total = (
        cfg.prediction * energy
        + cfg.variance * terms["variance"]
        + cfg.covariance * terms["covariance"]
        + cfg.inverse_dynamics * inv_err
        + cfg.smoothness * smooth
    )
    metrics = {
        "prediction": energy,
        "variance": terms["variance"],
        "covariance": terms["covariance"],
        "inverse_dynamics": inv_err,
        "smoothness": smooth,
        **collapse.collapse_metrics(jax.lax.stop_gradient(flat)),
    }
    return total, metrics
