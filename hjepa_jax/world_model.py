"""Action-conditioned JEPA world model: s_{t+1} = Pred(s_t, a_t) in representation space.

The world model of the paper's agent (Fig. 1) learned from observation alone: an encoder maps
observations to states s_t = Enc(o_t) (the caller applies it), a predictor rolls states
forward under actions, and training lowers the multi-step prediction energy

    F = 1/H sum_{h=1..H} ||Pred^h(s_t, a_t..a_{t+h-1}) - s_{t+h}||^2 / D

while keeping the states informative without reconstructing pixels: VICReg's variance and
covariance terms on the states (E14), an optional inverse-dynamics head that must read a_t
from (s_t, s_{t+1}) (so states keep what actions change), an optional temporal
smoothness term, and an optional context term: InfoNCE between a head of each
trajectory's first and last states, the batch's other trajectories the negatives,

    C = InfoNCE(h(s_0^b), h(s_T^b)),   b over the batch,

so that what stays the same along a trajectory and differs between them (where the walls
and doors are, when every trajectory has its own layout) must be in the state, even where
the prediction energy seldom needs it. The planners of `hj.planning` then minimize a cost
over the actions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from hjepa_jax import _checks, collapse, losses, planning

__all__ = ["WorldModelConfig", "multistep_energy", "rollout_energies", "loss", "Trained", "load"]


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Attributes:
    horizon: H, the number of steps each training rollout predicts.
    prediction: weight of the multi-step prediction energy (per dimension).
    variance, covariance: VICReg weights on the states.
    inverse_dynamics: weight of the inverse-dynamics error (0: off).
    smoothness: weight of mean ||s_{t+1} - s_t||^2 / D (0: off).
    context: weight of the context term C (0: off); it needs a `context` head.
    context_temperature: InfoNCE's temperature in C.
    hard: alpha, the weight of hard examples in the prediction energy (0: a plain mean): each
      rollout's energy e (one start of one trajectory) is weighted by e^alpha / mean(e^alpha),
      held constant (stop-gradient), so that rare transitions the predictor gets wrong, such
      as passing a door, weigh more without any label saying which they are.
    unroll: unroll the rollouts (`hj.planning.rollout`); True for a convolutional predictor
      trained on a CPU.

    Example:
      >>> import hjepa_jax as hj
      >>> hj.world_model.WorldModelConfig(horizon=8).horizon
      8
    """

    horizon: int = 4
    prediction: float = 25.0
    variance: float = 25.0
    covariance: float = 1.0
    inverse_dynamics: float = 1.0
    smoothness: float = 0.0
    context: float = 0.0
    context_temperature: float = 0.1
    hard: float = 0.0
    unroll: bool = False

    def __post_init__(self):
        fn = "WorldModelConfig"
        _checks.integer(fn, "horizon", self.horizon, fix="predict >= 1 steps, e.g. horizon=4")
        weights = ("prediction", "variance", "covariance", "inverse_dynamics", "smoothness")
        for name in weights + ("context", "hard"):
            _checks.non_negative(fn, name, getattr(self, name), "pass a weight >= 0")
        _checks.positive(
            fn, "context_temperature", self.context_temperature, "pass a temperature > 0"
        )


def multistep_energy(
    pred_params,
    predict: Callable,
    states: jax.Array,
    actions: jax.Array,
    horizon: int,
    unroll: bool = False,
) -> jax.Array:
    """Mean over start times t and steps h <= H of ||Pred^h(s_t, a) - s_{t+h}||^2 / D
    (the mean of `rollout_energies`).

    Args:
      states: [T + 1, D] encoded states of one trajectory; actions: [T, A]; T >= horizon.
    Returns [].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> predict = lambda p, s, a: s + a
      >>> states, actions = jnp.arange(4.0)[:, None], jnp.ones((3, 1))
      >>> float(hj.world_model.multistep_energy(None, predict, states, actions, horizon=2))
      0.0
    """
    args = (pred_params, predict, states, actions, horizon, unroll)
    return jnp.mean(_rollout_energies("multistep_energy", *args))


def rollout_energies(
    pred_params,
    predict: Callable,
    states: jax.Array,
    actions: jax.Array,
    horizon: int,
    unroll: bool = False,
) -> jax.Array:
    """For each start time t, mean over steps h <= H of ||Pred^h(s_t, a) - s_{t+h}||^2 / D.

    Args:
      states: [T + 1, D] encoded states of one trajectory; actions: [T, A]; T >= horizon.
    Returns [T - H + 1].

    Example:
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> predict = lambda p, s, a: s + a
      >>> states, actions = jnp.array([[0.0], [1.0], [3.0]]), jnp.ones((2, 1))
      >>> hj.world_model.rollout_energies(None, predict, states, actions, horizon=1).tolist()
      [0.0, 1.0]
    """
    args = (pred_params, predict, states, actions, horizon, unroll)
    return _rollout_energies("rollout_energies", *args)


def _rollout_energies(fn: str, pred_params, predict, states, actions, horizon, unroll):
    """`rollout_energies`, its errors naming `fn`."""
    horizon = _checks.integer(fn, "horizon", horizon, fix="predict >= 1 steps, e.g. horizon=4")
    fix = "pass one trajectory: states [T + 1, D] and the T actions between them, [T, A]"
    _checks.rank(fn, "actions", actions, 2, "[T, A]", fix)
    t = actions.shape[0]
    _checks.shape(fn, "states", states, (t + 1, None), "[T + 1, D], T as in actions", fix)
    if t < horizon:
        fix = "pass longer trajectories or a smaller horizon"
        _checks.fail(fn, "T", t, f"is too small: trajectories are shorter than H={horizon}", fix)
    starts = jnp.arange(t - horizon + 1)

    def from_start(i):
        acts = jax.lax.dynamic_slice_in_dim(actions, i, horizon)
        target = jax.lax.dynamic_slice_in_dim(states, i + 1, horizon)
        pred = planning.rollout(predict, pred_params, states[i], acts, unroll)
        return jnp.mean(jnp.sum((pred - target) ** 2, axis=-1))

    return jax.vmap(from_start)(starts) / states.shape[-1]


def _needs(name: str, fn: Callable | None, weight: str, fix: str) -> None:
    """A term whose weight is > 0 needs its function `name`."""
    if fn is None:
        article = "an" if name[0] in "aeiou" else "a"
        problem = f"but {weight} > 0 needs {article} `{name}`"
        _checks.fail("world_model.loss", name, None, problem, fix)


def loss(
    params: dict,
    predict: Callable,
    states: jax.Array,
    actions: jax.Array,
    cfg: WorldModelConfig,
    inverse: Callable | None = None,
    context: Callable | None = None,
) -> tuple[jax.Array, dict]:
    """The world model's training objective on a batch of encoded trajectories.

    Args:
      params: {"pred": predictor params, "inv": inverse-dynamics params (if used), "ctx":
        the context head's params (if used)}.
      predict: `predict(pred, s [D], a [A]) -> [D]`.
      states: [B, T + 1, D] encoder outputs (gradients flow to the encoder).
      actions: [B, T, A].
      cfg: WorldModelConfig.
      inverse: `inverse(inv, s_t [D], s_next [D]) -> [A]`, required if
        cfg.inverse_dynamics > 0.
      context: the head h of the context term, `context(ctx, s [B, D]) -> [B, K]`, required
        if cfg.context > 0 (B >= 2: the other trajectories are the negatives).

    Returns:
      (loss, metrics): "prediction" (the plain mean, whatever cfg.hard), "variance",
      "covariance", "inverse_dynamics", "smoothness", "context" and the collapse diagnostics
      of the states.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import hjepa_jax as hj
      >>> states = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 3))
      >>> actions = states[:, 1:] - states[:, :-1]
      >>> cfg = hj.world_model.WorldModelConfig(horizon=2, inverse_dynamics=0.0)
      >>> predict = lambda p, s, a: s + a
      >>> total, metrics = hj.world_model.loss({"pred": None}, predict, states, actions, cfg)
      >>> total.shape, round(float(metrics["prediction"]), 4)
      ((), 0.0)
    """
    fix = "pass encoded trajectories [B, T + 1, D] and their actions [B, T, A]"
    _checks.rank("world_model.loss", "states", states, 3, "[B, T + 1, D]", fix)
    b, t1, d = states.shape
    _checks.shape("world_model.loss", "actions", actions, (b, t1 - 1, None), "[B, T, A]", fix)
    one = lambda s, a: rollout_energies(params["pred"], predict, s, a, cfg.horizon, cfg.unroll)
    each = jax.vmap(one)(states, actions)  # [B, T - H + 1]
    energy = jnp.mean(each)
    weighted = energy
    if cfg.hard > 0:  # hard examples weigh more: e^alpha / mean(e^alpha), held constant
        w = jax.lax.stop_gradient(each) ** cfg.hard
        weighted = jnp.mean(w * each) / (jnp.mean(w) + 1e-12)
    flat = states.reshape(b * t1, d)
    _, terms = losses.vicreg(flat, flat, sim=0.0, var=cfg.variance, cov=cfg.covariance)
    smooth = jnp.mean(jnp.sum((states[:, 1:] - states[:, :-1]) ** 2, -1)) / d
    inv_err = jnp.zeros(())
    if cfg.inverse_dynamics > 0:
        fix = "pass inverse(params, s_t, s_next) -> [A], or set inverse_dynamics=0"
        _needs("inverse", inverse, "inverse_dynamics", fix)
        guess = jax.vmap(jax.vmap(lambda s, n: inverse(params["inv"], s, n)))(
            states[:, :-1], states[:, 1:]
        )
        inv_err = jnp.mean(jnp.sum((guess - actions) ** 2, -1))
    nce = jnp.zeros(())
    if cfg.context > 0:
        fix = "pass context(params, s [B, D]) -> [B, K], or set context=0"
        _needs("context", context, "context", fix)
        head = lambda s: context(params["ctx"], s)
        nce = losses.infonce(head(states[:, 0]), head(states[:, -1]), cfg.context_temperature)
    total = (
        cfg.prediction * weighted
        + cfg.variance * terms["variance"]
        + cfg.covariance * terms["covariance"]
        + cfg.inverse_dynamics * inv_err
        + cfg.smoothness * smooth
        + cfg.context * nce
    )
    metrics = {
        "prediction": energy,
        "variance": terms["variance"],
        "covariance": terms["covariance"],
        "inverse_dynamics": inv_err,
        "smoothness": smooth,
        "context": nce,
        **collapse.collapse_metrics(jax.lax.stop_gradient(flat)),
    }
    return total, metrics


@dataclasses.dataclass(frozen=True)
class Trained:
    """A trained Two Rooms world model, as `load` returns it. Each method is pure (the
    parameters are fixed), and jit- and vmap-compatible, so a planner of one's own can use it:

      encode(obs [65, 65, 2]) -> s [D], obs as `hj.envs.two_rooms.render_position` renders it;
      predict(s [D], action [2]) -> the next state [D];
      distance(s [D], goal_s [D]) -> [], the planning cost of one step: the squared
        representation distance ||s - goal_s||^2 (EB-JEPA's cost);
      cost(s [D], goal_s [D], wall_cost=2.5, wall_fade=1.0) -> [], the experiment's own cost
        when the run trained the "critic" (learned from the same reward-free trajectories):
        the temporal distance d(s, goal_s) in random-walk steps plus wall_cost times the
        intrinsic cost predicted from s, faded within wall_fade of the goal
        (`hjepa_jax.models.two_rooms.Model.cost`);
      predict_macro(s [D], b [A2]) -> the state [D] k steps later under the macro-action code
        b in [-1, 1]^A2, when the run trained the learned level 2 (planner "hjepa");
      encode_actions(chunk [k, 2]) -> the code b [A2] of k level-1 actions (idem).

    Attributes: model (`hjepa_jax.models.two_rooms.Model`), params ({"enc", "pred", "inv"},
    and "critic" and "level2" where the checkpoint folder holds them), step (the training
    step saved)."""

    model: Any
    params: dict
    step: int

    def encode(self, obs: jax.Array) -> jax.Array:
        from hjepa_jax.models import two_rooms  # here: that module builds on this one

        cfg = self.model.cfg
        return self.model.embed(self.params["enc"], two_rooms.preprocess(obs, cfg.pool, cfg.blur))

    def predict(self, s: jax.Array, action: jax.Array) -> jax.Array:
        return self.model.predict(self.params["pred"], s, action)

    def distance(self, s: jax.Array, goal_s: jax.Array) -> jax.Array:
        return planning.squared_distance(s, goal_s)

    def cost(
        self, s: jax.Array, goal_s: jax.Array, wall_cost: float = 2.5, wall_fade: float = 1.0
    ) -> jax.Array:
        if "critic" not in self.params or self.model.cfg.cost != "critic":
            raise ValueError(
                f"Trained.cost: this checkpoint has no 'critic' (cost={self.model.cfg.cost!r}); "
                "use distance(s, goal_s), or load the --ckpt-dir of a run with --cost critic"
            )
        return self.model.cost(self.params, "critic", wall_cost, wall_fade)(s, goal_s)

    def _level2(self, fn: str) -> dict:
        if "level2" not in self.params:
            raise ValueError(
                f"Trained.{fn}: this checkpoint has no learned level 2; load the --ckpt-dir of "
                "a run whose planners include hjepa"
            )
        return self.params["level2"]

    def predict_macro(self, s: jax.Array, b: jax.Array) -> jax.Array:
        return self.model.predict2(self._level2("predict_macro")["pred2"], s, b)

    def encode_actions(self, chunk: jax.Array) -> jax.Array:
        enc_a = self._level2("encode_actions")["enc_a"]
        return self.model.encode_actions(enc_a, jnp.reshape(chunk, (-1,)))


def load(path, step: int | None = None) -> Trained:
    """The world model that `hjepa-run planning_two_rooms --ckpt-dir PATH` trained: its
    settings read from the checkpoint, its parameters restored (the latest step, or `step`).

    Args:
      path: the experiment's --ckpt-dir (holding `world_model/`), or that subfolder itself;
        a local folder or a gs:// path.
      step: a saved step; None for the latest.

    Raises:
      FileNotFoundError: no world-model checkpoint in `path` (naming it).

    Example (after a run with --ckpt-dir ckpt/run):
      >>> model = hj.world_model.load("ckpt/run")  # doctest: +SKIP
      >>> s = model.encode(two_rooms.render_position(position, layout, params))  # doctest: +SKIP
    """
    from hjepa_jax import checkpoint

    path = str(path)
    folder = (
        path if path.rstrip("/").endswith("world_model") else checkpoint.subdir(path, "world_model")
    )
    found = _restore(folder, step, "world_model")
    if found is None:
        raise FileNotFoundError(
            f"world_model.load: no world-model checkpoint in {folder}; pass the --ckpt-dir of a "
            "planning_two_rooms run (it holds world_model/)"
        )
    model, params, step = found
    beside = lambda what: _restore(folder.rstrip("/")[: -len("world_model")] + what, None, what)
    critic = beside("critic")
    if critic is not None and critic[0].cfg.cost == "critic":  # a map critic is an oracle
        model, params = critic[0], {**params, "critic": critic[1]}
    level2 = beside("level2")
    if level2 is not None:
        model, params = level2[0], {**params, "level2": level2[1]}
    return Trained(model, params, step)


def _restore(folder: str, step: int | None, what: str):
    """(Model, params, step) of the `what` ("world_model", "critic" or "level2") checkpoint in
    `folder` at `step` (None: the latest), the Model built from the settings saved with it;
    None when the folder holds none."""
    from hjepa_jax import checkpoint, train
    from hjepa_jax.models import two_rooms

    if "://" not in folder and not (Path(folder).is_dir() and any(Path(folder).iterdir())):
        return None
    ckpt = checkpoint.Checkpointer(folder)
    try:
        step = ckpt.latest_step() if step is None else int(step)
        if step is None:
            return None
        saved = ckpt.read_meta(step)["config"]
        fields = {f.name for f in dataclasses.fields(two_rooms.ModelConfig)}
        kwargs = {k: v for k, v in {**two_rooms.ADDED, **saved}.items() if k in fields}
        if "channels" in kwargs:
            kwargs["channels"] = tuple(kwargs["channels"])
        model = two_rooms.Model(two_rooms.ModelConfig(**kwargs))
        init = {"world_model": model.init, "critic": model.init_critic}.get(what, model.init_level2)
        tx = two_rooms.optimizer(saved["learning_rate"], saved["steps"])  # its state's shape
        key = jax.random.PRNGKey(0)
        abstract = jax.eval_shape(lambda k: train.init_state(init(k), tx, k), key)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        state, _ = ckpt.restore(step, abstract, device)
    finally:
        ckpt.close()
    return model, dict(state.params), step
