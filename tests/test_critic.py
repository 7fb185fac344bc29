"""hj.critic: the learned steps-to-go distance, against breadth-first search on two rooms."""

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import hjepa_jax as hj

# A 7 x 11 grid: a wall at column 5 with a door at row 1 (the cell (1, 5) is free).
ROWS, COLS, WALL, DOOR = 7, 11, 5, 1
CELLS = [(r, c) for r in range(ROWS) for c in range(COLS) if c != WALL or r == DOOR]
INDEX = {cell: i for i, cell in enumerate(CELLS)}
MOVES = ((0, 1), (0, -1), (1, 0), (-1, 0))


def neighbours(i):
    r, c = CELLS[i]
    return [INDEX[(r + dr, c + dc)] for dr, dc in MOVES if (r + dr, c + dc) in INDEX]


def bfs(source):
    dist = np.full(len(CELLS), np.inf)
    dist[source], queue = 0, deque([source])
    while queue:
        i = queue.popleft()
        for j in neighbours(i):
            if dist[j] == np.inf:
                dist[j] = dist[i] + 1
                queue.append(j)
    return dist


def random_walks(rng, n, length):
    walks = np.zeros((n, length + 1), int)
    walks[:, 0] = rng.integers(len(CELLS), size=n)
    for t in range(length):
        walks[:, t + 1] = [rng.choice(neighbours(i)) for i in walks[:, t]]
    return walks


@pytest.fixture(scope="module")
def learned():
    """A free embedding per cell (K = 8) trained by hj.critic.loss on random walks."""
    rng = np.random.default_rng(0)
    walks = jnp.asarray(random_walks(rng, 512, 8))
    others = jnp.asarray(rng.integers(len(CELLS), size=(512, 8)))
    psi = 0.01 * jax.random.normal(jax.random.PRNGKey(0), (len(CELLS), 8))
    opt = optax.adam(0.02)

    def objective(psi, idx):
        return hj.critic.loss(psi[walks[idx]], psi[others[idx]], step=1.0, cap=40.0)

    @jax.jit
    def update(psi, state, idx):
        (_, metrics), grad = jax.value_and_grad(objective, has_aux=True)(psi, idx)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(psi, updates), state, metrics

    state = opt.init(psi)
    for step in range(3000):
        idx = jax.random.randint(jax.random.PRNGKey(step), (64,), 0, 512)
        psi, state, metrics = update(psi, state, idx)
    return np.asarray(psi), metrics


def test_distance_broadcasts_and_has_a_finite_gradient_at_zero():
    a, b = jnp.ones((3, 1, 4)), jnp.zeros((5, 4))
    np.testing.assert_allclose(hj.critic.distance(a, b), np.full((3, 5), 2.0), rtol=1e-5)
    grad = jax.grad(lambda x: hj.critic.distance(x, x))(jnp.ones(4))
    assert np.isfinite(np.asarray(grad)).all()


def test_loss_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"critic.loss: psi_other.shape=\(2, 3\)"):
        hj.critic.loss(jnp.zeros((2, 5, 3)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"must have shape \(2, \*, 3\)"):
        hj.critic.loss(jnp.zeros((2, 5, 3)), jnp.zeros((4, 6, 3)))


def test_learned_distance_follows_the_path_through_the_door(learned):
    psi, metrics = learned
    assert float(metrics["violation"]) < 0.05  # consecutive cells stay about one step apart
    goal = INDEX[(6, 6)]  # bottom row, just right of the wall; the door is at the top
    steps = bfs(goal)
    d = np.asarray(hj.critic.distance(psi, psi[goal]))
    straight = np.array([np.hypot(r - 6, c - 6) for r, c in CELLS])
    # The critic ranks cells like the path length, far better than the straight line does.
    assert np.corrcoef(d, steps)[0, 1] > 0.85
    assert np.corrcoef(straight, steps)[0, 1] < 0.75
    # Across the wall from the goal is farther than the door, as it is by the path.
    behind, door = INDEX[(6, 4)], INDEX[(DOOR, WALL)]
    assert steps[behind] > steps[door] and d[behind] > d[door]


# ---------------------------------------------------------------------- value-iteration critic


def dijkstra(cost_map, source):
    """Reference: 8-neighbour shortest paths, a move a -> b costing |ab| (c_a + c_b) / 2."""
    import heapq

    h, w = cost_map.shape
    dist = np.full((h, w), np.inf)
    heap = [(0.0, cell) for cell in zip(*np.nonzero(source), strict=True)]
    for _, cell in heap:
        dist[cell] = 0.0
    while heap:
        d, (r, c) = heapq.heappop(heap)
        if d > dist[r, c]:
            continue
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < h and 0 <= cc < w:
                    nd = d + np.hypot(dr, dc) * (cost_map[r, c] + cost_map[rr, cc]) / 2
                    if nd < dist[rr, cc]:
                        dist[rr, cc] = nd
                        heapq.heappush(heap, (nd, (rr, cc)))
    return dist


def test_value_iteration_matches_dijkstra():
    rng = np.random.default_rng(0)
    cost = rng.uniform(0.5, 2.0, (9, 12)).astype(np.float32)
    cost[:7, 5] = 50.0  # a wall with a gap at the bottom
    source = np.zeros((9, 12), bool)
    source[1, 10] = True
    v = hj.critic.value_iteration(jnp.asarray(cost), jnp.asarray(source))
    np.testing.assert_allclose(v, dijkstra(cost, source), rtol=1e-5)
    # jit and vmap agree with the plain call.
    batched = jax.jit(jax.vmap(hj.critic.value_iteration))(
        jnp.stack([jnp.asarray(cost)] * 2), jnp.stack([jnp.asarray(source)] * 2)
    )
    np.testing.assert_allclose(batched[1], v, rtol=1e-6)


def two_room_value(cell):
    """V of value_iteration over the two-room grid (wall cells cost 100, the door 1), the
    source at cell (row, col)."""
    cost = np.ones((ROWS, COLS), np.float32)
    cost[:, WALL] = 100.0
    cost[DOOR, WALL] = 1.0
    source = np.zeros((ROWS, COLS), bool)
    source[cell] = True
    return hj.critic.value_iteration(jnp.asarray(cost), jnp.asarray(source))


def test_waypoint_descends_the_steps_to_go_through_the_door():
    """Greedy descent over V: on a uniform map it walks the straight line to the source; in
    two rooms every step lowers V, the path passes the door, and it stops on the source."""
    flat = hj.critic.value_iteration(
        jnp.ones((9, 30)), jnp.zeros((9, 30), bool).at[4, 25].set(True)
    )
    np.testing.assert_array_equal(hj.critic.waypoint(flat, jnp.array([4, 5]), 6), [4, 11])
    v = two_room_value((6, 9))
    start = jnp.array([6, 1])
    path = [np.asarray(hj.critic.waypoint(v, start, k)) for k in range(16)]
    values = [float(v[r, c]) for r, c in path]
    assert all(b < a for a, b in zip(values[:-1], values[1:], strict=False) if a > 0)
    assert [DOOR, WALL] in [p.tolist() for p in path]  # through the door, not the wall
    np.testing.assert_array_equal(path[-1], [6, 9])  # at the source, and it stays there
    np.testing.assert_array_equal(hj.critic.waypoint(v, start, 40), [6, 9])
    # jit and vmap agree with the plain call.
    starts = jnp.array([[6, 1], [0, 0]])
    batched = jax.jit(jax.vmap(hj.critic.waypoint, (None, 0, None)), static_argnums=2)(v, starts, 5)
    np.testing.assert_array_equal(batched[0], path[5])
    np.testing.assert_array_equal(batched[1], hj.critic.waypoint(v, starts[1], 5))
    with pytest.raises(ValueError, match=r"waypoint: cell.shape=\(3,\)"):
        hj.critic.waypoint(v, jnp.array([1, 2, 3]), 2)


def test_value_iteration_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"value_iteration: source.shape=\(5, 4\)"):
        hj.critic.value_iteration(jnp.ones((4, 5)), jnp.zeros((5, 4), bool))


def test_learned_cost_map_gives_the_path_through_the_door():
    """Free cost maps trained by map_loss on random-walk visits of the two-room grid: the
    cells walked on cost one unit, the wall (never visited) the cap, and value iteration
    over the map gives the 8-neighbour path length through the door."""
    rng = np.random.default_rng(1)
    walks = random_walks(rng, 256, 8)
    visits = np.zeros((256, ROWS, COLS), np.float32)
    for row, walk in enumerate(walks):
        for i in walk:
            visits[(row, *CELLS[i])] += 1.0
    logits = jnp.zeros((ROWS, COLS))  # one map for the one layout, shared by every row
    # the step size decays to 0, so the map settles at the loss's minimum rather than
    # wandering +-0.2 around it with each minibatch (which left the check at float rounding's mercy)
    steps = 1500
    opt = optax.adam(optax.cosine_decay_schedule(0.05, steps))
    state = opt.init(logits)

    @jax.jit
    def update(logits, state, idx):
        def objective(logits):
            maps = jnp.broadcast_to(jax.nn.softplus(logits), (idx.shape[0], ROWS, COLS))
            return hj.critic.map_loss(maps, jnp.asarray(visits)[idx], cap=20.0)

        (_, metrics), grad = jax.value_and_grad(objective, has_aux=True)(logits)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(logits, updates), state, metrics

    for step in range(steps):
        idx = jax.random.randint(jax.random.PRNGKey(step), (32,), 0, 256)
        logits, state, metrics = update(logits, state, idx)
    cost = np.asarray(jax.nn.softplus(logits))
    free = np.zeros((ROWS, COLS), bool)
    for cell in CELLS:
        free[cell] = True
    assert np.all(np.abs(cost[free] - 1.0) < 0.02) and np.all(cost[~free] > 15.0)
    source = np.zeros((ROWS, COLS), bool)
    source[6, 6] = True  # just right of the wall, far from the door
    v = np.asarray(hj.critic.value_iteration(jnp.asarray(cost), jnp.asarray(source)))
    truth = dijkstra(np.where(free, 1.0, 1e6), source)
    np.testing.assert_allclose(v[free], truth[free], rtol=0.1)
    # just left of the wall: the way round is 11 + steps long
    assert float(hj.critic.map_value(jnp.asarray(v), jnp.array([6.0, 4.0]))) > 9.0


def test_map_value_interpolates_and_its_gradient_heads_for_the_door():
    """V read between cells is the bilinear interpolation of its four neighbours (checked by
    hand); at the cells it is V; its gradient at a point left of the wall, below the door,
    points up toward the door and right, down the steps-to-go; jit and vmap agree."""
    v = two_room_value((4, 9))
    vn = np.asarray(v)
    np.testing.assert_allclose(hj.critic.map_value(v, jnp.array([5.0, 3.0])), vn[5, 3])
    r, c = 4.25, 2.5
    by_hand = 0.75 * 0.5 * (vn[4, 2] + vn[4, 3]) + 0.25 * 0.5 * (vn[5, 2] + vn[5, 3])
    np.testing.assert_allclose(hj.critic.map_value(v, jnp.array([r, c])), by_hand, rtol=1e-5)
    slope = np.asarray(jax.grad(lambda q: hj.critic.map_value(v, q))(jnp.array([4.3, 3.4])))
    assert slope[0] > 0.5 and slope[1] < 0.0  # down V: up (row falls) toward the door, right
    points = jnp.array([[[4.3, 3.4], [0.0, 10.0]], [[6.0, 4.0], [r, c]]])  # [2, 2, 2]
    batched = jax.jit(hj.critic.map_value)(v, points)
    assert batched.shape == (2, 2)
    np.testing.assert_allclose(batched[1, 1], by_hand, rtol=1e-5)
    np.testing.assert_allclose(
        jax.vmap(hj.critic.map_value, (None, 0))(v, points), batched, rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"map_value: point.shape=\(4, 3\)"):
        hj.critic.map_value(v, jnp.ones((4, 3)))
