"""hjepa_jax.envs.two_rooms against geometry written out here in numpy, not the env's helpers.

Each test runs one batch that mixes the four layout kinds, so each jitted function compiles once.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax.envs import two_rooms as tr

P = tr.EnvParams()
KINDS = tuple(tr.LayoutKind)  # random, fixed, three rooms, four rooms
JIT_STEP = jax.jit(tr.step)


def any_layout(key):
    """A layout of a random kind (random, fixed, three or four rooms)."""
    k_kind, k_layout = jax.random.split(key)
    return tr.make_layout(k_layout, jax.random.randint(k_kind, (), 0, len(KINDS)))


def walls_of(layout):
    """Enabled walls as numpy arrays wall_x [N, K], door_y [N, K], on [N, K]."""
    wx, dy, on = (
        np.atleast_2d(np.asarray(a)) for a in (layout.wall_x, layout.door_y, layout.wall_on)
    )
    return wx.astype(np.float64), dy.astype(np.float64), on


def on_wall(pos, wx, dy, on):
    """pos [N, T, 2]; walls [N, K] -> [N, T] True where the point is on a wall (closed set)."""
    x, y = pos[..., 0, None], pos[..., 1, None]  # [N, T, 1]
    interior = (np.abs(x - wx[:, None]) <= 1.0) & (np.abs(y - dy[:, None]) > 4.0) & on[:, None]
    border = (x <= 4.0) | (x >= 60.0) | (y <= 4.0) | (y >= 60.0)
    return np.any(interior | border, axis=-1)


def passes_wall_outside_door(pos, wx, dy, on):
    """pos [N, T, 2] -> [N, T-1]: the segment pos[t] -> pos[t+1] has a point in a wall's x-range
    [wx - 1, wx + 1] with |y - door_y| > 4 (linear in the segment: check the in-slab ends)."""
    p, q = pos[:, :-1, None, :], pos[:, 1:, None, :]  # [N, T-1, 1, 2]
    w, d = wx[:, None], dy[:, None]  # [N, 1, K]
    dx = q[..., 0] - p[..., 0]
    safe = np.where(dx == 0, 1.0, dx)
    s_a = np.where(dx == 0, 0.0, (w - 1.0 - p[..., 0]) / safe)
    s_b = np.where(dx == 0, 1.0, (w + 1.0 - p[..., 0]) / safe)
    s_lo = np.clip(np.minimum(s_a, s_b), 0.0, 1.0)
    s_hi = np.clip(np.maximum(s_a, s_b), 0.0, 1.0)
    in_slab_x = (np.minimum(p[..., 0], q[..., 0]) <= w + 1.0) & (
        np.maximum(p[..., 0], q[..., 0]) >= w - 1.0
    )
    y_lo = p[..., 1] + s_lo * (q[..., 1] - p[..., 1])
    y_hi = p[..., 1] + s_hi * (q[..., 1] - p[..., 1])
    outside_door = (np.abs(y_lo - d) > 4.0) | (np.abs(y_hi - d) > 4.0)
    return np.any(in_slab_x & outside_door & on[:, None], axis=-1)


def x_side_changes(pos, wx, on):
    """[N, T-1, K]: the step crosses the centre line x = wall_x (either way)."""
    side = np.sign(pos[..., 0, None] - wx[:, None])
    return (side[:, 1:] != side[:, :-1]) & on[:, None]


@functools.partial(jax.jit, static_argnames=("n",))
def reset_many(key, n):
    keys = jax.random.split(key, n)
    layouts = jax.vmap(tr.make_layout)(keys, jnp.arange(n) % len(KINDS))
    return jax.vmap(tr.reset, in_axes=(0, None, 0))(jax.random.split(keys[0], n), P, layouts)


def test_reset_rooms_and_margins():
    n = 4 * 1024
    state, obs = reset_many(jax.random.PRNGKey(0), n)
    assert obs.shape == (n, 65, 65, 2) and obs.dtype == jnp.float32
    wx, dy, on = walls_of(state.layout)
    start, goal = np.asarray(state.position, np.float64), np.asarray(state.goal, np.float64)
    for p in (start, goal):
        assert np.all(p - 4.0 >= 2.6 - 1e-5) and np.all(60.0 - p >= 2.6 - 1e-5)
        dist_to_walls = np.where(on, np.abs(p[:, :1] - wx) - 1.0, np.inf)
        assert np.all(dist_to_walls >= 2.6 - 1e-5)
    first, last = wx[:, 0], np.max(np.where(on, wx, -np.inf), axis=1)
    assert np.all(start[:, 0] < first) and np.all(goal[:, 0] > last)  # room 0 -> last room
    kind = np.asarray(state.layout.kind)
    np.testing.assert_array_equal(kind, np.arange(n) % 4)
    rand, fixed, three, four = (kind == k for k in KINDS)
    assert np.all(wx[fixed, 0] == 32) and np.all(dy[fixed, 0] == 18)
    assert not on[fixed | rand, 1:].any() and not on[three, 2].any() and on[four].all()
    assert np.all(wx[four] == [18, 32, 46]) and np.all(dy[four] == [18, 46, 18])
    assert set(np.unique(wx[rand, 0])) == set(range(20, 45))
    assert set(np.unique(dy[rand, 0])) == set(range(10, 55))
    assert np.all(wx[three, :2] == [22, 43]) and on[three, :2].all()
    assert set(np.unique(dy[three, :2])) == set(range(10, 55))
    assert np.mean(dy[three, 0] != dy[three, 1]) > 0.9  # independent doors
    for k in (rand, fixed, three, four):  # uniform: start and goal cover their rooms
        assert np.ptp(start[k, 1]) > 45 and np.ptp(goal[k, 1]) > 45


def test_reset_puts_the_goal_walls_apart_rooms_away_from_the_same_start():
    """walls_apart k: the goal k walls right of the start's room (0: the same room), the
    layout's wall count or more: the last room, as by default; the start does not move."""
    n = 4 * 64
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    layouts = jax.vmap(tr.make_layout)(keys, jnp.arange(n) % len(KINDS))
    walls = np.asarray(layouts.wall_on).sum(-1)  # 1, 1, 2, 3 by kind
    reset = jax.jit(jax.vmap(tr.reset, in_axes=(0, None, 0, 0)))
    default, _ = jax.vmap(tr.reset, in_axes=(0, None, 0))(keys, P, layouts)
    last = np.asarray(tr.room_index(default.goal, layouts))
    for k in range(tr.MAX_WALLS + 2):
        state, _ = reset(keys, P, layouts, jnp.full(n, k))
        np.testing.assert_array_equal(state.position, default.position)
        rooms = np.asarray(tr.room_index(state.goal, state.layout))
        np.testing.assert_array_equal(rooms, np.where(k >= walls, last, k))
        on_floor = jax.vmap(tr.is_free, in_axes=(0, 0, None))(state.goal, layouts, P)
        assert np.all(on_floor)
        if k >= 3:
            np.testing.assert_array_equal(state.goal, default.goal)
    with pytest.raises(ValueError, match="reset: walls_apart"):
        tr.reset(keys[0], P, tr.fixed_layout(), walls_apart=-1)


@jax.jit
def rollout(states, actions):
    """states: batched EnvState [N]; actions [T, N, 2] -> positions [N, T + 1, 2], hits [N, T]."""
    vstep = jax.vmap(tr.step, in_axes=(0, 0, None))

    def body(s, a):
        s, _, info = vstep(s, a, P)
        return s, (s.position, info["hit_wall"])

    _, (pos, hits) = jax.lax.scan(body, states, actions)
    pos = jnp.concatenate([states.position[None], pos])
    return pos.transpose(1, 0, 2), hits.T


def test_steps_never_enter_or_cross_walls():
    n, t = 512, 200
    k_reset, k_start, k_dir, k_act = jax.random.split(jax.random.PRNGKey(1), 4)
    state, _ = reset_many(k_reset, n)
    # Half the agents start right next to a wall (either side, any height) to stress it.
    wx = state.layout.wall_x[:, 0]
    u = jax.random.uniform(k_start, (n, 2))
    offset = jnp.where(u[:, 0] < 0.5, -1.0, 1.0) * (1.0 + 3.0 * u[:, 0])
    near = jnp.stack([wx + offset, 5.0 + 54.0 * u[:, 1]], -1)
    near_ok = jax.vmap(tr.is_free, in_axes=(0, 0, None))(near, state.layout, P)
    use = (jnp.arange(n) % 2 == 0) & near_ok
    state = state.replace(position=jnp.where(use[:, None], near, state.position))
    # Persistent drift plus noise, magnitudes up to 2x the action bound (so clipping happens).
    drift = jax.random.uniform(k_dir, (n, 2), minval=-3.0, maxval=3.0)
    actions = drift + jax.random.normal(k_act, (t, n, 2)) * 1.5
    pos, hits = rollout(state, actions)
    pos, hits = np.asarray(pos, np.float64), np.asarray(hits)
    wx, dy, on = walls_of(state.layout)
    assert not on_wall(pos, wx, dy, on).any()
    assert not passes_wall_outside_door(pos, wx, dy, on).any()
    assert np.all(np.abs(np.diff(pos, axis=1)) <= 2.45 + 1e-5)
    # The check bites: agents hit walls, and some go through doors.
    assert hits.mean() > 0.05
    crossings = x_side_changes(pos, wx, on)
    assert crossings.sum() > 20 and crossings[..., 1].sum() > 5  # second walls of three rooms too
    # At every crossing of a wall's centre line the agent is in the door.
    nn, tt, kk = np.nonzero(crossings)
    p, q = pos[nn, tt], pos[nn, tt + 1]
    s = (wx[nn, kk] - p[:, 0]) / (q[:, 0] - p[:, 0])
    y_cross = p[:, 1] + s * (q[:, 1] - p[:, 1])
    assert np.all(np.abs(y_cross - dy[nn, kk]) <= 4.0)


def start_state(position, layout=None, goal=(50.0, 30.0)):
    return tr.EnvState(
        position=jnp.asarray(position, jnp.float32),
        goal=jnp.asarray(goal, jnp.float32),
        layout=tr.fixed_layout() if layout is None else layout,
        t=jnp.zeros((), jnp.int32),
    )


def run(state, actions):
    positions = [np.asarray(state.position)]
    for a in actions:
        state, _, info = JIT_STEP(state, jnp.asarray(a, jnp.float32), P)
        positions.append(np.asarray(state.position))
    return state, np.stack(positions), info


def test_door_lets_through_and_wall_stops():
    # Fixed layout: wall x in [31, 33], door rows 14..22.
    state, pos, _ = run(start_state((20.0, 18.0)), [(2.0, 0.0)] * 10)
    assert pos[-1, 0] > 34.0 and tr.room_index(state.position, state.layout) == 3
    # A scripted path from the lower left through the door to the right room.
    path = [(2.0, -2.0)] * 6 + [(2.0, 0.0)] * 6 + [(2.0, 2.0)] * 5
    state, pos, _ = run(start_state((15.0, 30.0)), path)
    assert pos[-1, 0] > 35.0 and np.all(np.abs(pos[:, 1] - 30.0) <= 12.0)
    # Outside the door the wall face stops the agent just before x = 31, and the y move is lost too.
    state, pos, info = run(start_state((25.0, 40.0)), [(2.0, 0.5)] * 5)
    assert 31.0 - 0.01 < pos[-1, 0] < 31.0 and bool(info["hit_wall"])
    np.testing.assert_allclose(pos[-1, 1], 40.0 + 0.25 * (pos[-1, 0] - 25.0), atol=1e-4)
    # From the right, and the border.
    _, pos, _ = run(start_state((40.0, 50.0)), [(-2.0, 0.0)] * 6)
    assert 33.0 < pos[-1, 0] < 33.01
    _, pos, _ = run(start_state((10.0, 10.0)), [(-2.0, -2.0)] * 6)
    assert np.all(pos[-1] > 4.0) and np.all(pos[-1] < 4.01)
    # Inside the door gap, moving up stops at the door's edge y = 14.
    _, pos, _ = run(start_state((32.0, 18.0)), [(0.0, -2.0)] * 4)
    assert 14.0 < pos[-1, 1] < 14.01 and pos[-1, 0] == 32.0
    # Away from a wall one is stuck against, the agent moves freely.
    _, pos, _ = run(start_state((30.995, 40.0)), [(-1.0, 0.0)])
    np.testing.assert_allclose(pos[-1], (29.995, 40.0), atol=1e-5)


def test_actions_are_clipped():
    state = start_state((15.0, 30.0))
    new, _, _ = JIT_STEP(state, jnp.array([10.0, -10.0]), P)
    np.testing.assert_allclose(new.position, (17.45, 27.55), atol=1e-5)
    new, _, _ = JIT_STEP(state, jnp.array([1.0, 5.0]), P)
    np.testing.assert_allclose(new.position, (16.0, 32.45), atol=1e-5)
    assert int(new.t) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_render_blob_and_walls(kind):
    layout = tr.make_layout(jax.random.PRNGKey(3), kind)
    state = start_state((12.3, 40.7), layout=layout, goal=(50.6, 9.2))
    obs = np.asarray(jax.jit(tr.render)(state, P))
    assert obs.shape == (65, 65, 2) and obs.dtype == np.float32
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    row, col = np.unravel_index(np.argmax(obs[..., 0]), (65, 65))
    assert abs(col - 12.3) <= 1.0 and abs(row - 40.7) <= 1.0
    np.testing.assert_allclose(obs[40, 12, 0], np.exp(-(0.3**2 + 0.7**2) / (2 * 1.3**2)), rtol=1e-5)
    goal = np.asarray(jax.jit(tr.goal_obs)(state, P))
    row, col = np.unravel_index(np.argmax(goal[..., 0]), (65, 65))
    assert (row, col) == (9, 51)
    np.testing.assert_array_equal(goal[..., 1], obs[..., 1])
    walls = obs[..., 1]
    assert set(np.unique(walls)) == {0.0, 1.0}
    for line in (4, 60):
        assert walls[line, 4:61].all() and walls[4:61, line].all()
    assert not walls[5:60, 5:60][:, :10].any()  # left of every wall
    wx, dy, on = (np.asarray(a) for a in (layout.wall_x, layout.door_y, layout.wall_on))
    for w, d in zip(wx[on].astype(int), dy[on].astype(int), strict=True):
        rows = np.arange(5, 60)
        door = np.abs(rows - d) <= 4
        for c in (w - 1, w, w + 1):
            np.testing.assert_array_equal(walls[5:60, c], ~door)
        assert not walls[5:60, w - 2].any() and not walls[5:60, w + 2].any()
        assert door.sum() == 9
    assert walls[5:60, 5:60].sum() == 3 * (55 - 9) * on.sum()


def test_success_radius():
    for d, expected in ((4.4, True), (4.6, False)):
        for angle in (0.0, 1.0, 2.5):
            offset = d * np.array([np.cos(angle), np.sin(angle)])
            state = start_state((40.0, 30.0) + offset, goal=(40.0, 30.0))
            assert bool(tr.success(state)) == expected
            assert bool(tr.success(state, P)) == expected
    # step reports it, and a timeout after max_steps.
    state = start_state((43.0, 30.0), goal=(40.0, 30.0)).replace(t=jnp.int32(199))
    _, _, info = JIT_STEP(state, jnp.zeros(2), P)
    assert bool(info["success"]) and bool(info["timeout"]) and bool(info["done"])


def test_jit_and_vmap_agree_with_plain_calls():
    keys = jax.random.split(jax.random.PRNGKey(4), len(KINDS))
    kinds = jnp.asarray(KINDS)
    layouts = jax.vmap(tr.make_layout)(keys, kinds)
    np.testing.assert_array_equal(layouts.kind, kinds)
    actions = jax.random.normal(jax.random.PRNGKey(5), (len(KINDS), 2)) * 3.0

    @jax.jit
    def batched(keys, layouts, actions):
        states, obs = jax.vmap(tr.reset, in_axes=(0, None, 0))(keys, P, layouts)
        return states, obs, jax.vmap(tr.step, in_axes=(0, 0, None))(states, actions, P)

    states, obs, (v_new, v_obs, v_info) = batched(keys, layouts, actions)
    jit_reset = jax.jit(tr.reset)
    for i in range(len(KINDS)):
        layout = jax.tree.map(lambda x, i=i: x[i], layouts)
        s, o = tr.reset(keys[i], P, layout)  # plain (eager) calls
        new, o2, info = tr.step(s, actions[i], P)
        s_jit, o_jit = jit_reset(keys[i], P, layout)
        new_jit, o2_jit, info_jit = JIT_STEP(s, actions[i], P)
        for a, b in (
            (s.position, states.position[i]),
            (s.goal, s_jit.goal),
            (o, obs[i]),
            (o_jit, o),
            (new.position, v_new.position[i]),
            (new_jit.position, new.position),
            (o2, v_obs[i]),
            (o2_jit, o2),
        ):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert bool(info["hit_wall"]) == bool(v_info["hit_wall"][i]) == bool(info_jit["hit_wall"])
    # A second call with other values (and another layout kind) does not retrace.
    once = jax.jit(chex.assert_max_traces(tr.step, n=1))
    for i in range(len(KINDS)):
        once(jax.tree.map(lambda x, i=i: x[i], states), actions[i], P)
    # make_layout matches the constructors.
    np.testing.assert_array_equal(tr.make_layout(keys[0], 1).wall_x, tr.fixed_layout().wall_x)
    np.testing.assert_array_equal(
        tr.make_layout(keys[0], 2).door_y, tr.three_rooms_layout(keys[0]).door_y
    )
    np.testing.assert_array_equal(
        tr.make_layout(keys[0], 0).door_y, tr.random_layout(keys[0]).door_y
    )


def test_random_trajectories():
    n, length = 512, 200  # the shapes of the step test: `rollout` compiles once
    data = tr.random_trajectories(jax.random.PRNGKey(6), P, any_layout, n, length)
    assert data.positions.shape == (n, length + 1, 2)
    assert data.actions.shape == (n, length, 2)
    assert data.layouts.wall_x.shape == (n, tr.MAX_WALLS) and data.aimed.shape == (n,)
    assert 0.24 < float(data.aimed.mean()) < 0.36
    pos = np.asarray(data.positions, np.float64)
    wx, dy, on = walls_of(data.layouts)
    assert not on_wall(pos, wx, dy, on).any()
    assert not passes_wall_outside_door(pos, wx, dy, on).any()
    assert np.all(np.abs(np.asarray(data.actions)) <= 2.45)
    step_len = np.linalg.norm(np.asarray(data.actions), axis=-1)
    assert 0.8 < step_len.mean() < 1.2
    crossed = x_side_changes(pos, wx, on).any(axis=(1, 2))
    aimed, kind = np.asarray(data.aimed), np.asarray(data.layouts.kind)
    assert crossed[aimed].mean() > 0.8
    for k in KINDS:
        assert 0.2 < crossed[kind == k].mean() < 0.9
    # Positions follow the env's own step from the recorded actions.
    states = tr.EnvState(
        position=data.positions[:, 0],
        goal=data.positions[:, -1],
        layout=data.layouts,
        t=jnp.zeros(n, jnp.int32),
    )
    replay, _ = rollout(states, data.actions.transpose(1, 0, 2))
    np.testing.assert_allclose(replay, pos, atol=1e-4)
    # Observations render on demand from positions.
    first = jax.tree.map(lambda x: x[:4], data.layouts)
    obs = jax.jit(jax.vmap(tr.render_position, in_axes=(0, 0, None)))(pos[:4, 0], first, P)
    assert obs.shape == (4, 65, 65, 2)


def test_walled_trajectories_push_into_the_wall_outside_the_door():
    n, length = 256, 16
    data = tr.random_trajectories(
        jax.random.PRNGKey(7), P, tr.fixed_layout, n, length, door_frac=0.0, wall_frac=1.0
    )
    pos, act = np.asarray(data.positions, np.float64), np.asarray(data.actions, np.float64)
    wx, dy, on = walls_of(data.layouts)
    assert not passes_wall_outside_door(pos, wx, dy, on).any()
    assert not x_side_changes(pos, wx, on).any()  # nobody gets through
    moved = np.linalg.norm(np.diff(pos, axis=1), axis=-1)
    blocked = moved < np.linalg.norm(act, axis=-1) - 1e-3
    near_wall = np.abs(pos[:, 1:, 0] - 32.0) < 1.5
    # Most trajectories end pressed against the interior wall, well away from the door.
    assert (blocked & near_wall).any(axis=1).mean() > 0.8
    assert np.abs(pos[:, -1, 1] - 18.0)[near_wall[:, -1]].min() > 4.0 + 1.0
    # Without walled trajectories, such contacts are rare.
    free = tr.random_trajectories(jax.random.PRNGKey(7), P, tr.fixed_layout, n, length)
    fpos = np.asarray(free.positions, np.float64)
    fmoved = np.linalg.norm(np.diff(fpos, axis=1), axis=-1)
    fblocked = fmoved < np.linalg.norm(np.asarray(free.actions), axis=-1) - 1e-3
    assert (fblocked & (np.abs(fpos[:, 1:, 0] - 32.0) < 1.5)).any(axis=1).mean() < 0.3


def test_crossing_walks_pass_a_door_and_leave_the_other_rows_unchanged():
    """EB-JEPA's crossing rows: the open-loop walk started so as to pass a door. Most cross a
    wall (the walls may stop a few first), none through a wall; their steps are the walk's,
    mostly along x; the other rows are drawn as with cross_frac=0."""
    n, length = 512, 16
    key = jax.random.PRNGKey(9)
    draw = functools.partial(
        tr.random_trajectories, key, P, any_layout, n, length, 0.0, 0.0, "open_loop"
    )
    data, plain = draw(cross_frac=0.35), draw()
    crossing = np.asarray(data.aimed)
    assert 0.3 < crossing.mean() < 0.4 and not np.asarray(plain.aimed).any()
    pos, act = np.asarray(data.positions, np.float64), np.asarray(data.actions, np.float64)
    wx, dy, on = walls_of(data.layouts)
    assert not on_wall(pos, wx, dy, on).any()
    assert not passes_wall_outside_door(pos, wx, dy, on).any()
    crossed = x_side_changes(pos, wx, on).any(axis=(1, 2))
    assert crossed[crossing].mean() > 0.85 and crossed[~crossing].mean() < 0.1
    steps = np.linalg.norm(act[crossing], axis=-1)
    assert steps.min() >= 0.2 - 1e-5 and steps.max() <= 1.8 + 1e-5
    net = act[crossing].sum(axis=1)
    assert np.median(np.abs(net[:, 0]) / np.linalg.norm(net, axis=-1)) > 0.8
    np.testing.assert_array_equal(pos[~crossing], np.asarray(plain.positions)[~crossing])
    np.testing.assert_array_equal(act[~crossing], np.asarray(plain.actions)[~crossing])


def test_open_loop_walkers_keep_pushing_into_walls_and_never_pass_them():
    """EB-JEPA's walk: actions ignore the walls, so a stopped walker keeps its heading and
    pushes on; over twice the blocked moves of the "turn" walk, none through a wall."""
    n, length = 512, 16
    blocked = {}
    for policy in tr.POLICIES:
        data = tr.random_trajectories(
            jax.random.PRNGKey(8), P, tr.fixed_layout, n, length, 0.0, 0.0, policy
        )
        pos, act = np.asarray(data.positions, np.float64), np.asarray(data.actions, np.float64)
        wx, dy, on = walls_of(data.layouts)
        assert not on_wall(pos, wx, dy, on).any()
        assert not passes_wall_outside_door(pos, wx, dy, on).any()
        moved = np.linalg.norm(np.diff(pos, axis=1), axis=-1)
        blocked[policy] = np.sum(moved < np.linalg.norm(act, axis=-1) - 1e-3)
        if policy == "open_loop":
            heading = np.arctan2(act[..., 1], act[..., 0])
            turn = np.angle(np.exp(1j * np.diff(heading, axis=1)))
            assert 0.3 < turn.std() < 0.6  # N(0, 0.45^2) steps, also after a hit
            assert 0.2 - 1e-6 <= np.linalg.norm(act, axis=-1).min()
    assert blocked["open_loop"] > 2 * blocked["turn"]
    with pytest.raises(ValueError, match="policy"):
        tr.random_trajectories(jax.random.PRNGKey(8), P, tr.fixed_layout, 2, 3, policy="bounce")


def test_wall_proximity_is_low_in_the_open_and_the_door_centre_high_at_walls():
    lay = tr.fixed_layout()
    cost = jax.jit(lambda p: tr.wall_proximity(tr.render_position(p, lay, P)))
    at = lambda x, y: float(cost(jnp.array([x, y], jnp.float32)))
    assert at(20.0, 40.0) < 1e-6  # the open room
    assert at(32.0, 18.0) < 0.1  # the middle of the door
    assert at(32.0, 21.5) > 0.5  # the door's corner
    assert at(30.0, 25.0) > 0.8 and at(20.0, 5.0) > 0.8  # against the wall and the border
    assert at(29.0, 25.0) > at(27.0, 25.0) > at(24.0, 25.0)  # falls off with the distance
    with pytest.raises(ValueError, match=r"wall_proximity: obs.shape=\(65, 65\)"):
        tr.wall_proximity(jnp.zeros((65, 65)))


def test_fixed_three_rooms_keep_their_doors_at_18_and_46():
    """The zigzag layout: the same doors for every key, open at y = 18 and 46 only, the
    three-room kind (starts in the left room, goals in the right one)."""
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    layouts = jax.vmap(tr.LAYOUTS["three_rooms_fixed"])(keys)
    np.testing.assert_array_equal(layouts.door_y[:, :2], np.tile([18.0, 46.0], (4, 1)))
    assert np.all(np.asarray(layouts.kind) == tr.LayoutKind.THREE_ROOMS)
    layout = tr.fixed_three_rooms_layout()
    free = lambda x, y: bool(tr.is_free(jnp.array([x, y]), layout, P))
    assert free(22.0, 18.0) and free(43.0, 46.0)
    assert not free(22.0, 46.0) and not free(43.0, 18.0)
    with pytest.raises(ValueError, match="door_y"):
        tr.fixed_three_rooms_layout(door_y=(18.0,))


def test_fixed_four_rooms_zigzag_through_three_doors():
    """Four rooms in a row: walls at x = 18, 32, 46 open only at y = 18, 46, 18; rooms 0..3
    left to right."""
    layout = tr.LAYOUTS["four_rooms_fixed"](jax.random.PRNGKey(0))
    assert int(layout.kind) == tr.LayoutKind.FOUR_ROOMS
    free = lambda x, y: bool(tr.is_free(jnp.array([x, y]), layout, P))
    assert free(18.0, 18.0) and free(32.0, 46.0) and free(46.0, 18.0)
    assert not free(18.0, 46.0) and not free(32.0, 18.0) and not free(46.0, 46.0)
    xs = jnp.array([[10.0, 30.0], [25.0, 30.0], [40.0, 30.0], [55.0, 30.0]])
    assert tr.room_index(xs, layout).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"fixed_four_rooms_layout: wall_x"):
        tr.fixed_four_rooms_layout(wall_x=(18, 32))


def test_one_and_two_wall_draws_are_those_of_two_wall_slots():
    """random_position in layouts of one and two walls draws what it drew when a layout held
    two wall slots (dataset version 1.0.0's trajectories): the sums of 64 draws, pinned."""
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    for layout_fn, want in (
        (tr.fixed_layout, (2109.0024, 2047.1798)),
        (tr.fixed_three_rooms_layout, (2051.9041, 2047.1798)),
    ):
        draws = jax.vmap(lambda k, f=layout_fn: tr.random_position(k, f(), P))(keys)
        np.testing.assert_allclose(np.asarray(draws).sum(0), want, rtol=1e-5)
