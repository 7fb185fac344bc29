"""Hierarchical JEPA (paper Sec. 5, Fig. 11): two JEPAs stacked over time.

Level 1 encodes frames, s1_t = Enc_1(x_t), and predicts one step ahead, s1_t -> s1_{t+1}.
Level 2 encodes a window of k level-1 states into a more abstract state,
s2_j = Enc_2(s1_{jk}, ..., s1_{jk+k-1}), and predicts the next window, s2_j -> s2_{j+1}:
k frames ahead, at a coarser time scale. Both levels are JEPAs (`hj.jepa`), trained jointly:
the level-2 loss also shapes the level-1 encoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from hjepa_jax import _checks, jepa

__all__ = ["HJEPAConfig", "windows", "level2_states", "pairs", "loss", "copy_last_energy"]


@dataclasses.dataclass(frozen=True)
class HJEPAConfig:
    """Attributes:
    level1, level2: the JEPA objective of each level.
    window: k, the number of level-1 steps one level-2 state covers (and predicts ahead).
    level2_weight: weight of the level-2 loss in the joint objective.

    Example:
      >>> import hjepa_jax as hj
      >>> hj.hjepa.HJEPAConfig(window=2).level1.latent_dim
      0
    """

    level1: jepa.JEPAConfig = jepa.JEPAConfig()
    level2: jepa.JEPAConfig = jepa.JEPAConfig()
    window: int = 4
    level2_weight: float = 1.0

    def __post_init__(self):
        fix = "pass the level-1 steps one level-2 state covers, e.g. window=4"
        _checks.integer("HJEPAConfig", "window", self.window, fix=fix)
        fix = "pass a weight >= 0"
        _checks.non_negative("HJEPAConfig", "level2_weight", self.level2_weight, fix)


def windows(s1: jax.Array, k: int) -> jax.Array:
    """Non-overlapping windows of level-1 states: [..., T, D] -> [..., T // k, k * D], T >= 2k.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> hj.hjepa.windows(jnp.zeros((8, 3)), 4).shape
      (2, 12)
    """
    k = _checks.integer("windows", "k", k, fix="pass a window size >= 1, e.g. k=4")
    if jnp.ndim(s1) < 2:
        _checks.broken("windows", "s1.shape", jnp.shape(s1), "[..., T, D]", "pass state sequences")
    t, d = s1.shape[-2:]
    if t < 2 * k:
        fix = "pass longer sequences or a smaller window"
        _checks.fail(
            "windows", "k", k, f"is too large: {t} steps have fewer than two windows of {k}", fix
        )
    n = t // k
    return s1[..., : n * k, :].reshape(*s1.shape[:-2], n, k * d)


def level2_states(enc2_params, encode2: Callable, s1: jax.Array, k: int) -> jax.Array:
    """s2 = Enc_2(window of k level-1 states): [B, T, D1] -> [B, T // k, D2].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> encode2 = lambda params, window: window[:2]
      >>> hj.hjepa.level2_states(None, encode2, jnp.zeros((2, 8, 3)), 4).shape
      (2, 2, 2)
    """
    _checks.function("level2_states", "encode2", encode2, "(enc2_params, window [k * D1]) -> [D2]")
    _checks.rank("level2_states", "s1", s1, 3, "[B, T, D1]", "pass B state sequences")
    w = windows(s1, k)
    return jax.vmap(jax.vmap(lambda x: encode2(enc2_params, x)))(w)


def _check_sequences(fn: str, s: jax.Array) -> None:
    fix = "pass B state sequences of T >= 2 steps, [B, T, D]"
    _checks.rank(fn, "s", s, 3, "[B, T, D]", fix)
    if jnp.shape(s)[1] < 2:
        _checks.fail(fn, "T", jnp.shape(s)[1], "leaves no consecutive pair", fix)


def pairs(s: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Consecutive states of every sequence as a batch of pairs: [B, T, D] -> 2 x [B (T-1), D].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> s_x, s_y = hj.hjepa.pairs(jnp.zeros((2, 5, 3)))
      >>> s_x.shape, s_y.shape
      ((8, 3), (8, 3))
    """
    _check_sequences("pairs", s)
    d = s.shape[-1]
    return s[:, :-1].reshape(-1, d), s[:, 1:].reshape(-1, d)


def loss(
    params: dict,
    s1: jax.Array,
    predict1: Callable,
    encode2: Callable,
    predict2: Callable,
    cfg: HJEPAConfig,
    key: jax.Array,
) -> tuple[jax.Array, dict]:
    """The joint H-JEPA objective on level-1 state sequences.

    Args:
      params: {"pred1", "enc2", "pred2"} (the level-1 encoder is applied by the caller, so
        its gradient arrives through s1).
      s1: [B, T, D1] level-1 states of B sequences.
      predict1: `predict1(pred1, s [D1], z) -> [D1]`.
      encode2: `encode2(enc2, window [k * D1]) -> [D2]`.
      predict2: `predict2(pred2, s [D2], z) -> [D2]`.
      cfg: HJEPAConfig.
      key: PRNG key.

    Returns:
      (loss, metrics) with the metrics of each level prefixed "level1_" / "level2_".

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> predict = lambda p, s, z: p * s  # latent_dim = 0: z is empty
      >>> encode2 = lambda p, window: window[:4]
      >>> params = {"pred1": 1.0, "enc2": None, "pred2": 1.0}
      >>> s1 = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 4))
      >>> cfg, key = hj.hjepa.HJEPAConfig(window=2), jax.random.PRNGKey(1)
      >>> total, metrics = hj.hjepa.loss(params, s1, predict, encode2, predict, cfg, key)
      >>> total.shape, "level2_energy" in metrics
      ((), True)
    """
    _check_sequences("hjepa.loss", s1)
    if not isinstance(params, dict) or not {"pred1", "enc2", "pred2"} <= params.keys():
        keys = sorted(params) if isinstance(params, dict) else type(params)
        fix = 'pass {"pred1": ..., "enc2": ..., "pred2": ...}'
        _checks.fail("hjepa.loss", "params keys", keys, "lack pred1, enc2 or pred2", fix)
    for name, f in (("predict1", predict1), ("encode2", encode2), ("predict2", predict2)):
        _checks.function("hjepa.loss", name, f, "(params, x, ...) -> array")
    k1, k2 = jax.random.split(key)
    loss1, m1 = jepa.loss(params["pred1"], predict1, *pairs(s1), cfg.level1, k1)
    s2 = level2_states(params["enc2"], encode2, s1, cfg.window)
    loss2, m2 = jepa.loss(params["pred2"], predict2, *pairs(s2), cfg.level2, k2)
    metrics = {f"level1_{k}": v for k, v in m1.items()}
    metrics |= {f"level2_{k}": v for k, v in m2.items()}
    return loss1 + cfg.level2_weight * loss2, metrics


def copy_last_energy(s: jax.Array) -> jax.Array:
    """The baseline of "nothing changes": mean ||s_{t+1} - s_t||^2 over [B, T, D] sequences.

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> float(hj.hjepa.copy_last_energy(jnp.arange(3.0)[None, :, None]))
      1.0
    """
    _check_sequences("copy_last_energy", s)
    s_x, s_y = pairs(s)
    return jnp.mean(jnp.sum((s_y - s_x) ** 2, axis=-1))
