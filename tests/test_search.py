"""hj.search.breadth_first: search in imagination finds the way through a door that a
straight-line cost hides, checked against a breadth-first search on the grid itself."""

import collections

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hjepa_jax as hj

SIDE, DOOR_Y = 4, 3  # the cells -4..4 square; the wall at x = 0, open at y = DOOR_Y
MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)


def free(x, y):
    return abs(x) <= SIDE and abs(y) <= SIDE and (x != 0 or y == DOOR_Y)


def walk(params, s, b):
    """The coarse model: one cell in the direction b; a move into the wall stays put."""
    del params
    nxt = s + b
    ok = (jnp.max(jnp.abs(nxt)) <= SIDE) & ((nxt[0] != 0) | (nxt[1] == DOOR_Y))
    return jnp.where(ok, nxt, s)


def grid_steps(goal):
    """Steps to `goal` from every free cell, by breadth-first search on the grid."""
    steps, todo = {goal: 0}, collections.deque([goal])
    while todo:
        x, y = todo.popleft()
        for dx, dy in MOVES.astype(int):
            nxt = (x + dx, y + dy)
            if free(*nxt) and nxt not in steps:
                steps[nxt] = steps[(x, y)] + 1
                todo.append(nxt)
    return steps


def search(start, goal, **kw):
    kw = dict(dict(frontier=40, depth=24), **kw)
    return hj.search.breadth_first(
        walk, None, jnp.array(start, jnp.float32), jnp.array(goal, jnp.float32), MOVES, **kw
    )


@pytest.mark.parametrize("start, goal", [((-3, -3), (2, -3)), ((-1, -4), (4, 4))])
def test_the_subgoal_starts_a_shortest_path_through_the_door(start, goal):
    steps = grid_steps(goal)
    plan = search(start, goal)
    assert float(plan.cost) == 0.0  # the goal itself was imagined
    assert int(plan.steps) == steps[start]  # first reached at its breadth-first depth
    sub = tuple(int(v) for v in np.asarray(plan.subgoal))
    assert steps[sub] == steps[start] - 1


def test_a_later_subgoal_step_lies_further_along_the_same_way():
    start, goal = (-3, -3), (2, -3)
    steps = grid_steps(goal)
    for m in (2, 5):
        sub = tuple(int(v) for v in np.asarray(search(start, goal, subgoal_step=m).subgoal))
        assert steps[sub] == steps[start] - m, m
    # beyond the best state's depth: the best state itself
    near = search((1, -3), goal, subgoal_step=3)
    assert int(near.steps) == 1 and near.subgoal.tolist() == [2.0, -3.0]


def test_the_way_to_the_best_state_is_a_shortest_path_through_the_door():
    start, goal = (-2, -4), (3, 1)
    steps = grid_steps(goal)
    plan = search(start, goal)
    way = np.asarray(hj.search.way(plan, depth=24)).astype(int)
    assert len(way) == 24 and int(plan.steps) == steps[start]
    cells = [start] + [tuple(c) for c in way[: int(plan.steps)]]
    assert [steps[c] for c in cells] == list(range(steps[start], -1, -1))
    assert all(tuple(c) == goal for c in way[int(plan.steps) :])  # there from its depth on
    with pytest.raises(ValueError, match="depth"):
        hj.search.way(plan, depth=7)


def test_the_moves_are_the_steps_between_the_way_s_cells():
    start, goal = (-2, -4), (3, 1)
    plan = search(start, goal)
    way = np.concatenate([[start], np.asarray(hj.search.way(plan, depth=24))])
    moves = np.asarray(hj.search.moves(plan, depth=24))
    n = int(plan.steps)
    np.testing.assert_array_equal(MOVES[moves[:n]], np.diff(way, axis=0)[:n])
    assert np.all(moves[n:] == -1)  # the way has ended


def test_a_way_may_start_only_with_an_allowed_move():
    start, goal = (-2, 3), (2, 3)  # level with the door: the shortest way starts +x
    steps = grid_steps(goal)
    assert int(hj.search.moves(search(start, goal), depth=24)[0]) == 0
    plan = search(start, goal, allowed=jnp.array([False, True, True, True]))
    first = int(hj.search.moves(plan, depth=24)[0])
    assert first != 0 and float(plan.cost) == 0.0  # still finds the goal, the long way
    assert int(plan.steps) == steps[start] + 2  # a step aside, and back
    none_back = search(start, goal, allowed=jnp.array([False, False, True, True]))
    assert int(hj.search.moves(none_back, depth=24)[0]) in (2, 3)
    with pytest.raises(ValueError, match="allowed"):
        search(start, goal, allowed=jnp.ones(3, bool))


def leaky(params, s, b):
    """A coarse model that imagines the wall away: only the border stops it."""
    del params
    nxt = s + b
    return jnp.where(jnp.max(jnp.abs(nxt)) <= SIDE, nxt, s)


def test_remembered_stuck_places_steer_a_leaky_search_through_the_door():
    start, goal = (-2, -3), (2, -3)
    ends = jnp.array([start, goal], jnp.float32)
    imagine = lambda **kw: hj.search.breadth_first(
        leaky, None, *ends, MOVES, frontier=40, depth=24, **kw
    )
    assert int(imagine().steps) == 4  # straight through the wall
    face = jnp.array([[-1.0, y] for y in range(-SIDE, SIDE + 1) if y != DOOR_Y])
    # +x left the agent where it was, everywhere along the wall but at the door
    plan = imagine(avoid=(face, jnp.zeros(len(face), jnp.int32)), avoid_radius=0.5)
    assert float(plan.cost) == 0.0 and int(plan.steps) == grid_steps(goal)[start]
    way = np.concatenate([[start], np.asarray(hj.search.way(plan, depth=24))]).astype(int)
    enter = np.argmax(way[:, 0] >= 0)
    assert tuple(way[enter - 1]) == (-1, DOOR_Y) and tuple(way[enter]) == (0, DOOR_Y)


def test_an_empty_or_all_forbidding_memory_changes_nothing():
    start, goal = jnp.array([-3.0, -3.0]), jnp.array([3.0, 3.0])
    plain = search(start, goal)
    empty = (jnp.full((3, 2), jnp.inf), jnp.array([0, -1, 2], jnp.int32))  # no place, no move
    chex.assert_trees_all_equal(search(start, goal, avoid=empty), plain)
    here = (jnp.tile(start, (4, 1)), jnp.arange(4, dtype=jnp.int32))  # every move from s0
    chex.assert_trees_all_equal(search(start, goal, avoid=here, avoid_radius=0.5), plain)


def test_kept_states_are_the_reachable_cells_once_each():
    plan = search((-3, -3), (3, 3))
    kept = np.asarray(plan.states)[np.all(np.isfinite(plan.states), -1)]
    cells = {tuple(c) for c in kept.astype(int)}
    assert len(cells) == len(kept)  # no cell twice: the spacing keeps them apart
    assert cells == set(grid_steps((-3, -3)))  # and every reachable one: 72 of the 81


def test_a_shallow_search_aims_at_the_nearest_imagined_state():
    plan = search((-3, -3), (3, -3), depth=2)
    assert int(plan.steps) == 2 and float(plan.cost) == float(
        np.sum((plan.best - jnp.array([3.0, -3.0])) ** 2)
    )
    assert tuple(np.asarray(plan.best).astype(int)) == (-1, -3)  # in front of the wall


def test_at_the_goal_the_subgoal_is_the_state_itself():
    plan = search((2, 2), (2, 2))
    chex.assert_trees_all_equal(plan.subgoal, jnp.array([2.0, 2.0]))
    assert int(plan.steps) == 0 and float(plan.cost) == 0.0


@pytest.mark.parametrize("avoid", [None, (jnp.array([[-2.0, -3.0]]), jnp.array([0]))])
def test_jit_and_vmap_agree_with_the_plain_function(avoid):
    starts = jnp.array([[-3.0, -3.0], [-1.0, -4.0]])
    goal = jnp.array([3.0, 3.0])
    plain = jax.tree.map(lambda *a: jnp.stack(a), *[search(s, goal, avoid=avoid) for s in starts])
    one = lambda s: hj.search.breadth_first(
        walk, None, s, goal, MOVES, frontier=40, depth=24, avoid=avoid
    )
    chex.assert_trees_all_close(jax.jit(jax.vmap(one))(starts), plain)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(codes=MOVES[:1]), "codes.*fewer than 2"),
        (dict(codes=MOVES[0]), r"codes.*\[K, A2\]"),
        (dict(frontier=0), "frontier"),
        (dict(depth=1.5), "depth"),
        (dict(spacing=0.0), "spacing"),
        (dict(subgoal_step=3), "subgoal_step"),
        (dict(goal=jnp.zeros(3)), "goal"),
        (dict(s0=jnp.zeros((2, 2))), "s0"),
        (dict(avoid=jnp.zeros((1, 2))), "avoid.*pair"),
        (dict(avoid=(jnp.zeros((1, 3)), jnp.zeros(1, jnp.int32))), r"avoid\[0\]"),
        (dict(avoid=(jnp.zeros((1, 2)), jnp.zeros(2, jnp.int32))), r"avoid\[1\]"),
        (
            dict(avoid=(jnp.zeros((1, 2)), jnp.zeros(1, jnp.int32)), avoid_radius=0.0),
            "avoid_radius",
        ),
    ],
)
def test_bad_arguments_are_refused_by_name(kw, match):
    args = dict(s0=jnp.zeros(2), goal=jnp.ones(2), codes=MOVES, frontier=4, depth=2)
    args.update(kw)
    s0, goal, codes = args.pop("s0"), args.pop("goal"), args.pop("codes")
    with pytest.raises(ValueError, match=match):
        hj.search.breadth_first(walk, None, s0, goal, codes, **args)
