"""Argument checks of the public functions: one error type, one message form.

Every check raises, before any JAX tracing,

    ValueError("<function>: <argument>=<value>, but <argument> must be <rule>; <fix>")

(or "<function>: <argument>=<value> <problem>; <fix>" for a problem that is not a rule). A
value traced by `jit`, `vmap` or `grad` (a jax Tracer) has no value at trace time: the value
checks let it through unchecked, except integers that set a shape or a loop length, which
cannot be traced and are refused. Shapes are static, so the shape checks also run under jit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import jax
import numpy as np


def traced(value: Any) -> bool:
    """Whether any leaf of `value` is a jax Tracer (a value that jit, vmap or grad traces)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def show(value: Any) -> str:
    """Short text of an argument: a number's value, an array's dtype[shape], item by item in
    a tuple or list."""
    if isinstance(value, jax.core.Tracer):
        return f"<traced {value.dtype}{list(value.shape)}>"
    if isinstance(value, np.generic | np.ndarray | jax.Array):
        if np.ndim(value) == 0:
            return repr(np.asarray(value).item())
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, tuple | list) and not hasattr(value, "_fields"):
        items = ", ".join(show(v) for v in value) + ("," if len(value) == 1 else "")
        return f"({items})" if isinstance(value, tuple) else f"[{items}]"
    return repr(value)


def fail(fn: str, name: str, value: Any, problem: str, fix: str) -> NoReturn:
    """Raise ValueError("<fn>: <name>=<value> <problem>; <fix>")."""
    raise ValueError(f"{fn}: {name}={show(value)} {problem}; {fix}")


def broken(fn: str, name: str, value: Any, rule: str, fix: str) -> NoReturn:
    """Raise ValueError("<fn>: <name>=<value>, but <name> must be <rule>; <fix>")."""
    raise ValueError(f"{fn}: {name}={show(value)}, but {name} must be {rule}; {fix}")


def integer(
    fn: str,
    name: str,
    value: Any,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    fix: str,
    static: bool = True,
) -> int:
    """`value` as a Python int in [minimum, maximum].

    Python, numpy and concrete JAX integers pass (`operator.index`); bools and floats are
    refused. A traced value is refused if `static` (it sets a shape or a loop length), else
    returned unchecked.
    """
    if traced(value):
        if static:
            problem = "cannot be traced: it sets a shape or a loop length"
            fail(fn, name, value, problem, f"{fix} (a Python int: static under jax.jit)")
        return value
    rule = f"an integer >= {minimum}"
    rule = rule if maximum is None else f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, bool | np.bool_) or np.dtype(getattr(value, "dtype", int)) == bool:
        broken(fn, name, value, rule, fix)
    try:
        number = operator.index(value)
    except TypeError:
        broken(fn, name, value, rule, fix)
    if number < minimum or (maximum is not None and number > maximum):
        broken(fn, name, value, rule, fix)
    return number


def real(
    fn: str,
    name: str,
    value: Any,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    allow_inf: bool = False,
    fix: str,
) -> Any:
    """Check that every entry of a number or array `value` is real, not NaN, finite (unless
    `allow_inf`) and within the bounds given; returns `value` unchanged. Traced: unchecked."""
    if traced(value):
        return value
    parts = [] if allow_inf else ["finite"]
    parts += [f"> {above}"] if above is not None else []
    parts += [f">= {at_least}"] if at_least is not None else []
    parts += [f"<= {at_most}"] if at_most is not None else []
    rule = " and ".join(parts) or "a real number"
    if isinstance(value, bool | np.bool_):
        broken(fn, name, value, rule, fix)
    try:
        x = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        broken(fn, name, value, rule, fix)
    ok = ~np.isnan(x) & (allow_inf | np.isfinite(x))
    ok &= True if above is None else x > above
    ok &= True if at_least is None else x >= at_least
    ok &= True if at_most is None else x <= at_most
    if not np.all(ok):
        broken(fn, name, value, rule, fix)
    return value


def positive(fn: str, name: str, value: Any, fix: str, allow_inf: bool = False) -> Any:
    """`real` with value > 0."""
    return real(fn, name, value, above=0, allow_inf=allow_inf, fix=fix)


def non_negative(fn: str, name: str, value: Any, fix: str) -> Any:
    """`real` with value >= 0."""
    return real(fn, name, value, at_least=0, fix=fix)


def one_of(fn: str, name: str, value: Any, options: Sequence, fix: str) -> None:
    """`value` must be one of `options`."""
    if value not in options:
        broken(fn, name, value, f"one of {tuple(options)}", fix)


def function(fn: str, name: str, value: Any, signature: str) -> None:
    """`value` must be callable, as `signature` describes."""
    if not callable(value):
        broken(fn, name, value, f"a function {signature}", f"pass a function, not {type(value)}")


def shape(
    fn: str, name: str, array: Any, expected: Sequence[int | None], layout: str, fix: str
) -> None:
    """The shape of `array` must be `expected` (None: any size); `layout` names its axes.

    Raises "<fn>: <name>.shape=<got>, but <name> must have shape <expected> (<layout>); <fix>".
    """
    got = tuple(np.shape(array))
    same_rank = len(got) == len(expected)
    if not same_rank or any(e not in (None, g) for g, e in zip(got, expected, strict=True)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected)
        want += ",)" if len(expected) == 1 else ")"
        raise ValueError(
            f"{fn}: {name}.shape={got}, but {name} must have shape {want} ({layout}); {fix}"
        )


def rank(fn: str, name: str, array: Any, ndim: int, layout: str, fix: str) -> None:
    """`array` must have `ndim` axes, `layout` names them (e.g. "[B, D]")."""
    shape(fn, name, array, (None,) * ndim, layout, fix)


def finite(fn: str, name: str, value: Any, fix: str) -> None:
    """The floating-point leaves of a concrete pytree `value` must be free of NaN and inf (other
    leaves are not looked at). Traced: unchecked."""
    if traced(value):
        return
    for leaf in jax.tree_util.tree_leaves(value):
        floating = isinstance(leaf, float) or jax.dtypes.issubdtype(
            getattr(leaf, "dtype", int), np.inexact
        )
        if floating and not np.all(np.isfinite(leaf)):
            fail(fn, name, leaf, "holds NaN or inf", fix)


def model_output(
    fn: str, call: str, model: Callable, args: tuple, expected: Any, fix: str
) -> jax.ShapeDtypeStruct:
    """Trace `model(*args)` abstractly: it must run and return a leaf of `expected`'s shape
    (None: any; () for a scalar). `call` is the text of the call, e.g. "predict(params, s0, a)".
    Returns the output's ShapeDtypeStruct."""
    try:
        out = jax.eval_shape(model, *args)
    except (TypeError, ValueError) as err:
        shapes = jax.tree_util.tree_map(np.shape, args)
        why = str(err).rstrip(". ")
        raise ValueError(f"{fn}: {call} failed for argument shapes {shapes}: {why}; {fix}") from err
    if not isinstance(out, jax.ShapeDtypeStruct):
        got = jax.tree_util.tree_map(lambda s: s.shape, out)
        fail(fn, call, got, "is not one array", fix)
    if expected is not None and out.shape != tuple(expected):
        fail(fn, f"{call}.shape", out.shape, f"differs from the expected {tuple(expected)}", fix)
    return out
