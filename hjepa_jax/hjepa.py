"""Hierarchical JEPA (paper Sec. 5, Fig. 11): two JEPAs stacked over time.

Level 1 encodes frames, s1_t = Enc_1(x_t), and predicts one step ahead, s1_t -> s1_{t+1}.
Level 2 encodes a window of k level-1 states into a more abstract state,
s2_j = Enc_2(s1_{jk}, ..., s1_{jk+k-1}), and predicts the next window, s2_j -> s2_{j+1}:
k frames ahead, at a coarser time scale. Both levels are JEPAs (`hj.jepa`), trained jointly:
the level-2 loss also shapes the level-1 encoder.

For planning, level 2 can instead be learned over actions (`macro_loss`): a macro-action
b = Enc_a(a_t, ..., a_{t+k-1}) codes a k-step chunk of level-1 actions, and a level-2
predictor s_{t+k} = Pred_2(s_t, b) in the level-1 latent space is trained by multi-step
latent prediction at the coarse time scale, from reward-free trajectories of a frozen level 1
(no labels). `hj.planning.hierarchical(coarse_predict=Pred_2, macro_action_dim=dim(b), ...)`
then plans over codes b and hands the predicted subgoal to the level-1 planner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from hjepa_jax import _checks, jepa, world_model

__all__ = [
    "HJEPAConfig",
    "windows",
    "level2_states",
    "pairs",
    "loss",
    "copy_last_energy",
    "macro_sequences",
    "MacroConfig",
    "macro_loss",
]


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


# ------------------------------------------------------ learned level 2 for planning


def _macro_sequences(fn: str, states, actions, k: int) -> tuple[jax.Array, jax.Array]:
    """`macro_sequences`, its errors named after `fn`."""
    k = _checks.integer(fn, "k", k, fix="pass the level-1 steps per macro-action, e.g. k=6")
    fix = "pass B trajectories: states [B, T + 1, D] and the T actions between them, [B, T, A]"
    _checks.rank(fn, "states", states, 3, "[B, T + 1, D]", fix)
    b, t1, _ = states.shape
    _checks.shape(fn, "actions", actions, (b, t1 - 1, None), "[B, T, A], B and T as in states", fix)
    t, a = t1 - 1, actions.shape[-1]
    if t < k:
        problem = f"is too small: trajectories are shorter than one macro-action of k={k} steps"
        _checks.fail(fn, "T", t, problem, "pass longer trajectories or a smaller k")
    j = t // k
    return states[:, : j * k + 1 : k], actions[:, : j * k].reshape(b, j, k * a)


def macro_sequences(states: jax.Array, actions: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Trajectories at the coarse time scale: every k-th state and the k-step action chunks.

    Args:
      states: [B, T + 1, D] level-1 states of B trajectories; actions: [B, T, A]; T >= k.
      k: level-1 steps per macro-action.

    Returns:
      (coarse_states [B, J + 1, D] = states[:, 0 : J k + 1 : k], chunks [B, J, k A]: the
      actions of each k-step segment, flattened), J = T // k (the last T - J k steps dropped).

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> coarse, chunks = hj.hjepa.macro_sequences(jnp.zeros((2, 8, 3)), jnp.zeros((2, 7, 2)), 3)
      >>> coarse.shape, chunks.shape
      ((2, 3, 3), (2, 2, 6))
    """
    return _macro_sequences("macro_sequences", states, actions, k)


@dataclasses.dataclass(frozen=True)
class MacroConfig:
    """Attributes:
    k: level-1 steps per macro-action.
    horizon: macro steps each level-2 training rollout predicts.
    prediction: weight of the level-2 multi-step prediction energy (per dimension).
    code_variance: weight of the hinge mean_i relu(code_std - std(b_i)) on the std of each
      code dimension across the batch: codes that collapse to a constant carry no action.
    code_std: the std that hinge asks of each code dimension.

    Example:
      >>> import hjepa_jax as hj
      >>> hj.hjepa.MacroConfig(k=4).horizon
      2
    """

    k: int = 6
    horizon: int = 2
    prediction: float = 1.0
    code_variance: float = 1.0
    code_std: float = 0.5

    def __post_init__(self):
        fn = "MacroConfig"
        _checks.integer(fn, "k", self.k, fix="pass the level-1 steps per macro-action, e.g. k=6")
        _checks.integer(fn, "horizon", self.horizon, fix="predict >= 1 macro steps, e.g. horizon=2")
        for name in ("prediction", "code_variance"):
            _checks.non_negative(fn, name, getattr(self, name), "pass a weight >= 0")
        _checks.non_negative(fn, "code_std", self.code_std, "pass a target std >= 0, e.g. 0.5")


def macro_loss(
    params: dict,
    encode_actions: Callable,
    predict2: Callable,
    states: jax.Array,
    actions: jax.Array,
    cfg: MacroConfig,
) -> tuple[jax.Array, dict]:
    """The objective of a learned level 2 over macro-actions, from reward-free trajectories.

    Each k-step action chunk is coded as a macro-action b = encode_actions(chunk), and the
    level-2 predictor rolls the coarse states s_0, s_k, s_2k, ... forward under the codes:

        loss = prediction * F2 + code_variance * mean_i relu(code_std - std_i)

    F2 the multi-step energy of `hj.world_model.multistep_energy` at the coarse time scale
    (horizon = cfg.horizon macro steps), averaged over the batch; std_i = sqrt(Var(b_i) +
    1e-4), the std of code dimension i over all B J chunks (the 1e-4 keeps the gradient finite
    at collapse, as in VICReg).

    Args:
      params: {"enc_a": action-encoder params, "pred2": level-2 predictor params}.
      encode_actions: `encode_actions(enc_a, chunk [k * A]) -> b [A2]`; bound b (e.g. tanh)
        so that a planner can sample codes in a box (`hj.planning.hierarchical`'s
        macro_bound).
      predict2: `predict2(pred2, s [D], b [A2]) -> [D]`, s_t -> s_{t+k}.
      states: [B, T + 1, D] level-1 states, used as given (inputs and targets): for a frozen
        level 1, the caller stops their gradient (`jax.lax.stop_gradient`).
      actions: [B, T, A]; T // k >= cfg.horizon.
      cfg: MacroConfig.

    Returns:
      (loss, metrics): "level2_energy" (F2), "level2_copy_last" (mean ||s_{t+k} - s_t||^2 / D
      over the coarse pairs: the baseline F2 must beat) and "code_std" (mean_i std of b_i).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> states = jnp.cumsum(jnp.ones((2, 9, 1)), axis=1)  # s_{t+1} = s_t + a_t, a_t = 1
      >>> actions = jnp.ones((2, 8, 1))
      >>> encode = lambda p, chunk: jnp.tanh(chunk[:1])
      >>> predict2 = lambda p, s, b: s + p * b
      >>> params = {"enc_a": None, "pred2": 4.0 / jnp.tanh(1.0)}
      >>> cfg = hj.hjepa.MacroConfig(k=4, horizon=2)
      >>> total, m = hj.hjepa.macro_loss(params, encode, predict2, states, actions, cfg)
      >>> round(float(m["level2_energy"]), 4), float(m["level2_copy_last"])
      (0.0, 16.0)
    """
    fn = "macro_loss"
    if not isinstance(params, dict) or not {"enc_a", "pred2"} <= params.keys():
        keys = sorted(params) if isinstance(params, dict) else type(params)
        fix = 'pass {"enc_a": ..., "pred2": ...}'
        _checks.fail(fn, "params keys", keys, "lack enc_a or pred2", fix)
    _checks.function(fn, "encode_actions", encode_actions, "(enc_a, chunk [k * A]) -> b [A2]")
    _checks.function(fn, "predict2", predict2, "(pred2, s [D], b [A2]) -> [D]")
    coarse, chunks = _macro_sequences(fn, states, actions, cfg.k)
    j, d = chunks.shape[1], coarse.shape[-1]
    if j < cfg.horizon:
        problem = f"is too small: T // k = {j} macro steps, fewer than horizon={cfg.horizon}"
        fix = "pass longer trajectories, or a smaller k or horizon"
        _checks.fail(fn, "T", actions.shape[1], problem, fix)
    fix = "make encode_actions return one code vector b [A2] per chunk"
    call = "encode_actions(enc_a, chunk [k * A])"
    code = _checks.model_output(
        fn, call, encode_actions, (params["enc_a"], chunks[0, 0]), None, fix
    )
    if len(code.shape) != 1:
        _checks.fail(fn, f"{call}.shape", code.shape, "is not one vector [A2]", fix)
    fix = "make predict2 map a level-1 state and a code to a level-1 state"
    call = "predict2(pred2, s [D], b [A2])"
    args = (params["pred2"], coarse[0, 0], jax.ShapeDtypeStruct(code.shape, code.dtype))
    _checks.model_output(fn, call, predict2, args, (d,), fix)

    codes = jax.vmap(jax.vmap(lambda c: encode_actions(params["enc_a"], c)))(chunks)
    one = lambda s, b: world_model.multistep_energy(params["pred2"], predict2, s, b, cfg.horizon)
    energy = jnp.mean(jax.vmap(one)(coarse, codes))
    flat = codes.reshape(-1, codes.shape[-1])
    hinge = jnp.mean(jax.nn.relu(cfg.code_std - jnp.sqrt(jnp.var(flat, axis=0) + 1e-4)))
    copy_last = copy_last_energy(coarse) / d
    metrics = {
        "level2_energy": energy,
        "level2_copy_last": copy_last,
        "code_std": jnp.mean(jnp.std(flat, axis=0)),
    }
    return cfg.prediction * energy + cfg.code_variance * hinge, metrics
