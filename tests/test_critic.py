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
    with pytest.raises(AssertionError):
        hj.critic.loss(jnp.zeros((2, 5, 3)), jnp.zeros((2, 3)))
    with pytest.raises(AssertionError):
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
