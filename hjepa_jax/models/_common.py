"""Checks the model configs share (private): widths, counts, and the config's own type; and
the computation dtype a model takes from its parameters."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from hjepa_jax import _checks


def compute_dtype(params) -> jnp.dtype:
    """The dtype a model computes in: that of its floating-point parameters (bfloat16 inside
    a `--dtype bfloat16` step, where `hj.train.mixed_precision` casts them; float32 else).
    A model casts its inputs to it, so that its layers compute in it, and casts the
    representations it takes batch statistics of back to float32.

    >>> compute_dtype({"w": jnp.ones(2, jnp.bfloat16), "n": jnp.arange(2)})
    dtype(bfloat16)
    """
    for leaf in jax.tree_util.tree_leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.dtype(leaf.dtype)
    return jnp.dtype(jnp.float32)


def apply(module, params, *inputs: jax.Array) -> jax.Array:
    """`module.apply(params, *inputs)` computed in `compute_dtype(params)` (the floating
    inputs cast to it), the output cast back to the first input's dtype: inside a `--dtype
    bfloat16` step the layers compute in bfloat16, and the representations the caller takes
    batch statistics of stay float32.

    >>> import flax.linen as nn
    >>> dense = nn.Dense(2)
    >>> w = dense.init(jax.random.PRNGKey(0), jnp.ones(3))
    >>> half = jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), w)
    >>> str(apply(dense, half, jnp.ones(3)).dtype)
    'float32'
    """
    dtype = compute_dtype(params)
    cast = lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
    out = module.apply(params, *(cast(jnp.asarray(x)) for x in inputs))
    return out.astype(jnp.result_type(inputs[0]))


def widths(fn: str, name: str, value: Any, fix: str) -> tuple[int, ...]:
    """`value` as a non-empty tuple of layer widths, each an integer >= 1."""
    if isinstance(value, str) or not isinstance(value, tuple | list) or not value:
        _checks.broken(fn, name, value, "a non-empty tuple of integers >= 1", fix)
    return tuple(_checks.integer(fn, f"{name}[{i}]", v, fix=fix) for i, v in enumerate(value))


def counts(fn: str, config: Any, names: tuple[str, ...], fix: str, minimum: int = 1) -> None:
    """Each field of `config` named in `names` must be an integer >= `minimum`."""
    for name in names:
        _checks.integer(fn, name, getattr(config, name), minimum=minimum, fix=fix)


def positives(fn: str, config: Any, names: tuple[str, ...], fix: str) -> None:
    """Each field of `config` named in `names` must be a finite number > 0."""
    for name in names:
        _checks.positive(fn, name, getattr(config, name), fix=fix)


def non_negatives(fn: str, config: Any, names: tuple[str, ...], fix: str) -> None:
    """Each field of `config` named in `names` must be a finite number >= 0."""
    for name in names:
        _checks.non_negative(fn, name, getattr(config, name), fix=fix)


def config_of(fn: str, name: str, value: Any, cls: type) -> None:
    """`value` must be a `cls` (a model's own config, not an experiment's `Config`)."""
    if not isinstance(value, cls):
        _checks.broken(
            fn,
            name,
            type(value).__name__,
            f"an instance of {cls.__name__}",
            f"build one with {cls.__name__}(...) (an experiment's Config gives it by "
            "Config.model_config())",
        )
