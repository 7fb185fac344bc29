"""Two Rooms: a point agent in a 65 x 65 pixel world split by walls with doors (PLDM, EB-JEPA).

Geometry, in pixel units. A position is (x, y) = (column, row); pixel (row i, column j) is
centred at (x, y) = (j, i). The blocked set is closed:

    border   x <= 4 or x >= 60 or y <= 4 or y >= 60            (border_lo, border_hi)
    wall k   |x - wall_x[k]| <= 1  and  |y - door_y[k]| > 4     (wall_half_width, door_half_height)

so an interior wall is three pixels wide and its door is the nine rows |y - door_y| <= 4. A
layout holds MAX_WALLS = 3 walls sorted by x; a layout of fewer repeats its last wall in the
spare slots and disables them (`wall_on`), so one code path serves two, three and four rooms.
Rooms are numbered by x, room k left of wall k: room 0 left of wall 0 and room 3 right of the
last wall, with the rooms between a wall and its disabled copies empty (two rooms are rooms 0
and 3, three rooms 0, 1 and 3). `reset` puts the start in room 0 (the left room) and the goal
in room 3 (the right room), both uniform over their room at >= min_wall_distance (2.6 px)
from every wall.

Dynamics (`step`): the action a is clipped to [-max_action, max_action] per axis and the agent
moves along the segment p + s a, s in [0, 1]. If the segment touches a blocked box, the move
stops just before the first face it would touch:

    s* = max(0, min_k (s_k - stop_margin / |a_{n_k}|))

with s_k the entry time into box k and n_k the axis of the face it enters through; the agent
ends stop_margin (1e-3 px) in front of that face, on the segment it came along (no sliding, as
in PLDM). Moving through a door gap is free. A final check keeps the old position if rounding
ever put the new one on a wall.

Observation: float32 [size, size, 2] in [0, 1], channels last (ConvEncoder takes [..., H, W, C]):
channel 0 the agent, exp(-|pixel - p|^2 / (2 blob_std^2)) (1 at the exact position); channel 1
the walls: the one-pixel border lines on rows and columns 4 and 60, and the interior walls
(columns wall_x - 1 .. wall_x + 1, rows 4 .. 60) with their door rows open.

Everything is a pure function of explicit arguments; jit it, and vmap it over keys (shapes
and concrete arguments are checked before tracing, with a ValueError naming the argument;
traced values are not: a traced `kind` outside 0..3 is clamped by `lax.switch`):

    params = EnvParams()
    keys = jax.random.split(key, 4096)
    layouts = jax.vmap(random_layout)(keys)
    state, obs = jax.vmap(reset, in_axes=(0, None, 0))(keys, params, layouts)  # [4096, 65, 65, 2]
    state, obs, info = jax.vmap(step, in_axes=(0, 0, None))(state, actions, params)
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hjepa_jax import _checks

__all__ = [
    "MAX_WALLS",
    "LayoutKind",
    "EnvParams",
    "Layout",
    "EnvState",
    "Trajectories",
    "random_layout",
    "fixed_layout",
    "three_rooms_layout",
    "fixed_three_rooms_layout",
    "fixed_four_rooms_layout",
    "make_layout",
    "mixed_layout",
    "LAYOUTS",
    "room_index",
    "is_free",
    "random_position",
    "reset",
    "success",
    "step",
    "wall_image",
    "render_position",
    "wall_proximity",
    "render",
    "goal_obs",
    "height_beside_door",
    "random_trajectories",
    "check_fractions",
    "POLICIES",
]

MAX_WALLS = 3  # wall slots of a Layout: up to four rooms in a row


class LayoutKind(enum.IntEnum):
    """Integer layout kinds (stored in `Layout.kind`; `make_layout` switches on them)."""

    RANDOM = 0  # one wall, wall_x ~ U{20..44}, door_y ~ U{10..54}
    FIXED = 1  # one wall, wall_x = 32, door_y = 18
    THREE_ROOMS = 2  # walls at x = 22 and 43, door_y ~ U{10..54} each
    FOUR_ROOMS = 3  # walls at x = 18, 32 and 46, doors at y = 18, 46 and 18 (a zigzag)


@struct.dataclass
class EnvParams:
    """Constants of the world (pixels). `size` is static (it sets shapes); the rest are leaves."""

    size: int = struct.field(pytree_node=False, default=65)
    border_lo: float = 4.0  # border walls on rows and columns 4 and 60
    border_hi: float = 60.0
    wall_half_width: float = 1.0  # interior wall covers x in [wall_x - 1, wall_x + 1]
    door_half_height: float = 4.0  # door where |y - door_y| <= 4
    max_action: float = 2.45  # per axis
    blob_std: float = 1.3
    success_radius: float = 4.5
    min_wall_distance: float = 2.6  # start and goal at least this far from every wall
    max_steps: int = 200
    stop_margin: float = 1e-3  # a blocked move ends this far in front of the wall face


@struct.dataclass
class Layout:
    """Interior walls, sorted by x. wall_x, door_y: [MAX_WALLS] = [3] float32 (integer-valued);
    wall_on: [3] bool (a layout of fewer walls repeats its last one in the spare slots and
    disables them); kind: [] int32."""

    wall_x: jax.Array
    door_y: jax.Array
    wall_on: jax.Array
    kind: jax.Array


@struct.dataclass
class EnvState:
    """position, goal: [2] (x, y) float32; layout: Layout; t: [] int32 steps taken."""

    position: jax.Array
    goal: jax.Array
    layout: Layout
    t: jax.Array


class Trajectories(NamedTuple):
    """Offline data from `random_trajectories` (leading axis n, one layout per trajectory)."""

    positions: jax.Array  # [n, length + 1, 2]
    actions: jax.Array  # [n, length, 2], already clipped
    layouts: Layout  # leaves [n, MAX_WALLS] (kind [n])
    aimed: jax.Array  # [n] bool: steered through a door, or started so as to cross it


# ----------------------------------------------------------------------------------- layouts


def _walls(wall_x, door_y, kind) -> Layout:
    """The Layout of k <= MAX_WALLS walls (wall_x, door_y: [k], sorted by x): the last wall
    repeated, disabled, in the spare slots."""
    wall_x, door_y = (jnp.atleast_1d(jnp.asarray(v, jnp.float32)) for v in (wall_x, door_y))
    k = wall_x.shape[0]
    spare = MAX_WALLS - k
    return Layout(
        wall_x=jnp.concatenate([wall_x, jnp.repeat(wall_x[-1:], spare)]),
        door_y=jnp.concatenate([door_y, jnp.repeat(door_y[-1:], spare)]),
        wall_on=jnp.array([True] * k + [False] * spare),
        kind=jnp.asarray(kind, jnp.int32),
    )


def _fixed_walls(fn: str, wall_x, door_y, kind, count: int) -> Layout:
    """`_walls` of `count` given walls, their wall_x and door_y each checked to be [count]."""
    fix = f"pass the {count} walls' x (left one first) and their doors' y"
    for name, value in (("wall_x", wall_x), ("door_y", door_y)):
        _checks.shape(fn, name, value, (count,), f"[{count}]", fix)
    return _walls(wall_x, door_y, kind)


def _check_range(fn: str, name: str, bounds) -> None:
    """An inclusive integer range (low, high), low <= high."""
    fix = f"pass {name}=(low, high) with low <= high"
    if not isinstance(bounds, tuple | list) or len(bounds) != 2:
        _checks.broken(fn, name, bounds, "a pair (low, high)", fix)
    if not _checks.traced(bounds) and not bounds[0] <= bounds[1]:
        _checks.fail(fn, name, bounds, "has low > high", fix)


def random_layout(key: jax.Array, wall_x_range=(20, 44), door_y_range=(10, 54)) -> Layout:
    """One wall at wall_x ~ U{20..44} with its door at door_y ~ U{10..54} (inclusive).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> tr.random_layout(key).wall_on.tolist()
      [True, False, False]
    """
    _check_range("random_layout", "wall_x_range", wall_x_range)
    _check_range("random_layout", "door_y_range", door_y_range)
    kx, ky = jax.random.split(key)
    wall_x = jax.random.randint(kx, (), wall_x_range[0], wall_x_range[1] + 1)
    door_y = jax.random.randint(ky, (), door_y_range[0], door_y_range[1] + 1)
    return _walls(wall_x, door_y, LayoutKind.RANDOM)


def fixed_layout(key: jax.Array | None = None, wall_x=32, door_y=18) -> Layout:
    """One wall at x = 32 with its door at y = 18. `key` is unused (the others' signature).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> tr.fixed_layout().wall_x.tolist(), tr.fixed_layout().door_y.tolist()
      ([32.0, 32.0, 32.0], [18.0, 18.0, 18.0])
    """
    del key
    return _walls(wall_x, door_y, LayoutKind.FIXED)


def three_rooms_layout(key: jax.Array, wall_x=(22, 43), door_y_range=(10, 54)) -> Layout:
    """Walls at x = 22 and x = 43, each with its own door_y ~ U{10..54}.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> tr.three_rooms_layout(key).wall_x.tolist()
      [22.0, 43.0, 43.0]
    """
    _check_range("three_rooms_layout", "door_y_range", door_y_range)
    fix = "pass the two walls' x, left one first"
    _checks.shape("three_rooms_layout", "wall_x", wall_x, (2,), "[2]", fix)
    door_y = jax.random.randint(key, (2,), door_y_range[0], door_y_range[1] + 1)
    return _walls(wall_x, door_y, LayoutKind.THREE_ROOMS)


def fixed_three_rooms_layout(key: jax.Array | None = None, wall_x=(22, 43), door_y=(18, 46)):
    """Three rooms whose doors stay put: walls at x = 22 and 43, doors at y = 18 and 46, so the
    way from the left room to the right one zigzags. `key` is unused.

    Example:
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> tr.fixed_three_rooms_layout().door_y.tolist()  # the last slot: a disabled copy
      [18.0, 46.0, 46.0]
    """
    del key
    return _fixed_walls("fixed_three_rooms_layout", wall_x, door_y, LayoutKind.THREE_ROOMS, 2)


def fixed_four_rooms_layout(key: jax.Array | None = None, wall_x=(18, 32, 46), door_y=(18, 46, 18)):
    """Four rooms in a row whose doors stay put: walls at x = 18, 32 and 46, doors at y = 18,
    46 and 18, so the way from the left room to the right one zigzags twice: from `reset`'s
    starts to its goals 83 px on average, 66 px in the three-room zigzag. `key` is unused.

    Example:
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> layout = tr.fixed_four_rooms_layout()
      >>> layout.wall_x.tolist(), layout.wall_on.tolist()
      ([18.0, 32.0, 46.0], [True, True, True])
    """
    del key
    return _fixed_walls("fixed_four_rooms_layout", wall_x, door_y, LayoutKind.FOUR_ROOMS, 3)


def make_layout(key: jax.Array, kind) -> Layout:
    """The layout of an integer `kind` (LayoutKind); `kind` may be traced, e.g. mixed in a vmap
    (a traced kind is not checked: lax.switch clamps it into 0..3).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> int(tr.make_layout(key, tr.LayoutKind.FIXED).kind)
      1
    """
    fix = "pass a LayoutKind: 0 random, 1 fixed, 2 three rooms, 3 four rooms"
    kind = _checks.integer("make_layout", "kind", kind, minimum=0, maximum=3, fix=fix, static=False)
    kinds = (random_layout, fixed_layout, three_rooms_layout, fixed_four_rooms_layout)
    return jax.lax.switch(kind, kinds, key)


def mixed_layout(key: jax.Array) -> Layout:
    """Half random walls, half three rooms (a fair coin per key).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> int(tr.mixed_layout(key).kind) in (tr.LayoutKind.RANDOM, tr.LayoutKind.THREE_ROOMS)
      True
    """
    one_wall = jax.random.bernoulli(jax.random.fold_in(key, 7))
    return make_layout(key, jnp.where(one_wall, LayoutKind.RANDOM, LayoutKind.THREE_ROOMS))


# Layout functions by name (key -> Layout), for configs and datasets.
LAYOUTS: dict[str, Callable[[jax.Array], Layout]] = {
    "random": random_layout,
    "fixed": fixed_layout,
    "three_rooms": three_rooms_layout,
    "three_rooms_fixed": fixed_three_rooms_layout,
    "four_rooms_fixed": fixed_four_rooms_layout,
    "mixed": mixed_layout,
}


# ---------------------------------------------------------------------------------- geometry


def _room_x_bounds(layout: Layout, params: EnvParams) -> tuple[jax.Array, jax.Array]:
    """x-extent (lo, hi: [MAX_WALLS + 1]) of rooms 0..3 between the wall faces; a room between
    a wall and its disabled copy has hi < lo (empty), and room 3 starts at the last wall."""
    hw = params.wall_half_width
    w = layout.wall_x
    lo = jnp.concatenate([jnp.full((1,), params.border_lo, jnp.float32), w + hw])
    hi = jnp.concatenate([w - hw, jnp.full((1,), params.border_hi, jnp.float32)])
    return lo, hi


def _check_position(fn: str, position, want: tuple, name: str = "position") -> None:
    fix = f"pass (x, y) in pixels{', one per point' if len(want) > 1 else ''} (jax.vmap over many)"
    _checks.shape(fn, name, position, want, "[..., 2], (x, y)" if len(want) > 1 else "[2]", fix)


def room_index(position: jax.Array, layout: Layout) -> jax.Array:
    """Room of a position: the number of wall centres left of it, disabled copies included
    (0..3; a one-wall layout gives 0 or 3, three rooms 0, 1 or 3). position [..., 2] with
    layout leaves broadcasting; -> [...] int32.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> tr.room_index(jnp.array([[10.0, 30.0], [50.0, 30.0]]), tr.fixed_layout()).tolist()
      [0, 3]
    """
    _check_position("room_index", position, (*np.shape(position)[:-1], 2))
    x = jnp.asarray(position)[..., 0]
    return jnp.sum(x[..., None] > layout.wall_x, axis=-1).astype(jnp.int32)


def is_free(position: jax.Array, layout: Layout, params: EnvParams) -> jax.Array:
    """True where position [2] is off every wall (strictly inside the border). -> [] bool.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> layout = tr.fixed_layout()  # the wall at x = 32, its door at y = 18
      >>> bool(tr.is_free(jnp.array([32.0, 18.0]), layout, params))
      True
      >>> bool(tr.is_free(jnp.array([32.0, 40.0]), layout, params))
      False
    """
    _check_position("is_free", position, (2,))
    x, y = position[0], position[1]
    inside = (x > params.border_lo) & (x < params.border_hi)
    inside &= (y > params.border_lo) & (y < params.border_hi)
    on_wall = (jnp.abs(x - layout.wall_x) <= params.wall_half_width) & (
        jnp.abs(y - layout.door_y) > params.door_half_height
    )
    return inside & ~jnp.any(on_wall & layout.wall_on)


def _blocked_boxes(layout: Layout, params: EnvParams):
    """The blocked set as closed axis-aligned boxes: lo [8, 2], hi [8, 2], on [8] (4 border
    half-planes, then the part above and below each door)."""
    big = 4.0 * params.size
    b_lo, b_hi = params.border_lo, params.border_hi
    border_lo = jnp.array([[-big, -big], [b_hi, -big], [-big, -big], [-big, b_hi]], jnp.float32)
    border_hi = jnp.array([[b_lo, big], [big, big], [big, b_lo], [big, big]], jnp.float32)
    wx, dy = layout.wall_x, layout.door_y
    hw, dh = params.wall_half_width, params.door_half_height
    far = jnp.full_like(wx, big)
    above_lo, above_hi = jnp.stack([wx - hw, -far], -1), jnp.stack([wx + hw, dy - dh], -1)
    below_lo, below_hi = jnp.stack([wx - hw, dy + dh], -1), jnp.stack([wx + hw, far], -1)
    lo = jnp.concatenate([border_lo, above_lo, below_lo])
    hi = jnp.concatenate([border_hi, above_hi, below_hi])
    on = jnp.concatenate([jnp.ones(4, bool), layout.wall_on, layout.wall_on])
    return lo, hi, on


def _move(position: jax.Array, action: jax.Array, layout: Layout, params: EnvParams):
    """Move along position + s * action, s in [0, 1], stopping before the first wall face.

    Slab test per box: entry time s_in = max over axes of the near-face time, exit s_out = min
    of the far-face times; the segment touches the box iff s_in <= s_out, 0 <= s_in <= 1.
    Returns (new position [2], hit: whether a wall stopped the move)."""
    lo, hi, on = _blocked_boxes(layout, params)
    moving = action != 0.0
    a = jnp.where(moving, action, 1.0)
    t1, t2 = (lo - position) / a, (hi - position) / a
    inside = (position >= lo) & (position <= hi)
    t_near = jnp.where(moving, jnp.minimum(t1, t2), jnp.where(inside, -jnp.inf, jnp.inf))
    t_far = jnp.where(moving, jnp.maximum(t1, t2), jnp.where(inside, jnp.inf, -jnp.inf))
    s_in, s_out = jnp.max(t_near, -1), jnp.min(t_far, -1)
    hit = on & (s_in <= s_out) & (s_in >= 0.0) & (s_in <= 1.0)
    normal_speed = jnp.abs(a)[jnp.argmax(t_near, -1)]  # |a| along each box's entry axis
    s_stop = jnp.min(jnp.where(hit, s_in - params.stop_margin / normal_speed, jnp.inf))
    any_hit = jnp.any(hit)
    s = jnp.where(any_hit, jnp.maximum(s_stop, 0.0), 1.0)
    new = position + s * action
    new = jnp.where(is_free(new, layout, params), new, position)
    return new, any_hit


# ------------------------------------------------------------------------------- environment


def _uniform_in_room(key, x_lo, x_hi, params: EnvParams) -> jax.Array:
    m = params.min_wall_distance
    u = jax.random.uniform(key, (2,))
    lo = jnp.stack([x_lo + m, params.border_lo + m])
    hi = jnp.stack([x_hi - m, params.border_hi - m])
    return (lo + u * (hi - lo)).astype(jnp.float32)


def random_position(key: jax.Array, layout: Layout, params: EnvParams) -> jax.Array:
    """A position [2] uniform over the free floor of every room (a room drawn in proportion
    to its width), at least min_wall_distance from every wall.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> layout = tr.fixed_layout()
      >>> bool(tr.is_free(tr.random_position(key, layout, params), layout, params))
      True
    """
    k_room, k_pos = jax.random.split(key)
    lo, hi = _room_x_bounds(layout, params)
    logits = jnp.log(jnp.maximum(hi - lo - 2 * params.min_wall_distance, 0.0))
    # Up to two walls room 2 is empty: draw among rooms 0, 1, 3, which keeps the draws that
    # layouts of two and three rooms had when a layout held two wall slots.
    three = jnp.array([0, 1, MAX_WALLS])
    room = jnp.where(
        layout.wall_on[2],
        jax.random.categorical(k_room, logits),
        three[jax.random.categorical(k_room, logits[three])],
    )
    return _uniform_in_room(k_pos, lo[room], hi[room], params)


def reset(
    key: jax.Array, params: EnvParams, layout: Layout, walls_apart=MAX_WALLS
) -> tuple[EnvState, jax.Array]:
    """Start uniform in room 0 (left), goal uniform in room 3 (right: past the last wall), both
    at >= min_wall_distance from every wall. -> (state, obs [size, size, 2]).

    walls_apart ([] int): the goal's room lies that many walls right of the start's instead
    (0: the start's room; the layout's wall count or more, the default: the last room). The
    draws are the same whatever it is, so tasks of one key differ only in the goal's room.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> state, obs = tr.reset(key, params, tr.fixed_layout())
      >>> obs.shape, int(tr.room_index(state.position, state.layout))
      ((65, 65, 2), 0)
      >>> state, _ = tr.reset(key, params, tr.fixed_three_rooms_layout(), walls_apart=1)
      >>> int(tr.room_index(state.goal, state.layout))
      1
    """
    fix = "pass one layout (jax.vmap over a batch of them)"
    _checks.shape("reset", "layout.wall_x", layout.wall_x, (MAX_WALLS,), "[3]", fix)
    k_start, k_goal = jax.random.split(key)
    lo, hi = _room_x_bounds(layout, params)
    fix = "pass how many walls lie between the start's room and the goal's (0: the same room)"
    walls_apart = jnp.asarray(
        _checks.integer("reset", "walls_apart", walls_apart, minimum=0, fix=fix, static=False)
    )
    room = jnp.where(walls_apart >= jnp.sum(layout.wall_on), MAX_WALLS, walls_apart)
    state = EnvState(
        position=_uniform_in_room(k_start, lo[0], hi[0], params),
        goal=_uniform_in_room(k_goal, lo[room], hi[room], params),
        layout=layout,
        t=jnp.zeros((), jnp.int32),
    )
    return state, render(state, params)


def success(state: EnvState, params: EnvParams | None = None) -> jax.Array:
    """|position - goal| <= success_radius (4.5 px). -> [] bool.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> state, _ = tr.reset(key, params, tr.fixed_layout())
      >>> bool(tr.success(state)), bool(tr.success(state.replace(position=state.goal)))
      (False, True)
    """
    params = EnvParams() if params is None else params
    return jnp.linalg.norm(state.position - state.goal, axis=-1) <= params.success_radius


def step(state: EnvState, action: jax.Array, params: EnvParams):
    """One move. action [2] = (dx, dy), clipped to +-max_action per axis.

    -> (new_state, obs [size, size, 2], info) with info = {"success", "timeout", "done",
    "hit_wall"} ([] bool each; timeout: t >= max_steps after the step). The env does not stop
    or reset itself: callers mask steps after `done`.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> state, _ = tr.reset(key, params, tr.fixed_layout())
      >>> state, obs, info = tr.step(state, jnp.array([1.0, 0.0]), params)
      >>> int(state.t), sorted(info)
      (1, ['done', 'hit_wall', 'success', 'timeout'])
    """
    _check_position("step", action, (2,), "action")
    action = jnp.clip(action, -params.max_action, params.max_action)
    position, hit = _move(state.position, action, state.layout, params)
    new = state.replace(position=position, t=state.t + 1)
    ok = success(new, params)
    timeout = new.t >= params.max_steps
    info = {"success": ok, "timeout": timeout, "done": ok | timeout, "hit_wall": hit}
    return new, render(new, params), info


# ------------------------------------------------------------------------------ observations


def wall_image(layout: Layout, params: EnvParams) -> jax.Array:
    """Wall channel [size, size] float32: border lines on rows/columns border_lo and border_hi,
    interior wall columns |col - wall_x| <= 1 on rows border_lo..border_hi except the door.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> walls = tr.wall_image(tr.fixed_layout(), params)
      >>> walls.shape, float(walls[40, 32]), float(walls[18, 32])
      ((65, 65), 1.0, 0.0)
    """
    grid = jnp.arange(params.size, dtype=jnp.float32)
    row, col = grid[:, None], grid[None, :]
    b_lo, b_hi = params.border_lo, params.border_hi
    in_rows = (row >= b_lo) & (row <= b_hi)
    in_cols = (col >= b_lo) & (col <= b_hi)
    border = ((row == b_lo) | (row == b_hi)) & in_cols | ((col == b_lo) | (col == b_hi)) & in_rows
    wx, dy = layout.wall_x[:, None, None], layout.door_y[:, None, None]
    walls = (jnp.abs(col - wx) <= params.wall_half_width) & in_rows
    walls &= jnp.abs(row - dy) > params.door_half_height
    walls &= layout.wall_on[:, None, None]
    return (border | jnp.any(walls, axis=0)).astype(jnp.float32)


def render_position(position: jax.Array, layout: Layout, params: EnvParams) -> jax.Array:
    """Observation of the agent at position [2] in layout: [size, size, 2] float32 in [0, 1]
    (channel 0 agent blob, channel 1 walls). Use it to render stored trajectories on demand.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> obs = tr.render_position(jnp.array([20.0, 40.0]), tr.fixed_layout(), params)
      >>> obs.shape, float(obs[40, 20, 0])
      ((65, 65, 2), 1.0)
    """
    _check_position("render_position", position, (2,))
    grid = jnp.arange(params.size, dtype=jnp.float32)
    d2 = (grid[None, :] - position[0]) ** 2 + (grid[:, None] - position[1]) ** 2
    agent = jnp.exp(-d2 / (2.0 * params.blob_std**2))
    return jnp.stack([agent, wall_image(layout, params)], axis=-1)


def wall_proximity(obs: jax.Array, margin: int = 2) -> jax.Array:
    """An intrinsic cost computed from an observation alone (the paper's hard-wired cost
    module): the fraction of the agent blob's mass on wall pixels dilated by `margin`
    pixels, sum(agent * dilate(walls)) / sum(agent), in [0, 1]. About 0.1 in the middle of a
    door, near 1 pressed against a wall; an agent that keeps it low keeps off door corners,
    where a move that clips the wall is stopped. obs: [S, S, 2] (agent, walls). -> [].

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> layout = tr.fixed_layout()
      >>> obs = tr.render_position(jnp.array([20.0, 40.0]), layout, params)  # the open room
      >>> round(float(tr.wall_proximity(obs)), 3)
      0.0
    """
    fix = "pass one observation [S, S, 2] (agent, walls); jax.vmap over a batch"
    _checks.shape("wall_proximity", "obs", obs, (None, None, 2), "[S, S, 2]", fix)
    fix = "pass a dilation margin >= 0 in pixels"
    margin = _checks.integer("wall_proximity", "margin", margin, minimum=0, fix=fix)
    size = 2 * margin + 1
    near = jax.lax.reduce_window(obs[..., 1], -jnp.inf, jax.lax.max, (size, size), (1, 1), "SAME")
    agent = obs[..., 0]
    return jnp.sum(agent * near) / (jnp.sum(agent) + 1e-6)


def render(state: EnvState, params: EnvParams) -> jax.Array:
    """Observation of a state: [size, size, 2] float32, channels last.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> state, _ = tr.reset(key, params, tr.fixed_layout())
      >>> tr.render(state, params).shape
      (65, 65, 2)
    """
    return render_position(state.position, state.layout, params)


def goal_obs(state: EnvState, params: EnvParams) -> jax.Array:
    """Observation of the agent at the goal (the target image for goal-conditioned planning).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> state, _ = tr.reset(key, params, tr.fixed_layout())
      >>> at_goal = state.replace(position=state.goal)
      >>> bool(jnp.allclose(tr.goal_obs(state, params), tr.render(at_goal, params)))
      True
    """
    return render_position(state.goal, state.layout, params)


# ------------------------------------------------------------------------------ offline data


def height_beside_door(
    u: jax.Array, door_y: jax.Array, lo: float, hi: float, params: EnvParams, gap: float = 2.0
) -> jax.Array:
    """A height in [lo, hi] at least `gap` px outside the door centred at door_y (above or
    below it), uniform over the allowed band as u runs over [0, 1). Broadcasts u and door_y.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> float(tr.height_beside_door(jnp.array(0.0), jnp.array(30.0), 5.0, 60.0, params))
      5.0
    """
    _checks.non_negative("height_beside_door", "gap", gap, "pass a gap >= 0 in pixels")
    edge = params.door_half_height + gap
    above = jnp.maximum(door_y - edge - lo, 0.0)
    below = jnp.maximum(hi - door_y - edge, 0.0)
    t = u * (above + below)
    return jnp.where(t < above, lo + t, door_y + edge + t - above)


# The random walks of `random_trajectories`: heading noise std (rad), step length bounds (px).
POLICIES = {"turn": (0.3, (0.1, 2.0)), "open_loop": (0.45, (0.2, 1.8))}


def _step_length(key, shape, short: float, long: float) -> jax.Array:
    """The walks' step lengths: clip(N(1, 0.4^2), short, long), of `shape`."""
    return jnp.clip(1.0 + 0.4 * jax.random.normal(key, shape), short, long)


def _walk(key, heading0, length: int, turn: float, short: float, long: float) -> jax.Array:
    """An open-loop walk's actions [length, 2]: the heading starts at heading0 and turns by
    N(0, turn^2) each step, the step length is `_step_length`'s."""
    k_turn, k_len = jax.random.split(key)
    turns = (turn * jax.random.normal(k_turn, (length,))).at[0].set(0.0)
    heading = heading0 + jnp.cumsum(turns)
    steps = _step_length(k_len, (length,), short, long)
    return steps[:, None] * jnp.stack([jnp.cos(heading), jnp.sin(heading)], -1)


def _door_crossing(key, wall_x, door_y, length: int, params: EnvParams, walk):
    """EB-JEPA's crossing walk: an open-loop walk placed so that, walls aside, it is at a point
    of the door (x uniform over the wall's width, y a normal of std 1.4 px about the door's
    centre, truncated to the opening) after s steps, s uniform in [1, length). Its heading
    starts within 45 degrees of +x (or of -x, half of the time). Returns (start [2], clipped
    to the border, and actions [length, 2])."""
    k_x, k_y, k_s, k_bias, k_flip, k_back, k_on = jax.random.split(key, 7)
    hw, dh, std = params.wall_half_width, params.door_half_height, 1.4
    at_door = jnp.stack(
        [
            wall_x + hw * jax.random.uniform(k_x, minval=-1.0, maxval=1.0),
            door_y + std * jax.random.truncated_normal(k_y, -dh / std, dh / std),
        ]
    )
    s = jax.random.randint(k_s, (), 1, length)
    bias = (jax.random.uniform(k_bias) - 0.5) * jnp.pi / 2  # about +x
    back, on = walk(k_back, bias + jnp.pi, length), walk(k_on, bias, length)
    t = jnp.arange(length)
    # the first s actions walk the backward walk in reverse, then the forward one goes on
    actions = jnp.where(
        (t < s)[:, None],
        -back[jnp.clip(s - 1 - t, 0, length - 1)],
        on[jnp.clip(t - s + 1, 0, length - 1)],
    )
    flip = jax.random.bernoulli(k_flip)  # the same walk run backward: from right to left
    actions = jnp.where(flip, -actions[::-1], actions)
    before = jnp.where(flip, length - s, s)
    start = at_door - jnp.sum(jnp.where((t < before)[:, None], actions, 0.0), axis=0)
    start = jnp.clip(start, params.border_lo + 0.01, params.border_hi - 0.01)
    return start, actions


def _trajectory(
    key,
    params: EnvParams,
    layout_fn,
    length: int,
    door_frac: float,
    wall_frac: float = 0.0,
    policy: str = "turn",
    cross_frac: float = 0.0,
):
    """One random-policy trajectory; see `random_trajectories`."""
    turn, (short, long) = POLICIES[policy]
    keys = jax.random.split(key, 9)
    k_layout, k_aim, k_wall, k_side, k_room, k_pos, k_head, k_steps, k_y = keys
    layout = layout_fn(k_layout)
    hw, m = params.wall_half_width, params.min_wall_distance
    lo, hi = _room_x_bounds(layout, params)
    u_aim = jax.random.uniform(k_aim)
    aimed = u_aim < door_frac
    walled = (u_aim >= door_frac) & (u_aim < door_frac + wall_frac)

    # Aimed: a door k, a direction s (+1: left to right), a start near the door on its near side.
    walls = jnp.sum(layout.wall_on)
    k = jax.random.randint(k_wall, (), 0, walls)
    side = jnp.where(jax.random.bernoulli(k_side), 1.0, -1.0)
    wx, door = layout.wall_x[k], layout.door_y[k]
    # Walled: the same, toward a height of the wall at least 2 px outside its door.
    wall_y = height_beside_door(
        jax.random.uniform(k_y), door, params.border_lo + m, params.border_hi - m, params
    )
    dy = jnp.where(walled, wall_y, door)
    room = jnp.where(side > 0, k, jnp.where(k == walls - 1, MAX_WALLS, k + 1))
    reach = max(0.3 * length, 6.0)  # start within about `reach` px of the door
    near_lo = jnp.where(side > 0, jnp.maximum(lo[room], wx - hw - reach), wx + hw)
    near_hi = jnp.where(side > 0, wx - hw, jnp.minimum(hi[room], wx + hw + reach))
    u = jax.random.uniform(k_pos, (2,))
    y_lo = jnp.maximum(params.border_lo + m, dy - reach)
    y_hi = jnp.minimum(params.border_hi - m, dy + reach)
    start_aimed = jnp.stack(
        [near_lo + m + u[0] * (near_hi - near_lo - 2 * m), y_lo + u[1] * (y_hi - y_lo)]
    )
    start_free = random_position(k_room, layout, params)
    start = jnp.where(aimed | walled, start_aimed, start_free).astype(jnp.float32)
    # Crossing (drawn from keys of their own, so the other rows' draws do not depend on it)
    walk = functools.partial(_walk, turn=turn, short=short, long=long)
    start_cross, cross_actions = _door_crossing(
        jax.random.fold_in(key, 9), wx, door, length, params, walk
    )
    crossing = (u_aim >= door_frac + wall_frac) & (u_aim < door_frac + wall_frac + cross_frac)
    crossing &= is_free(start_cross, layout, params)
    start = jnp.where(crossing, start_cross, start)

    before = jnp.stack([wx - side * (hw + 3.0), dy])  # waypoints in front of and behind the door
    after = jnp.stack([wx + side * (hw + 3.0), dy])
    # 0: to `before`, 1: through the door to `after` (walled: pushing into the wall), 2: free
    phase0 = jnp.where(aimed | walled, 0, 2)

    def body(carry, xs):
        position, heading, phase = carry
        step_key, cross_action = xs
        k_turn, k_len, k_new = jax.random.split(step_key, 3)
        target = jnp.where(phase == 0, before, after)
        to_target = jnp.arctan2(target[1] - position[1], target[0] - position[0])
        noise = jax.random.normal(k_turn)
        heading = jnp.where(phase == 2, heading + turn * noise, to_target + 0.2 * noise)
        length_ = _step_length(k_len, (), short, long)
        action = length_ * jnp.stack([jnp.cos(heading), jnp.sin(heading)])
        action = jnp.where(crossing, cross_action, action)
        action = jnp.clip(action, -params.max_action, params.max_action)
        new, hit = _move(position, action, layout, params)
        if policy == "turn":  # a free walker that hits a wall turns to a fresh random heading
            fresh = jax.random.uniform(k_new, minval=-jnp.pi, maxval=jnp.pi)
            heading = jnp.where(hit & (phase == 2), fresh, heading)
        phase = jnp.where((phase == 0) & (jnp.linalg.norm(new - before) < 2.0), 1, phase)
        phase = jnp.where((phase == 1) & (side * (new[0] - wx) > hw + 2.0), 2, phase)
        return (new, heading, phase), (new, action)

    heading0 = jax.random.uniform(k_head, minval=-jnp.pi, maxval=jnp.pi)
    carry = (start, heading0, phase0)
    xs = (jax.random.split(k_steps, length), cross_actions)
    _, (positions, actions) = jax.lax.scan(body, carry, xs)
    positions = jnp.concatenate([start[None], positions])
    return positions, actions, layout, aimed | crossing


def random_trajectories(
    key: jax.Array,
    params: EnvParams,
    layout_fn: Callable[[jax.Array], Layout],
    n: int,
    length: int,
    door_frac: float = 0.3,
    wall_frac: float = 0.0,
    policy: str = "turn",
    cross_frac: float = 0.0,
) -> Trajectories:
    """n random-policy trajectories of `length` steps, each in its own layout_fn(key) layout.

    Policy "turn": the heading persists and turns a little each step (heading += N(0, 0.3^2)),
    the step length is clip(N(1, 0.4^2), 0.1, 2) px, and a walker that hits a wall takes a
    fresh random heading. Policy "open_loop", EB-JEPA's walk: heading += N(0, 0.45^2) (about
    its von Mises noise of concentration 5), step length clip(N(1, 0.4^2), 0.2, 1.8) px, and
    the actions never look at the walls: a walker stopped by a wall keeps pushing into it
    until its heading turns away, so the data holds several blocked moves per contact (the
    ones that teach a world model where the walls are). A fraction door_frac of the
    trajectories is aimed: it starts within ~0.3 * length px of a random door, on a random
    side, heads (noise N(0, 0.2^2) about the bearing) to a point 4 px in front of the door,
    then through it to 4 px behind, then walks freely. A fraction wall_frac is walled: the
    same toward a height of the wall at least 2 px outside the door, so it reaches the wall
    and keeps pushing into it. Aimed and walled trajectories steer by the door's coordinates:
    leave both at 0 for reward-free data. A fraction cross_frac is crossing, as 35% of
    EB-JEPA's data: the free walk's own open-loop actions (its heading starting within 45
    degrees of +x or -x), but started where, walls aside, the walk passes a point of a random
    door after s steps (s uniform in [1, length)); a start that falls on a wall leaves the row
    a free walk. The actions never look at the walls; only the start is placed by the door's
    coordinates, as every start is placed on the floor by the walls'. The walls may still stop
    such a walk before the door. Moves go through the same collision rule as `step`.
    Observations are not stored: render them on demand with
    `jax.vmap(render_position)(positions, layouts, ...)`.

    Args:
      key: PRNG key.
      params: EnvParams.
      layout_fn: key -> Layout, e.g. random_layout, fixed_layout, three_rooms_layout (static).
      n, length: static ints.
      door_frac: fraction of aimed trajectories.
      wall_frac: fraction of walled trajectories.
      policy: the free walker's, "turn" or "open_loop" (static).
      cross_frac: fraction of crossing trajectories (door_frac + wall_frac + cross_frac <= 1).

    Returns:
      Trajectories(positions [n, length + 1, 2], actions [n, length, 2], layouts ([n, MAX_WALLS]
      leaves), aimed [n] bool: aimed or crossing).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from hjepa_jax.envs import two_rooms as tr
      >>> params, key = tr.EnvParams(), jax.random.PRNGKey(0)
      >>> data = tr.random_trajectories(key, params, tr.fixed_layout, 4, 10)
      >>> data.positions.shape, data.actions.shape, data.aimed.shape
      ((4, 11, 2), (4, 10, 2), (4,))
    """
    fn = "random_trajectories"
    _checks.function(fn, "layout_fn", layout_fn, "(key) -> Layout")
    n = _checks.integer(fn, "n", n, fix="pass the number of trajectories, e.g. n=1000")
    length = _checks.integer(fn, "length", length, fix="pass the steps per trajectory")
    fracs = check_fractions(fn, door_frac, wall_frac, cross_frac)
    _checks.one_of(fn, "policy", policy, tuple(POLICIES), "pick one of them")
    return _random_trajectories(key, params, layout_fn, n, length, fracs, policy)


def check_fractions(fn: str, door_frac, wall_frac, cross_frac) -> tuple:
    """The shares of `random_trajectories`' kinds of rows, each in [0, 1] with a sum <= 1,
    else a ValueError naming `fn` and the share; returns (door_frac, wall_frac, cross_frac).
    The data builder and the planning experiment check their settings with it."""
    fix = "pass fractions with door_frac + wall_frac + cross_frac <= 1"
    fracs = {"door_frac": door_frac, "wall_frac": wall_frac, "cross_frac": cross_frac}
    for name, frac in fracs.items():
        _checks.real(fn, name, frac, at_least=0, at_most=1, fix=fix)
    total = door_frac + wall_frac + cross_frac
    if not _checks.traced(tuple(fracs.values())) and total > 1:
        _checks.fail(fn, "door_frac + wall_frac + cross_frac", total, "is above 1", fix)
    return tuple(fracs.values())


@functools.partial(jax.jit, static_argnames=("layout_fn", "n", "length", "policy"))
def _random_trajectories(
    key, params: EnvParams, layout_fn, n: int, length: int, fracs, policy
) -> Trajectories:
    keys = jax.random.split(key, n)
    one = functools.partial(
        _trajectory,
        params=params,
        layout_fn=layout_fn,
        length=length,
        door_frac=fracs[0],
        wall_frac=fracs[1],
        policy=policy,
        cross_frac=fracs[2],
    )
    positions, actions, layouts, aimed = jax.vmap(one)(keys)
    return Trajectories(positions, actions, layouts, aimed)
