"""The models of the experiments, one module per family, reusable outside them.

    from hjepa_jax.models import ellipse
    model = ellipse.EllipseModel(ellipse.EllipseConfig())

Each model takes its own small frozen config dataclass (an experiment's `Config` builds it
with `Config.model_config()`). Importing this package imports none of its modules: each is
imported when first named, `hjepa_jax.models.NAME` or `from hjepa_jax.models import NAME`.
"""

from __future__ import annotations

import importlib

__all__ = ["digits_jepa", "ellipse", "ijepa", "methods", "moving_shapes", "two_rooms"]


def __getattr__(name: str):
    """A module of `__all__`, imported on first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
