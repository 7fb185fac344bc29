"""experiments/planning_two_rooms.py end to end on a tiny config: outputs and their shapes."""

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

import hjepa_jax as hj
from hjepa_jax.envs import two_rooms as tr
from hjepa_jax.experiments import common, planning_two_rooms, run, two_rooms_figures
from hjepa_jax.models import two_rooms as agent

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_outputs  # noqa: E402

TINY = dataclasses.replace(
    planning_two_rooms.Config().quick(),
    trajectories=256,
    steps=30,
    batch_size=8,
    log_every=10,
    episodes=4,
    max_steps=8,
    horizon_plan=4,
    samples=16,
    elites=4,
    iterations=2,
    gd_steps=3,
    macro_horizon=3,
    hier_horizon=4,
    critic_steps=20,
    critic_batch=8,
    level2_steps=20,
    planners=agent.PLANNERS,  # level1 too: here a CEM toward the goal
)


def flags(cfg: planning_two_rooms.Config) -> list[str]:
    """The command-line flags that turn the quick config into cfg."""
    quick, out = planning_two_rooms.Config().quick(), []
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if value != getattr(quick, field.name):
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            out += ["--" + field.name.replace("_", "-"), text]
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(out folder, metrics.json) of TINY's run through the command line (this experiment's
    run for tests/test_experiments.py too), its checkpoints in out / "ckpt"."""
    out = tmp_path_factory.mktemp("planning_two_rooms")
    args = ["--out", str(out), "--ckpt-dir", str(out / "ckpt"), *flags(TINY)]
    assert run.main(["planning_two_rooms", "--quick", *args]) == 0
    m = cli_outputs.check(out)  # what every experiment's command line writes
    assert m["config"] == json.loads(json.dumps(dataclasses.asdict(TINY)))
    return out, m


def test_metrics_keys_are_finite_numbers(tiny_run):
    out, m = tiny_run
    assert set(common.REQUIRED_METRICS) <= set(m)
    assert m["steps"] == TINY.steps and m["resumed_from_step"] == 0
    assert np.isfinite(m["probe_position_rmse"]) and m["probe_position_rmse"] > 0
    assert np.isnan(m["probe_wall_x_rmse"]) and np.isnan(m["probe_door_y_rmse"])  # one layout
    for planner in TINY.planners:
        assert 0.0 <= m[f"success_{planner}_fixed"] <= m[f"first_hit_{planner}_fixed"] <= 1.0
        assert f"steps_to_goal_{planner}_fixed" in m
        # Timed per setting; the plain name is the mean over the settings run (one here).
        assert m[f"plan_s_per_episode_{planner}_fixed"] > 0
        assert m[f"plan_s_per_episode_{planner}"] == m[f"plan_s_per_episode_{planner}_fixed"]
        assert f"success_{planner}" not in m  # no random-wall episodes in this setting
        evals = agent.evaluations_per_episode(planner, TINY.planner_config(), TINY.cost)
        assert m[f"plan_evals_per_episode_{planner}"] == evals
    for k in (8, 30, 90):
        assert np.isfinite(m[f"rollout_rmse_{k}"]) and m[f"rollout_rmse_{k}"] > 0
    assert json.loads((out / "metrics.json").read_text())["config"]["settings"] == ["fixed"]


def test_offline_data_is_the_local_tfds_dataset(tiny_run):
    """The run trained on `hjepa_two_rooms` rows built in the tfds data dir (in the folder of
    TINY's settings), the probe on its test split."""
    train, test = planning_two_rooms.offline_data(TINY)
    assert train["position"].shape == (TINY.trajectories, TINY.length + 1, 2)
    assert test["position"].shape[0] == planning_two_rooms.PROBE_TRAJECTORIES
    assert set(train["kind"].tolist()) == {tr.LayoutKind.FIXED}  # quick mode: the fixed wall
    root = Path(hj.data.resolve_data_dir()) / "hjepa_two_rooms"
    name = hj.data.two_rooms.make_config(
        seed=TINY.seed, num_train=TINY.trajectories, num_test=400, length=TINY.length,
        layout=TINY.train_layout, door_frac=TINY.door_frac, wall_frac=TINY.wall_frac,
        policy=TINY.policy, cross_frac=TINY.cross_frac,
    ).name  # fmt: skip
    assert (root / name / str(hj.data.two_rooms.HjepaTwoRooms.VERSION)).is_dir()


def test_cross_frac_reaches_the_offline_data():
    """--cross-frac: that share of the train split's walks is started so as to cross the door
    (flagged `aimed`); quick mode has none."""
    train, _ = planning_two_rooms.offline_data(dataclasses.replace(TINY, cross_frac=0.5))
    assert 0.35 < train["aimed"].mean() < 0.65
    assert TINY.cross_frac == 0.0


def test_episodes_npz_can_rescore_every_episode(tiny_run):
    out, _ = tiny_run
    ep = np.load(out / "episodes.npz")
    n = TINY.episodes * len(TINY.planners)
    assert ep["positions"].shape == (n, TINY.max_steps + 1, 2)
    assert ep["goals"].shape == (n, 2)
    assert ep["wall_x"].shape == ep["door_y"].shape == (n, tr.MAX_WALLS)
    assert set(ep["planner"]) == set(TINY.planners)
    assert set(ep["layout"]) == {"fixed"}
    np.testing.assert_array_equal(ep["wall_x"][:, 0], 32.0)
    np.testing.assert_array_equal(ep["door_y"][:, 0], 18.0)
    assert np.isnan(ep["wall_x"][:, 1:]).all() and np.isnan(ep["door_y"][:, 1:]).all()
    # Re-scoring from the saved trajectories gives the saved successes: EB-JEPA's, at the
    # last step, and the first hit at any step (then `steps` is the first hit's).
    dist = np.linalg.norm(ep["positions"] - ep["goals"][:, None], axis=-1)
    np.testing.assert_array_equal(dist[:, -1] <= 4.5, ep["success"])
    np.testing.assert_array_equal(np.any(dist <= 4.5, axis=1), ep["first_hit"])
    inside = dist[:, 1:] <= 4.5
    first = np.where(inside.any(1), inside.argmax(1) + 1, TINY.max_steps)
    np.testing.assert_array_equal(first, ep["steps"])
    # Start in the left room, goal in the right room; moves respect the L2 action bound.
    assert (ep["positions"][:, 0, 0] < 31).all() and (ep["goals"][:, 0] > 33).all()
    moves = np.linalg.norm(np.diff(ep["positions"], axis=1), axis=-1)
    assert moves.max() <= TINY.action_norm + 1e-4 and TINY.action_norm <= 2.45


def test_map_cost_run_plans_hierarchically_and_with_its_level_1_alone(tiny_run, tmp_path):
    """cost="map" end to end, two planners in three rooms: the subset of planners runs, and
    the hierarchical planner (waypoints on the map, level-1 gradient MPC) and its level 1
    alone each report their success and write their episodes. The world model is TINY's,
    from a copy of its checkpoint: another cost trains only the critic."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_run[0] / "ckpt" / "world_model", ckpt / "world_model")
    cfg = dataclasses.replace(
        TINY, cost="map", settings=("three_rooms",), planners=("hierarchical", "level1")
    )
    metrics = planning_two_rooms.run(cfg, tmp_path, common.RunOptions(ckpt_dir=str(ckpt)))
    assert metrics["resumed_from_step"] == TINY.steps and metrics["critic_resumed_from_step"] == 0
    for planner in cfg.planners:
        assert 0.0 <= metrics[f"success_{planner}_three_rooms"] <= 1.0
    assert "success_gradient_mpc_three_rooms" not in metrics
    assert -1.0 <= metrics["path_corr_map"] <= 1.0
    ep = np.load(tmp_path / "episodes.npz")
    assert set(ep["planner"]) == {"hierarchical", "level1"} and set(ep["layout"]) == {"three_rooms"}
    assert not np.isnan(ep["wall_x"][:, :2]).any()  # two walls in every episode
    # The same episodes, two different planners: the waypoint moves the agents otherwise.
    mine = lambda name: ep["positions"][ep["planner"] == name]
    assert not np.allclose(mine("hierarchical"), mine("level1"))


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"planners": ("gradient_mpc", "a_star")}, "planners must be among"),
        ({"planners": ()}, "planners must name at least one value"),
        ({"settings": ("four_rooms",)}, "settings must be among"),
        ({"cost": "euclid"}, "cost must be among"),
        ({"hier_horizon": 1, "replan_every": 2}, "must be >= replan_every"),
        ({"eval_chunk": 0}, "eval_chunk must be >= 1"),
        ({"level1": "mppi"}, "level1 must be among"),
        ({"goal_walls": (0, 2)}, r"goal_walls must be <= 1, the walls of fixed"),
        ({"door_frac": 0.5, "cross_frac": 0.6}, r"wall_frac \+ cross_frac=1.1 is above 1"),
    ],
)
def test_bad_config_is_refused_before_training(tmp_path, fields, match):
    with pytest.raises(ValueError, match=match):
        planning_two_rooms.run(dataclasses.replace(TINY, **fields), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_episodes_do_not_depend_on_how_they_are_chunked():
    """Six episodes one at a time, in chunks of 4 (one left over) or all together: the same
    trajectories. (The random planner: no float reductions that batching could reorder.)"""
    cfg = dataclasses.replace(TINY, max_steps=40, cost="distance")
    model = agent.Model(cfg.model_config())
    params = model.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 6)
    layouts = jax.vmap(tr.random_layout)(keys)
    runs = [
        agent.make_evaluate(
            model, params, dataclasses.replace(cfg, eval_chunk=c).planner_config(), "random"
        )(keys, layouts)
        for c in (1, 4, 6)
    ]
    assert runs[0][0].shape == (6, cfg.max_steps + 1, 2)
    for other in runs[1:]:
        for mine, first in zip(other, runs[0], strict=True):
            np.testing.assert_array_equal(mine, first)


def test_rerun_with_other_planners_reuses_the_trained_models(tiny_run, tmp_path):
    """Same checkpoint folder as TINY's run, other planners and episodes: the world model and
    the critic resume at their last step (nothing retrained, the same probe); another network
    width is refused, naming the field."""
    out, first = tiny_run
    options = common.RunOptions(ckpt_dir=str(out / "ckpt"))
    assert first["resumed_from_step"] == first["critic_resumed_from_step"] == 0
    cfg = dataclasses.replace(TINY, planners=("random",))
    # TINY's episodes and samples (16): programs its run compiled, served by the cache
    again = dataclasses.replace(
        cfg, planners=("gradient_mpc", "cem"), compute_samples=(8, 16), goal_walls=(0, 1)
    )
    second = planning_two_rooms.run(again, tmp_path / "b", options)
    assert second["resumed_from_step"] == TINY.steps
    assert second["critic_resumed_from_step"] == TINY.critic_steps
    assert second["probe_position_rmse"] == first["probe_position_rmse"]
    assert "success_gradient_mpc_fixed" in second and "success_random_fixed" not in second
    # The compute sweep: CEM again with 8 and 16 samples (gradient MPC has none to vary).
    for n in (8, 16):
        assert 0.0 <= second[f"compute_success_cem_{n}"] <= 1.0 and second[f"compute_s_cem_{n}"] > 0
    assert second["compute_evals_cem_16"] == 2 * second["compute_evals_cem_8"]
    assert second["compute_success_cem_16"] == second["success_cem_fixed"]  # the same episodes
    assert not any(k.startswith("compute_success_gradient_mpc") for k in second)
    # The distance sweep: the goal in the start's room, then behind the fixed wall, as the
    # protocol's tasks are (the same episodes), farther along the shortest path.
    for planner in again.planners:
        assert second[f"distance_success_{planner}_1"] == second[f"success_{planner}_fixed"]
        assert 0.0 <= second[f"distance_first_hit_{planner}_0"] <= 1.0
    assert 0 < second["distance_path_0"] < second["distance_path_1"] == second["path_median_fixed"]
    assert (tmp_path / "b" / f"{planning_two_rooms.NAME}.png").exists()
    with pytest.raises(ValueError, match="hidden"):
        planning_two_rooms.run(dataclasses.replace(cfg, hidden=32), tmp_path / "c", options)

    # Anyone can plan with the trained world model: hj.world_model.load of the --ckpt-dir.
    trained = hj.world_model.load(out / "ckpt")
    assert trained.step == TINY.steps
    assert trained.model.cfg == TINY.model_config()  # unsaved fields (ADDED): not the defaults
    _, held = planning_two_rooms.offline_data(cfg)
    probe = agent.probe(
        trained.model,
        trained.params,
        hj.data.two_rooms.trajectories(held),
        planning_two_rooms.PROBE_FIT,
    )
    assert probe.rmse == first["probe_position_rmse"]  # the trained parameters, restored
    env, layout = tr.EnvParams(), tr.fixed_layout()
    positions = jnp.array([[20.0, 40.0], [50.0, 30.0]])
    obs = jax.vmap(lambda q: tr.render_position(q, layout, env))(positions)
    s = jax.vmap(trained.encode)(obs)
    direct = trained.model.encode(trained.params["enc"], positions[0], layout)
    np.testing.assert_allclose(s[0], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(trained.encode))(obs), s, rtol=1e-5, atol=1e-6)
    nxt = jax.jit(trained.predict)(s[0], jnp.array([1.0, 0.0]))
    assert nxt.shape == s[0].shape
    np.testing.assert_allclose(trained.distance(s[0], s[1]), jnp.sum((s[0] - s[1]) ** 2), 1e-5)
    # The run's own cost: its critic restored from ckpt/critic (trained, not re-initialized).
    fresh = trained.model.init_critic(jax.random.PRNGKey(0))
    restored = jax.tree.leaves(trained.params["critic"])
    assert any(not np.allclose(a, b) for a, b in zip(restored, jax.tree.leaves(fresh), strict=True))
    np.testing.assert_allclose(jax.jit(trained.cost)(s[0], s[1]), trained.cost(s[0], s[1]), 1e-5)
    assert float(trained.cost(s[0], s[1], 0.0)) > float(trained.cost(s[0], s[0], 0.0)) >= 0.0
    # The learned level 2 (planner hjepa), restored from ckpt/level2.
    code = jax.jit(trained.encode_actions)(jnp.ones((TINY.level2_k, 2)))
    assert code.shape == (TINY.level2_codes,) and bool(jnp.all(jnp.abs(code) <= 1.0))
    assert jax.vmap(trained.predict_macro)(s, jnp.stack([code, -code])).shape == s.shape
    with pytest.raises(FileNotFoundError, match="world-model checkpoint"):
        hj.world_model.load(tmp_path / "nothing")


def test_learned_level2_predicts_k_steps_ahead_better_than_copy_last(tiny_run):
    """The level 2 of the "hjepa" planner, trained on the frozen states of the tiny run's
    world model and the actions of its trajectories (nothing else): its k-step prediction
    energy ends far below that of "nothing changes", and its codes spread over their box.
    Codes of opposite chunks predict different states (the code carries the actions)."""
    out, _ = tiny_run
    trained = hj.world_model.load(out / "ckpt")
    data = hj.data.two_rooms.trajectories(planning_two_rooms.offline_data(TINY)[0])
    loop = hj.train.LoopConfig(steps=300, batch_size=32, log_every=100)
    result = agent.train_level2(
        trained.model, trained.params, data, loop, jax.random.PRNGKey(0), learning_rate=3e-3
    )
    last = result.history[-1]
    assert last["level2_energy"] < 0.3 * last["level2_copy_last"], last
    assert last["code_std"] > 0.3, last
    model, level2 = trained.model, result.state.params
    s = trained.model.encode(trained.params["enc"], jnp.array([20.0, 32.0]), tr.fixed_layout())
    code = lambda x: model.encode_actions(level2["enc_a"], jnp.tile(jnp.array([x, 0.0]), 6))
    right, left = code(1.5), code(-1.5)
    moved = lambda b: model.predict2(level2["pred2"], s, b)
    assert float(jnp.sum((moved(right) - moved(left)) ** 2)) > 0.1 * float(jnp.sum(s**2)) / s.size


def test_hjepa_replans_level2_every_level2_every_calls_under_vmap(tiny_run):
    """level2_every=3: level 2 plans at calls 0 and 3 only; calls 1 and 2 keep its subgoal
    and macro plan while level 1 replans. Under vmap the call count stays unbatched, so the
    compiled program keeps a real cond (the skipped level 2 costs no time)."""
    out, _ = tiny_run
    trained = hj.world_model.load(out / "ckpt")
    cfg = agent.PlannerConfig(
        samples=8, elites=2, iterations=2, macro_horizon=3, hier_horizon=4, level2_every=1,
        level1="cem",
    )  # fmt: skip
    every = dataclasses.replace(cfg, level2_every=3)
    layout = tr.fixed_layout()
    enc = lambda q: trained.model.encode(trained.params["enc"], q, layout)
    starts = jnp.array([[10.0, 20.0], [12.0, 40.0]])
    s0, g = jax.vmap(enc)(starts), enc(jnp.array([50.0, 32.0]))

    def calls(pcfg, s):
        two_level, warm0 = agent.two_level_planner("hjepa", trained.model, trained.params, pcfg)

        def call(warm, key):
            plan, warm = two_level(s, g, key, warm)
            return warm, (plan.subgoal, plan.macro_actions, plan.actions)

        return jax.lax.scan(call, warm0, jax.random.split(jax.random.PRNGKey(0), 4))[1]

    sub, macro, actions = jax.jit(jax.vmap(lambda s: calls(every, s)))(s0)
    for i in (1, 2):  # level 1 only: the subgoal and macro plan of call 0
        np.testing.assert_array_equal(sub[:, i], sub[:, 0])
        np.testing.assert_array_equal(macro[:, i], macro[:, 0])
    assert not np.allclose(macro[:, 3], macro[:, 0])  # level 2 planned again
    assert not np.allclose(actions[:, 1], actions[:, 0])  # level 1 planned each call
    conds = lambda pcfg: str(jax.make_jaxpr(jax.vmap(lambda s: calls(pcfg, s)))(s0)).count("cond[")
    assert conds(every) == conds(cfg) + 1
    # Level 1 by gradient MPC: the same subgoal schedule, a plan of hier_horizon actions.
    descent = dataclasses.replace(every, level1="gradient_mpc", gd_steps=3)
    sub_d, _, act_d = jax.jit(jax.vmap(lambda s: calls(descent, s)))(s0)
    np.testing.assert_array_equal(sub_d[:, 2], sub_d[:, 0])
    assert act_d.shape == actions.shape and bool(jnp.all(jnp.isfinite(act_d)))
    # level2_every=1: level 2 plans at every call.
    sub1 = jax.jit(jax.vmap(lambda s: calls(cfg, s)))(s0)[0]
    np.testing.assert_allclose(sub1[:, 0], sub[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(sub1[:, 1], sub1[:, 0])


def test_figure_is_a_png(tiny_run):
    out, _ = tiny_run
    png = out / f"{planning_two_rooms.NAME}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


def test_path_length_goes_through_the_door():
    nan = float("nan")
    path = agent.path_length
    # The door on the straight line: the straight line. Not on it: via the door's corner.
    assert path([10, 18], [50, 18], [32, nan], [18, nan]) == pytest.approx(40.0)
    around = np.hypot(22, 28) + np.hypot(18, 28)  # via the door's lower corner (32, 22)
    assert path([10, 50], [50, 50], [32, nan], [18, nan]) == pytest.approx(around)
    # Two walls: round the top corner of the first door, the bottom one of the second.
    two = path([10, 50], [50, 50], [22, 43], [50, 10])
    assert two == pytest.approx(np.hypot(12, 4) + np.hypot(21, 32) + np.hypot(7, 36))


def test_paths_between_points_of_any_rooms_cross_only_the_walls_between_them():
    nan = float("nan")
    between = agent.path_length
    walls, doors = np.array([22.0, 43.0]), np.array([50.0, 10.0])
    a, b, c = np.array([10.0, 50.0]), np.array([30.0, 20.0]), np.array([50.0, 50.0])
    assert between(b, b + [3.0, 4.0], walls, doors) == pytest.approx(5.0)  # one room: straight
    one = agent.path_length(a, b, [22.0, nan], [50.0, nan])
    assert between(a, b, walls, doors) == between(b, a, walls, doors) == pytest.approx(one)
    assert between(a, c, walls[::-1], doors[::-1]) == pytest.approx(
        agent.path_length(a, c, walls, doors)
    )  # the walls in any order


def test_tiny_run_reports_where_the_learned_subgoals_lie(tiny_run):
    """subgoal_probe's numbers in the tiny run (hjepa among its planners): a path through the
    subgoal is never shorter than the shortest path (paths through doors obey the triangle
    inequality); fractions and progress within their ranges."""
    _, m = tiny_run
    assert m["subgoal_detour_median"] >= 1.0 - 1e-9
    for name in ("", "_straight"):
        assert 0.0 <= m[f"subgoal_through_doors{name}"] <= 1.0
        assert m[f"subgoal_progress{name}"] <= 1.0 + 1e-9


def test_search_probe_reports_where_the_imagined_way_goes(tiny_run):
    """subgoal_probe of hjepa_search on the tiny run's model: the imagined way to the state
    nearest the goal, decoded by the run's position probe; detours never below the shortest
    path, fractions within their ranges; an unknown planner is refused by name."""
    out, _ = tiny_run
    trained = hj.world_model.load(out / "ckpt")
    held = hj.data.two_rooms.trajectories(planning_two_rooms.offline_data(TINY)[1])
    probe = agent.probe(trained.model, trained.params, held, 100)
    cfg = agent.PlannerConfig(search_depth=4, search_frontier=4, search_directions=6)
    args = (trained.model, trained.params, cfg, probe.decode, jax.random.PRNGKey(0), "fixed")
    m = agent.subgoal_probe(*args, n=6, planner="hjepa_search")
    assert m["search_detour_median"] >= 1.0 - 1e-9 and 0.0 <= m["search_found"] <= 1.0
    for name in ("", "_straight"):
        assert 0.0 <= m[f"search_through_doors{name}"] <= 1.0
        assert m[f"search_progress{name}"] <= 1.0 + 1e-9
    with pytest.raises(ValueError, match="planner"):
        agent.subgoal_probe(*args, n=6, planner="cem")


def test_tiny_run_reports_how_each_cost_tracks_the_path(tiny_run):
    _, m = tiny_run
    for cost in ("straight_line", "distance", "critic"):
        assert -1.0 <= m[f"path_corr_{cost}"] <= 1.0
    assert m["critic_violation"] >= 0.0
    assert 0.0 <= m["wall_leak"] <= 1.0 and 0.0 <= m["door_pass"] <= 1.0


def test_the_critic_costs_intrinsic_term_fades_near_the_goal():
    """cost = d + wall_cost * IC_hat(s) * min(1, d / wall_fade): at the goal almost the critic
    alone, beyond wall_fade of it the full term, in between the linear share; wall_fade 0
    keeps the full term everywhere. Jitted and vmapped alike."""
    model = agent.Model(TINY.model_config())
    params = {"critic": model.init_critic(jax.random.PRNGKey(0))}
    s = jax.random.normal(jax.random.PRNGKey(1), (5, model.state_dim))
    g = s[0]
    psi = lambda x: model.critic.apply(params["critic"]["psi"], x)
    d = np.asarray(jax.vmap(lambda x: hj.critic.distance(psi(x), psi(g)))(s))
    ic = np.asarray(jax.vmap(lambda x: model.wall_head.apply(params["critic"]["wall"], x)[0])(s))
    assert d[0] < 0.01 and (d[1:] > 100 * d[0]).all() and (ic != 0).all()  # smoothed norm
    fade = float(np.median(d[1:]))  # some rows within it, some beyond
    cost = model.cost(params, "critic", 2.5, fade)
    want = d + 2.5 * ic * np.minimum(d / fade, 1.0)
    np.testing.assert_allclose(jax.jit(jax.vmap(cost, (0, None)))(s, g), want, rtol=1e-5)
    np.testing.assert_allclose([float(cost(x, g)) for x in s], want, rtol=1e-5)
    assert abs(float(cost(g, g)) - d[0]) < 0.01 * abs(ic[0])
    no_fade = jax.vmap(model.cost(params, "critic", 2.5, 0.0), (0, None))(s, g)
    np.testing.assert_allclose(no_fade, d + 2.5 * ic, rtol=1e-5)
    with pytest.raises(ValueError, match="wall_fade"):
        model.cost(params, "critic", 2.5, -1.0)


def test_spatial_state_model_trains_and_predicts_flat_states():
    cfg = dataclasses.replace(TINY, state="spatial", embed_dim=4, blur=1.0)
    model = agent.Model(cfg.model_config())
    assert model.map_shape == (8, 8, 4) and model.state_dim == 256
    params = model.init(jax.random.PRNGKey(0))
    data = tr.random_trajectories(jax.random.PRNGKey(1), tr.EnvParams(), tr.fixed_layout, 4, 16)
    loss, metrics = jax.jit(model.loss)(params, (data.positions, data.actions, data.layouts), None)
    assert np.isfinite(float(loss)) and metrics["prediction"] >= 0
    s = model.encode(params["enc"], data.positions[0, 0], tr.fixed_layout())
    assert s.shape == (256,)
    assert model.predict(params["pred"], s, data.actions[0, 0]).shape == (256,)
    with pytest.raises(ValueError, match="state must be"):
        agent.Model(dataclasses.replace(TINY.model_config(), state="grid"))


def test_context_term_and_the_layout_probe_on_random_walls():
    """With context > 0 the world model has a context head and its loss the InfoNCE term
    (hj.world_model.loss); with a layout per row the probe reads the wall and door from the
    states (a number in pixels, not NaN)."""
    cfg = dataclasses.replace(TINY, context=1.0, train_layout="random")
    model = agent.Model(cfg.model_config())
    params = model.init(jax.random.PRNGKey(0))
    assert set(params) == {"enc", "pred", "inv", "ctx"}
    assert "ctx" not in agent.Model(TINY.model_config()).init(jax.random.PRNGKey(0))
    data = tr.random_trajectories(
        jax.random.PRNGKey(1), tr.EnvParams(), tr.random_layout, 12, 4, 0.0, 0.0, "open_loop"
    )
    loss, metrics = jax.jit(model.loss)(params, (data.positions, data.actions, data.layouts), None)
    assert np.isfinite(float(loss)) and float(metrics["context"]) > 0
    probe = agent.probe(model, params, data, fit=8)
    for rmse in (probe.wall_x_rmse, probe.door_y_rmse):
        assert np.isfinite(rmse) and rmse > 0
    with pytest.raises(ValueError, match="context"):
        agent.ModelConfig(context=-1.0)


def test_windows_are_random_slices_of_each_trajectory_and_train_the_model():
    """window=W cuts each row of a batch of long trajectories to W steps at a random start
    drawn from the key: positions and actions stay aligned, starts differ between rows and
    keys, the loss is the loss of the cut batch, and it jits; window 0 (or >= L - 1) keeps
    the batch, and a window without a key is refused by name."""
    cfg = dataclasses.replace(TINY, window=4).model_config()
    model = agent.Model(cfg)
    data = tr.random_trajectories(jax.random.PRNGKey(1), tr.EnvParams(), tr.fixed_layout, 6, 20)
    batch = (data.positions, data.actions, data.layouts)
    starts = set()
    for seed in range(3):
        pos, act, _ = model.window(batch, jax.random.PRNGKey(seed))
        assert pos.shape == (6, 5, 2) and act.shape == (6, 4, 2)
        for row in range(6):
            full_p, full_a = np.asarray(data.positions[row]), np.asarray(data.actions[row])
            at = [i for i in range(17) if np.array_equal(full_p[i : i + 5], pos[row])]
            assert len(at) == 1 and np.array_equal(full_a[at[0] : at[0] + 4], act[row])
            starts.add(at[0])
    assert len(starts) > 3
    params = model.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(7)
    whole = agent.Model(TINY.model_config())  # window 0: the batch as given
    expected, _ = jax.jit(whole.loss)(params, model.window(batch, key), None)
    got, _ = jax.jit(model.loss)(params, batch, key)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert whole.window(batch, key) is batch
    assert agent.Model(dataclasses.replace(cfg, window=20)).window(batch, None) is batch
    with pytest.raises(ValueError, match="key"):
        model.loss(params, batch, None)
    with pytest.raises(ValueError, match="window"):
        agent.ModelConfig(window=-1)


def test_checkpoints_from_before_the_context_term_still_match():
    """A field added later (agent.ADDED) is left out of the saved config at its old behaviour's
    value, so a checkpoint saved before it existed matches (hj.checkpoint's comparison); set
    to anything else, it is saved and a checkpoint without it is refused."""
    saved_before = planning_two_rooms.trained_config(TINY, "world_model")
    assert not {"context", "window", "hard"} & set(saved_before)
    with_context = planning_two_rooms.trained_config(
        dataclasses.replace(TINY, context=5.0), "world_model"
    )
    assert with_context["context"] == 5.0
    assert hj.checkpoint.config_differences(saved_before, with_context) == [
        "context: checkpoint '<missing>' != now 5.0"
    ]


def small_search(tiny_run, **fields):
    """The tiny run's world model at the representation distance, its params, a small
    hjepa_search config (`fields` changed) and enc(position [2]) -> state on the fixed wall."""
    trained = hj.world_model.load(tiny_run[0] / "ckpt")
    model = agent.Model(dataclasses.replace(trained.model.cfg, cost="distance"))
    small = dict(hier_horizon=4, gd_steps=2, search_depth=4, search_frontier=4, search_directions=6)
    cfg = agent.PlannerConfig(**{**small, **fields})
    layout = tr.fixed_layout()
    enc = jax.jit(lambda q: model.encode(trained.params["enc"], jnp.asarray(q), layout))
    return model, trained.params, cfg, enc


def test_hjepa_search_keeps_its_subgoal_between_searches_and_aims_at_a_goal_reached(tiny_run):
    """hjepa_search with level2_every=3 searches at calls 0 and 3: calls 1 and 2 keep the
    subgoal and its cost while level 1 replans. Its subgoal is a state the learned level 2
    imagined, one macro step from the start. At the goal it plans toward the goal itself."""
    model, params, cfg, enc = small_search(tiny_run, level2_every=3)
    plan, warm0 = agent.search_planner(model, params, cfg)
    starts = jnp.array([[10.0, 20.0], [12.0, 40.0]])
    s0, g = jax.vmap(enc)(starts), enc(jnp.array([50.0, 32.0]))

    def calls(s):
        def call(warm, key):
            actions, warm = plan(s, g, key, warm)
            return warm, (actions, warm[1], warm[2])

        return jax.lax.scan(call, warm0, jax.random.split(jax.random.PRNGKey(0), 4))[1]

    actions, sub, lowest = jax.jit(jax.vmap(calls))(s0)
    assert actions.shape == (2, 4, cfg.replan_every, 2) and bool(jnp.all(jnp.isfinite(actions)))
    for i in (1, 2):
        np.testing.assert_array_equal(sub[:, i], sub[:, 0])
        np.testing.assert_array_equal(lowest[:, i], lowest[:, 0])
    first = jax.vmap(model.predict2, (None, None, 0))
    codes = agent.macro_codes(model, params, cfg)
    for b in range(2):
        steps = first(params["level2"]["pred2"], s0[b], codes)
        assert float(jnp.min(jnp.sum((steps - sub[b, 0]) ** 2, -1))) < 1e-8
        assert float(lowest[b, 0]) <= float(jnp.sum((s0[b] - g) ** 2))
    # At the goal no imagined state costs less: level 1 plans toward the goal itself.
    key = jax.random.PRNGKey(1)
    aimed, _ = agent.make_planner("level1", model, params, cfg)
    np.testing.assert_allclose(
        jax.jit(plan)(g, g, key, warm0)[0], jax.jit(aimed)(g, g, key, warm0[0])[0], atol=1e-6
    )


def test_hjepa_search_aims_at_the_goal_within_search_arrive_macro_steps(tiny_run):
    """Within search_arrive typical macro steps of the goal, level 1 plans toward the goal
    itself (the plan of the level-1 planner alone); with search_arrive 0, far from the goal,
    toward the search's subgoal instead."""
    model, params, cfg, enc = small_search(tiny_run)
    s, g, key = enc([10.0, 20.0]), enc([50.0, 32.0]), jax.random.PRNGKey(0)
    aimed, _ = agent.make_planner("level1", model, params, cfg)
    toward_goal = jax.jit(aimed)(s, g, key, jnp.zeros((cfg.hier_horizon, 2)))[0]
    for arrive, same in ((1e6, True), (0.0, False)):
        wide = dataclasses.replace(cfg, search_arrive=arrive)
        plan, warm0 = agent.search_planner(model, params, wide)
        actions = jax.jit(plan)(s, g, key, warm0)[0]
        assert bool(jnp.allclose(actions, toward_goal, atol=1e-6)) == same, arrive


def test_hjepa_search_tries_another_first_move_where_the_agent_did_not_move(tiny_run):
    """An agent that stays where it was (a move its models predict, blocked in the world)
    searches again without the first macro-actions tried from there, each in turn, and once
    it moves it may take any of them again."""
    model, params, cfg, enc = small_search(tiny_run, level2_every=1)
    plan, warm0 = agent.search_planner(model, params, cfg)
    s, far, g = enc([10.0, 20.0]), enc([14.0, 44.0]), enc([50.0, 32.0])
    plan = jax.jit(plan)
    warm, tried = warm0, []
    for i, where in enumerate([s, s, s, far]):
        _, warm = plan(where, g, jax.random.PRNGKey(i), warm)
        tried.append(np.asarray(warm[5]))
    assert [int(t.sum()) for t in tried] == [1, 2, 3, 1]  # one more each time; reset on moving
    assert np.all(tried[1] >= tried[0]) and np.all(tried[2] >= tried[1])
    unchecked = dataclasses.replace(cfg, search_stuck=0.0, search_arrive=0.0)
    plan, warm = agent.search_planner(model, params, unchecked)
    for i in range(3):
        _, warm = jax.jit(plan)(s, g, jax.random.PRNGKey(i), warm)
    assert int(np.sum(warm[5])) == 1  # the same first move every time


def test_hjepa_search_follows_its_search_where_it_stopped_short_of_the_goal(tiny_run):
    """Within search_arrive of the goal the agent aims at the goal itself; where it then stays
    put (a wall between them that the models let it walk through), with search_unstick it
    follows the search's subgoal at the next plan, and the memory keeps (that place, the
    macro-action leading nearest the goal). Without search_unstick it keeps aiming at the
    goal; at the goal itself it is never blocked."""
    model, params, cfg, enc = small_search(tiny_run, level2_every=1, search_memory=2)
    cfg = dataclasses.replace(cfg, search_arrive=1e6)
    s, g = enc([10.0, 20.0]), enc([50.0, 32.0])
    runs = {}
    for unstick in (0.0, 1e-3):
        plan, warm = agent.search_planner(
            model, params, dataclasses.replace(cfg, search_unstick=unstick)
        )
        plan, actions, flags, firsts = jax.jit(plan), [], [], []
        for i in range(2):
            a, warm = plan(s, g, jax.random.PRNGKey(i), warm)
            actions.append(np.asarray(a))
            flags.append(bool(warm[13]))
            firsts.append(int(warm[10]))
        runs[unstick] = (actions, flags, warm, firsts)
    (plain, plain_flags, plain_warm, firsts), (unstuck, flags, warm, _) = runs[0.0], runs[1e-3]
    np.testing.assert_array_equal(plain[0], unstuck[0])  # both aim at the goal at first
    assert plain_flags == [False, False] and flags == [False, True]
    assert not np.allclose(plain[1], unstuck[1], atol=1e-4)  # then at the subgoal
    toward = int(warm[11])
    assert int(warm[9]) == 1 and np.asarray(warm[8])[0] == toward  # (s, toward) remembered
    np.testing.assert_array_equal(np.asarray(warm[7])[0], np.asarray(s))
    assert int(plain_warm[9]) == 1 and int(np.asarray(plain_warm[8])[0]) == firsts[0]
    plan, warm = agent.search_planner(model, params, dataclasses.replace(cfg, search_unstick=1e-3))
    for i in range(2):
        _, warm = jax.jit(plan)(g, g, jax.random.PRNGKey(i), warm)
    assert not bool(warm[13])  # at the goal: never blocked


def test_hjepa_search_remembers_where_a_move_left_it_stuck(tiny_run):
    """With search_memory, each place where the agent stayed and the first macro-action tried
    there are remembered for the episode (the last search_memory of them): back at that place
    after moving away, its search starts with neither, where one without the memory starts
    again with the first it tried."""
    model, params, cfg, enc = small_search(tiny_run, level2_every=1, search_memory=2)
    s, far, g = enc([10.0, 20.0]), enc([14.0, 44.0]), enc([50.0, 32.0])
    firsts = {}
    for memory in (0, 2, 1):
        plan, warm = agent.search_planner(
            model, params, dataclasses.replace(cfg, search_memory=memory)
        )
        plan, seen = jax.jit(plan), []
        for i, where in enumerate([s, s, s, far, s]):
            _, warm = plan(where, g, jax.random.PRNGKey(i), warm)
            seen.append(int(warm[10]))  # the first macro-action of this search
        firsts[memory] = seen
        places, moves, count = (np.asarray(w) for w in warm[7:10])
        if memory:  # stuck at calls 1 and 2: (s, the first move of calls 0 and 1)
            assert int(count) == 2 and len(moves) == memory
            assert sorted(moves.tolist()) == sorted(seen[2 - memory : 2])
            np.testing.assert_array_equal(places, np.tile(np.asarray(s), (memory, 1)))
        else:
            assert int(count) == 0 and moves.tolist() == [-1]
    assert firsts[0][:4] == firsts[2][:4] == firsts[1][:4]  # the same until back at s
    assert firsts[0][4] == firsts[0][0]  # without a memory: the first move tried at s again
    assert firsts[2][4] not in firsts[2][:2] and firsts[1][4] != firsts[1][1]


def test_flat_planners_remember_where_they_stayed_and_plan_away_from_it(tiny_run):
    """With stuck_memory, a flat planner remembers each state it planned from again without
    having moved (the last stuck_memory of them), and its cost gains a bump there: gradient
    MPC's plan then leads farther from that place than without the bump. With stuck_cost 0
    every plan is the plain planner's."""
    model, params, cfg, enc = small_search(tiny_run, gd_noise=0.0, gd_steps=10, horizon_plan=4)
    s, far, g = enc([10.0, 20.0]), enc([14.0, 44.0]), enc([50.0, 32.0])
    key = jax.random.PRNGKey(0)
    plain, warm0 = agent.make_planner("gradient_mpc", model, params, cfg)
    for name in agent.FLAT:
        kept = dataclasses.replace(cfg, stuck_memory=2, stuck_cost=0.0)
        plan, warm = agent.make_planner(name, model, params, kept)
        same, warm_same = agent.make_planner(name, model, params, cfg)
        for where in (s, s, s, far):
            actions, warm = jax.jit(plan)(where, g, key, warm)
            expected, warm_same = jax.jit(same)(where, g, key, warm_same)
            np.testing.assert_allclose(actions, expected, atol=1e-5)
        places, count = np.asarray(warm[1]), int(warm[2])
        assert count == 2 and np.allclose(places, np.tile(np.asarray(s), (2, 1)))
    bumped = dataclasses.replace(cfg, stuck_memory=4, stuck_cost=10.0)
    plan, warm = agent.make_planner("gradient_mpc", model, params, bumped)
    _, warm = jax.jit(plan)(s, g, key, warm)
    _, warm = jax.jit(plan)(s, g, key, warm)  # stayed: s is remembered
    rollout = lambda a: hj.planning.rollout(model.predict, params["pred"], s, a)[-1]
    away = float(jnp.linalg.norm(rollout(warm[0]) - s))  # the plan's predicted end
    along = float(jnp.linalg.norm(rollout(jax.jit(plain)(s, g, key, warm0)[1]) - s))
    assert int(warm[2]) == 1 and away > along
    _, warm = agent.make_planner("gradient_mpc", model, params, bumped)
    for _ in range(3):  # at its goal the agent stays, and remembers nothing: it stays there
        _, warm = jax.jit(plan)(g, g, key, warm)
    assert int(warm[2]) == 0


def test_evaluations_per_episode_count_each_planners_predictor_steps():
    cfg = agent.PlannerConfig(
        max_steps=10, replan_every=3, horizon_plan=5, samples=7, iterations=2, gd_steps=4,
        macro_steps=3, macro_horizon=2, hier_horizon=6, gd_noise=0.0, level2_every=1,
        level1="cem",
    )  # fmt: skip
    plans = 4  # ceil(10 / 3)
    count = lambda name, cost="critic": agent.evaluations_per_episode(name, cfg, cost)
    assert count("cem") == count("mppi") == plans * 7 * 2 * 5
    assert count("gradient_mpc") == plans * 4 * 5
    remembers = dataclasses.replace(cfg, stuck_memory=3)
    assert agent.evaluations_per_episode("cem", remembers) == plans * (7 * 2 * 5 + 8)
    starts = dataclasses.replace(cfg, gd_starts=3)  # three descents per plan
    assert agent.evaluations_per_episode("gradient_mpc", starts) == 3 * count("gradient_mpc")
    smoothed = dataclasses.replace(cfg, gd_noise=1.0, gd_noise_samples=5)  # five costs a step
    assert agent.evaluations_per_episode("gradient_mpc", smoothed) == 5 * count("gradient_mpc")
    assert count("level1") == plans * 7 * 2 * 6
    assert count("hierarchical") == plans * (7 * 2 * 2 * 3 + 7 * 2 * 6)
    assert count("hierarchical", "map") == count("level1", "map") == plans * 4 * 6
    assert count("hjepa") == plans * (7 * 2 * 2 + 7 * 2 * 6)  # level 2 steps, then level 1
    every = dataclasses.replace(cfg, level2_every=3)  # level 2 at plans 0 and 3 of 4
    assert agent.evaluations_per_episode("hjepa", every) == 2 * 7 * 2 * 2 + plans * 7 * 2 * 6
    hier = agent.evaluations_per_episode("hierarchical", every)
    assert hier == 2 * 7 * 2 * 2 * 3 + plans * 7 * 2 * 6
    descent = dataclasses.replace(every, level1="gradient_mpc")  # level 1: 4 steps x 6
    assert agent.evaluations_per_episode("hjepa", descent) == 2 * 7 * 2 * 2 + plans * 4 * 6
    assert agent.evaluations_per_episode("level1", descent) == plans * 4 * 6
    search = dataclasses.replace(every, search_directions=5, search_frontier=4, search_depth=3)
    level2 = 5 * (1 + 4 * 3)  # the codes from the start, then from 4 states at each depth
    level2 += 5  # and from the start again: a typical macro step there
    assert agent.evaluations_per_episode("hjepa_search", search) == 2 * level2 + plans * 7 * 2 * 6
    assert count("random") == 0
    with pytest.raises(ValueError, match="planner"):
        agent.evaluations_per_episode("a_star", cfg)


def test_same_environment_draws_only_states_seen_behind_the_same_walls():
    """The critic's "others" come from the offline data: for every row, other rows (or
    itself) whose wall channel is the same, at any of their T + 1 times."""
    env = tr.EnvParams()
    data = tr.random_trajectories(jax.random.PRNGKey(1), env, tr.random_layout, 24, 5)
    half = jax.tree.map(lambda a: a[:12], data.layouts)  # 2 rows per layout: groups of 2
    layouts = jax.tree.map(lambda a: jnp.concatenate([a, a]), half)
    data = data._replace(layouts=layouts)
    rows, times = agent.same_environment(jax.random.PRNGKey(2), data, 50)
    assert rows.shape == times.shape == (24, 50)
    rows, times = np.asarray(rows), np.asarray(times)
    partner = (np.arange(24) + 12) % 24
    assert np.all((rows == np.arange(24)[:, None]) | (rows == partner[:, None]))
    assert np.any(rows == partner[:, None]) and np.any(rows == np.arange(24)[:, None])
    assert times.min() == 0 and times.max() == 5
    with pytest.raises(ValueError, match="same_environment: m"):
        agent.same_environment(jax.random.PRNGKey(2), data, 0)


def test_map_critic_learns_walls_and_its_steps_to_go_go_round_them(tmp_path):
    """cost="map": after a short train_critic, wall pixels cost far more than free ones, and
    value iteration over the learned map makes the pixel just across the wall from the goal
    farther than the door; the planners' cost reads it through Model.goal."""
    cfg = dataclasses.replace(TINY, cost="map", critic_steps=300, critic_batch=16)
    model = agent.Model(cfg.model_config())
    params = model.init(jax.random.PRNGKey(0))
    data = tr.random_trajectories(jax.random.PRNGKey(1), tr.EnvParams(), tr.random_layout, 64, 4)
    loop = hj.train.LoopConfig(steps=cfg.critic_steps, batch_size=cfg.critic_batch)
    critic = agent.train_critic(
        model, params, data, loop, jax.random.PRNGKey(2), learning_rate=cfg.learning_rate
    )
    params["critic"] = critic.state.params
    assert set(params["critic"]) == {"loc", "map", "wall"}
    assert critic.history[-1]["violation"] >= 0
    layout = tr.fixed_layout()  # not a training layout: the conv map is local
    walls = tr.wall_image(layout, tr.EnvParams())
    costs = np.asarray(model.traversal_cost(params["critic"]["map"], walls))
    centre = np.asarray(walls, bool) & (np.arange(65)[None, :] == 32)  # the wall's middle column
    assert costs[centre].mean() > 10 * costs[20:40, 40:50].mean()
    source = np.zeros((65, 65), bool)
    source[50, 36] = True  # right of the wall at x = 32, far below the door at y = 18
    v = np.asarray(hj.critic.value_iteration(jnp.asarray(costs), jnp.asarray(source)))
    assert v[50, 28] > v[18, 32] > v[50, 40]  # behind the wall > the door > beside the goal
    s = model.encode(params["enc"], data.positions[0, 0], layout)
    frame = tr.render_position(data.positions[0, 1], layout, tr.EnvParams())
    goal = model.goal(params, s, frame, "map")
    assert goal.value.shape == (65, 65) and goal.target.shape == (2,)
    np.testing.assert_array_equal(goal.value[tuple(goal.target.astype(int))], 0.0)
    for kind in agent.MAP_COSTS:
        assert np.isfinite(float(model.cost(params, kind, cfg.wall_cost)(s, goal)))
    # The hierarchical subgoal, from an agent left of the wall to a goal right of it: a
    # waypoint `waypoint_moves` pixels down V_g from where the state puts the agent.
    goal_at = jnp.array([52.0, 40.0])
    g = model.encode(params["enc"], goal_at, layout)
    far = model.goal(params, g, tr.render_position(goal_at, layout, tr.EnvParams()), "map")
    s = model.encode(params["enc"], jnp.array([12.0, 40.0]), layout)
    here = np.asarray(model.cell(params["critic"]["loc"], s))
    sub = np.asarray(model.subgoal(params, far, s, cfg.waypoint_moves).target).astype(int)
    assert far.value[tuple(sub)] < far.value[tuple(here)]
    assert np.abs(sub - here).max() == cfg.waypoint_moves  # moved the whole way


def test_locator_reads_rows_as_y_and_columns_as_x():
    """A locator sure of the pixel x = 40, y = 10 (flat index y * 65 + x, as `critic_loss`
    trains it): `locate` and `cell` both give (row, col) = (10, 40), whatever the state."""
    model = agent.Model(TINY.model_config())
    loc = model.locator.init(jax.random.PRNGKey(0), jnp.zeros(model.state_dim))
    bias = jnp.full(65 * 65, -1e4).at[10 * 65 + 40].set(0.0)
    loc = jax.tree_util.tree_map(jnp.zeros_like, loc)
    loc["params"]["dense_0"]["bias"] = bias
    s = jax.random.normal(jax.random.PRNGKey(1), (model.state_dim,))
    np.testing.assert_allclose(model.locate(loc, s), [10.0, 40.0], atol=1e-4)
    np.testing.assert_array_equal(model.cell(loc, s), [10, 40])


def test_waypoints_on_the_wall_map_cross_three_rooms_where_the_straight_line_stalls():
    """The hierarchical planner's decomposition, with the true walls and moves: heading for a
    waypoint 5 pixels down the steps-to-go (`hj.critic.waypoint`) of the wall map dilated by
    2 pixels (as the learned map, which never saw agents that near a wall) reaches the third
    room; heading for the goal in a straight line stops at the first wall."""
    env = tr.EnvParams(max_steps=200)

    def episode(key, toward_waypoint):
        state, _ = tr.reset(key, env, tr.three_rooms_layout(key))
        walls = tr.wall_image(state.layout, env)
        near = jax.lax.reduce_window(walls, 0.0, jax.lax.max, (5, 5), (1, 1), "SAME")
        costs = 1.0 + 100.0 * near
        pixel = lambda q: jnp.round(q[::-1]).astype(jnp.int32)  # (x, y) -> (row, col)
        goal = jnp.zeros((65, 65), bool).at[tuple(pixel(state.goal))].set(True)
        value = hj.critic.value_iteration(costs, goal)

        def act(state, _):
            waypoint = hj.critic.waypoint(value, pixel(state.position), 5)[::-1]
            target = jnp.where(toward_waypoint, waypoint.astype(jnp.float32), state.goal)
            new, _, info = tr.step(state, target - state.position, env)
            return new, info["success"]

        _, success = jax.lax.scan(act, state, None, length=env.max_steps)
        return jnp.any(success)

    keys = jax.random.split(jax.random.PRNGKey(0), 50)
    run = jax.jit(jax.vmap(episode, (0, None)))
    assert float(run(keys, True).mean()) >= 0.95
    assert float(run(keys, False).mean()) <= 0.2


def test_library_model_refuses_bad_arguments_naming_them():
    """hjepa_jax.models.two_rooms: a bad field, an experiment's Config in place of the model's,
    an unknown planner or setting: a ValueError naming the function and the argument."""
    with pytest.raises(ValueError, match="ModelConfig: state='grid', but state must be"):
        agent.ModelConfig(state="grid")
    with pytest.raises(ValueError, match="PlannerConfig: hier_horizon=1, but hier_horizon"):
        agent.PlannerConfig(hier_horizon=1, replan_every=2)
    with pytest.raises(ValueError, match="PlannerConfig: level1='mppi'"):
        agent.PlannerConfig(level1="mppi")
    memories = (("search_memory", -1), ("stuck_memory", 1.5), ("search_avoid", 0.0))
    memories += (("stuck_radius", 0.0), ("stuck_cost", -1.0), ("stuck_still", -1.0))
    memories += (("search_unstick", -1.0),)
    for field, bad in memories:
        with pytest.raises(ValueError, match=f"PlannerConfig: {field}={bad}"):
            agent.PlannerConfig(**{field: bad})
    with pytest.raises(
        ValueError, match="Model: cfg='Config', but cfg must be an instance of ModelConfig"
    ):
        agent.Model(TINY)
    model = agent.Model(TINY.model_config())
    with pytest.raises(ValueError, match="make_planner: name='a_star'"):
        agent.make_planner("a_star", model, {}, TINY.planner_config())
    with pytest.raises(ValueError, match="tasks: setting='four_rooms'"):
        agent.tasks(jax.random.PRNGKey(0), "four_rooms", 2)


def test_ebjepa_planner_preset_sets_their_planning_settings():
    """`--preset ebjepa_planner`: EB-JEPA's MPPI/CEM settings, so both run at equal settings;
    other flags still override it."""
    parser = argparse.ArgumentParser()
    common.add_config_flags(parser, planning_two_rooms.Config)
    args = parser.parse_args(["--preset", "ebjepa_planner", "--episodes", "3"])
    cfg = common.config_from_args(planning_two_rooms.Config, args, quick=False)
    assert (cfg.horizon_plan, cfg.samples, cfg.iterations, cfg.replan_every) == (90, 200, 20, 1)
    assert cfg.episodes == 3 and cfg.max_steps == 200 and cfg.action_norm == 2.45


def test_hjepa_three_rooms_preset_is_quick_mode_in_three_rooms_and_make_reproduce_runs_it():
    """`--preset hjepa_three_rooms`: quick mode's model and critic in the zigzag of three
    rooms, with the learned level 2 (planner hjepa), flat CEM over a few sample counts and flat
    gradient MPC; `make reproduce` runs it beside the quick runs."""
    parser = argparse.ArgumentParser()
    common.add_config_flags(parser, planning_two_rooms.Config)
    cfg = common.config_from_args(
        planning_two_rooms.Config, parser.parse_args(["--preset", "hjepa_three_rooms"]), False
    )
    quick = planning_two_rooms.Config().quick()
    for field in ("state", "embed_dim", "blur", "steps", "critic_steps", "episodes"):
        assert getattr(cfg, field) == getattr(quick, field), field
    assert cfg.train_layout == "three_rooms_fixed" and cfg.settings == ("three_rooms_fixed",)
    assert {"hjepa", "cem", "gradient_mpc"} <= set(cfg.planners) and cfg.compute_samples
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "planning_two_rooms --preset hjepa_three_rooms" in makefile
    four = common.config_from_args(
        planning_two_rooms.Config, parser.parse_args(["--preset", "hjepa_four_rooms"]), False
    )  # the same model and planners in four rooms, and the goal nearer too
    assert four.train_layout == "four_rooms_fixed" and four.settings == ("four_rooms_fixed",)
    assert four.goal_walls == (0, 1, 2) and cfg.goal_walls == ()
    moved = {"train_layout", "settings", "goal_walls"}
    same = lambda c: {k: v for k, v in dataclasses.asdict(c).items() if k not in moved}
    assert same(four) == same(cfg)


def test_hjepa_search_presets_change_only_planning_and_make_reproduce_reuses_the_model():
    """`--preset hjepa_search_three_rooms` (and four rooms): the hjepa presets' models, every
    planner on the representation distance; it differs from them in planning fields only, so
    `make reproduce` plans it from the hjepa_three_rooms run's checkpoints."""
    parser = argparse.ArgumentParser()
    common.add_config_flags(parser, planning_two_rooms.Config)
    preset = lambda name: common.config_from_args(
        planning_two_rooms.Config, parser.parse_args(["--preset", name]), False
    )
    for rooms in ("three", "four"):
        base, search = preset(f"hjepa_{rooms}_rooms"), preset(f"hjepa_search_{rooms}_rooms")
        assert search.plan_cost == "distance" and "hjepa_search" in search.planners
        for name in ("world_model", "critic", "level2"):
            saved = [planning_two_rooms.trained_config(c, name) for c in (search, base)]
            assert saved[0] == saved[1], name
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    lines = [line for line in makefile.splitlines() if "--preset hjepa_" in line]
    assert len({line.split("--ckpt-dir ")[1] for line in lines}) == 1, lines
    assert any("hjepa_search_three_rooms" in line for line in lines)


def test_plan_cost_distance_plans_on_the_representation_distance_whatever_the_critic(tiny_run):
    """plan_cost="distance" on a model trained with the critic plans exactly as a model whose
    cost is the representation distance; a plan_cost not in PLAN_COSTS is refused by name."""
    out, _ = tiny_run
    trained = hj.world_model.load(out / "ckpt")
    assert trained.model.cfg.cost == "critic"
    cfg = agent.PlannerConfig(gd_steps=3, gd_noise=0.0, horizon_plan=4, plan_cost="distance")
    plain = agent.Model(dataclasses.replace(trained.model.cfg, cost="distance"))
    layout = tr.fixed_layout()
    enc = lambda q: trained.model.encode(trained.params["enc"], q, layout)
    s, g, key = enc(jnp.array([10.0, 20.0])), enc(jnp.array([50.0, 32.0])), jax.random.PRNGKey(0)
    plans = []
    for model, pcfg in ((trained.model, cfg), (plain, dataclasses.replace(cfg, plan_cost="model"))):
        plan, warm0 = agent.make_planner("gradient_mpc", model, trained.params, pcfg)
        plans.append(jax.jit(plan)(s, g, key, warm0)[0])
    np.testing.assert_array_equal(plans[0], plans[1])
    model_cost = dataclasses.replace(cfg, plan_cost="model")  # the critic: another plan
    plan, warm0 = agent.make_planner("gradient_mpc", trained.model, trained.params, model_cost)
    assert not np.allclose(jax.jit(plan)(s, g, key, warm0)[0], plans[0])
    with pytest.raises(ValueError, match="plan_cost"):
        agent.PlannerConfig(plan_cost="critic")


def test_clip_norm_scales_long_actions_to_the_bound_and_has_a_gradient_at_zero():
    """EB-JEPA's action clipping: an action longer than the bound is scaled down to it
    (direction kept), a shorter one is unchanged, and gradient MPC's warm start at 0 gets a
    finite gradient (the identity)."""
    out = agent.clip_norm(jnp.array([[3.0, 4.0], [1.0, 1.0]]), 2.45)
    np.testing.assert_allclose(out, [[1.47, 1.96], [1.0, 1.0]], rtol=1e-6)
    grad = jax.grad(lambda a: jnp.sum(agent.clip_norm(a, 2.45) * jnp.array([1.0, 2.0])))
    np.testing.assert_allclose(grad(jnp.zeros(2)), [1.0, 2.0])


def test_compute_panel_draws_each_sweep_with_its_main_run_and_lone_planners_as_points():
    """The success-against-compute panels: a sampling planner's sweep (compute_*) and its main
    run at cfg.samples on one line, sorted by evaluations (or by seconds); a planner outside
    the sweep (gradient MPC) a single point; random (no evaluations) left out."""
    metrics = {
        "compute_success_cem_2": 0.2, "compute_evals_cem_2": 4800,
        "compute_success_cem_4": 0.9, "compute_evals_cem_4": 9600,
        "success_cem_three_rooms_fixed": 0.95, "plan_evals_per_episode_cem": 38400,
        "success_gradient_mpc_three_rooms_fixed": 0.8, "plan_evals_per_episode_gradient_mpc": 4000,
        "success_random_three_rooms_fixed": 0.0, "plan_evals_per_episode_random": 0,
    }  # fmt: skip
    fig, ax = plt.subplots()
    two_rooms_figures.draw_compute(ax, metrics, "three_rooms_fixed", 16)
    lines = {line.get_label(): line.get_data() for line in ax.get_lines()}
    plt.close(fig)
    assert set(lines) == {"cem", "gradient_mpc"}
    assert list(lines["cem"][0]) == [4800, 9600, 38400]
    assert list(lines["cem"][1]) == [0.2, 0.9, 0.95]
    assert list(lines["gradient_mpc"][0]) == [4000] and list(lines["gradient_mpc"][1]) == [0.8]
    seconds = {
        "compute_s_cem_2": 0.02, "compute_s_cem_4": 0.05,
        "plan_s_per_episode_cem_three_rooms_fixed": 0.15,
        "plan_s_per_episode_gradient_mpc_three_rooms_fixed": 0.07,
    }  # fmt: skip
    fig, ax = plt.subplots()
    two_rooms_figures.draw_compute(ax, {**metrics, **seconds}, "three_rooms_fixed", 16, "s")
    lines = {line.get_label(): line.get_data() for line in ax.get_lines()}
    plt.close(fig)
    assert list(lines["cem"][0]) == [0.02, 0.05, 0.15] and list(lines["cem"][1]) == [0.2, 0.9, 0.95]
    assert list(lines["gradient_mpc"][0]) == [0.07]


def test_distance_panel_draws_the_sweep_and_the_runs_own_tasks_at_the_settings_walls():
    """Success against the walls between start and goal: the sweep's points (goal_walls 0, 1)
    and the run's own tasks at the setting's wall count (2 in three rooms), ticked with each
    one's median shortest path; a planner the sweep lacks is NaN there."""
    metrics = {
        "distance_success_hjepa_search_0": 1.0, "distance_success_hjepa_search_1": 0.9,
        "distance_success_cem_0": 0.7, "distance_success_cem_1": 0.3,
        "distance_path_0": 15.0, "distance_path_1": 30.0, "path_median_three_rooms_fixed": 52.0,
        "success_hjepa_search_three_rooms_fixed": 0.8, "success_cem_three_rooms_fixed": 0.0,
        "success_random_three_rooms_fixed": 0.0,
    }  # fmt: skip
    fig, ax = plt.subplots()
    two_rooms_figures.draw_success_by_walls(
        ax, metrics, ("hjepa_search", "cem", "random"), "three_rooms_fixed"
    )
    lines = {line.get_label(): line.get_data() for line in ax.get_lines()}
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    plt.close(fig)
    assert list(lines["hjepa_search"][0]) == [0, 1, 2]
    assert list(lines["hjepa_search"][1]) == [1.0, 0.9, 0.8]
    assert list(lines["cem"][1]) == [0.7, 0.3, 0.0]
    np.testing.assert_array_equal(lines["random"][1], [np.nan, np.nan, 0.0])
    assert ticks == ["0\n15 px", "1\n30 px", "2\n52 px"]


def test_the_model_and_planner_configs_default_to_full_mode():
    """`two_rooms.ModelConfig()` and `PlannerConfig()` hold full mode's settings, the ones the
    experiment runs with no flags, so a user's model built from the defaults is full mode's."""
    cfg = planning_two_rooms.Config()
    assert cfg.model_config() == agent.ModelConfig()
    assert cfg.planner_config() == agent.PlannerConfig()
    assert cfg.quick().model_config() != agent.ModelConfig()
