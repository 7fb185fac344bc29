"""Pure-JAX environments: stateless reset/step over frozen state dataclasses, vmap-able over keys.

Environments import nothing else of hjepa_jax.
"""

from hjepa_jax.envs import two_rooms
from hjepa_jax.envs.two_rooms import (
    EnvParams,
    EnvState,
    Layout,
    LayoutKind,
    Trajectories,
    fixed_four_rooms_layout,
    fixed_layout,
    fixed_three_rooms_layout,
    goal_obs,
    is_free,
    make_layout,
    random_layout,
    random_trajectories,
    render,
    render_position,
    reset,
    room_index,
    step,
    success,
    three_rooms_layout,
    wall_image,
)

__all__ = [
    "EnvParams",
    "EnvState",
    "Layout",
    "LayoutKind",
    "Trajectories",
    "fixed_layout",
    "goal_obs",
    "is_free",
    "make_layout",
    "random_layout",
    "random_trajectories",
    "render",
    "render_position",
    "reset",
    "room_index",
    "step",
    "success",
    "three_rooms_layout",
    "fixed_three_rooms_layout",
    "fixed_four_rooms_layout",
    "two_rooms",
    "wall_image",
]
