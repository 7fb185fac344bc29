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

import chex
import jax
import jax.numpy as jnp

from hjepa_jax import jepa


@dataclasses.dataclass(frozen=True)
class HJEPAConfig:
    """Attributes:
    level1, level2: the JEPA objective of each level.
    window: k, the number of level-1 steps one level-2 state covers (and predicts ahead).
    level2_weight: weight of the level-2 loss in the joint objective.
    """

    level1: jepa.JEPAConfig = jepa.JEPAConfig()
    level2: jepa.JEPAConfig = jepa.JEPAConfig()
    window: int = 4
    level2_weight: float = 1.0


def windows(s1: jax.Array, k: int) -> jax.Array:
    """Non-overlapping windows of level-1 states: [..., T, D] -> [..., T // k, k * D]."""
    t, d = s1.shape[-2:]
    if t < 2 * k:
        raise ValueError(f"hjepa: a sequence of {t} steps has fewer than two windows of {k}.")
    n = t // k
    return s1[..., : n * k, :].reshape(*s1.shape[:-2], n, k * d)


def level2_states(enc2_params, encode2: Callable, s1: jax.Array, k: int) -> jax.Array:
    """s2 = Enc_2(window of k level-1 states): [B, T, D1] -> [B, T // k, D2]."""
    w = windows(s1, k)
    return jax.vmap(jax.vmap(lambda x: encode2(enc2_params, x)))(w)


def pairs(s: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Consecutive states of every sequence as a batch of pairs: [B, T, D] -> 2 x [B (T-1), D]."""
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
    """
    chex.assert_rank(s1, 3)
    k1, k2 = jax.random.split(key)
    loss1, m1 = jepa.loss(params["pred1"], predict1, *pairs(s1), cfg.level1, k1)
    s2 = level2_states(params["enc2"], encode2, s1, cfg.window)
    loss2, m2 = jepa.loss(params["pred2"], predict2, *pairs(s2), cfg.level2, k2)
    metrics = {f"level1_{k}": v for k, v in m1.items()}
    metrics |= {f"level2_{k}": v for k, v in m2.items()}
    return loss1 + cfg.level2_weight * loss2, metrics


def copy_last_energy(s: jax.Array) -> jax.Array:
    """The baseline of "nothing changes": mean ||s_{t+1} - s_t||^2 over [B, T, D] sequences."""
    s_x, s_y = pairs(s)
    return jnp.mean(jnp.sum((s_y - s_x) ** 2, axis=-1))
