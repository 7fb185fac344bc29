"""An experiment's config fields: their types (`Count`, `Positive`, `NonNegative`, `Whole`,
bounds `AtLeast`, tuples that `MayBeEmpty`), the checks of their values (`config`,
`check_fields`) and their command-line flags (`add_config_flags`, `config_from_args`).
`hjepa_jax.experiments.common` re-exports them for the experiments."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Annotated


@dataclasses.dataclass(frozen=True)
class AtLeast:
    """A config field's lower bound, `Annotated[int, AtLeast(1)]`; `strict`: value > low."""

    low: float
    strict: bool = False

    def problem(self, value) -> str | None:
        if value > self.low or (value == self.low and not self.strict):
            return None
        return f"must be {'>' if self.strict else '>='} {self.low:g}, got {value!r}"


class MayBeEmpty:
    """Marks a tuple config field that may be empty, `Annotated[tuple[X, ...], MayBeEmpty()]`
    (on the command line, an empty value: `--name ""`)."""


Count = Annotated[int, AtLeast(1)]  # sizes, steps, numbers of things
Positive = Annotated[float, AtLeast(0.0, strict=True)]  # learning rates, scales, temperatures
NonNegative = Annotated[float, AtLeast(0.0)]  # weights and noise levels that may be 0
Whole = Annotated[int, AtLeast(0)]  # counts where 0 means none (or "only at the end")


def field_problem(kind, value) -> str | None:
    """What is wrong with `value` as a config field of type `kind`, or None.

    `kind` may be `Annotated[T, AtLeast(...)]`, `Literal[...]` (the allowed values) or
    `tuple[X, ...]` (each item checked as X); other types are not checked here.
    """
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(kind)
        if value == () and any(isinstance(extra, MayBeEmpty) for extra in extras):
            return None
        found = field_problem(base, value)
        for extra in extras:
            found = found or (extra.problem(value) if isinstance(extra, AtLeast) else None)
        return found
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        return None if value in allowed else f"must be one of {list(allowed)}, got {value!r}"
    if origin is tuple and len(typing.get_args(kind)) == 2 and typing.get_args(kind)[1] is ...:
        if not value:
            return "must name at least one value"
        for item in value:
            found = field_problem(typing.get_args(kind)[0], item)
            if found:
                return found
    return None


def check_fields(config) -> None:
    """Raise ValueError naming the first field of `config` whose value its type refuses."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    for field in dataclasses.fields(config):
        found = field_problem(hints[field.name], getattr(config, field.name))
        if found:
            raise ValueError(f"{type(config).__module__}.Config: {field.name} {found}")


def config(cls):
    """Make `cls` an experiment config: a frozen dataclass whose fields are checked when it
    is built (types such as `Count`, `Positive`, `Literal[...]`), then its own cross-field
    `check()` if it has one. Either raises ValueError naming the field."""

    def __post_init__(self):
        check_fields(self)
        if hasattr(self, "check"):
            self.check()

    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True)(cls)


def _scalar_type(kind):
    """The plain Python type under `Annotated` / `Literal` (int, float, str or bool)."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _scalar_type(typing.get_args(kind)[0])
    if origin is typing.Literal:
        return type(typing.get_args(kind)[0])
    return kind


def parse_field(name: str, kind):
    """An argparse `type` for a config field: parses the text, then checks the value against
    the field's type (`field_problem`), so a bad flag is refused before anything runs.
    (A `Literal` field parses to its base type; argparse `choices` then checks it.)"""
    if typing.get_origin(kind) is typing.Literal:
        return _scalar_type(kind)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"config field {name}: optional types are not flags")
    base = typing.get_args(kind)[0] if origin is typing.Annotated else kind
    if typing.get_origin(base) is tuple:  # "a,b,c"; "" is () (refused unless MayBeEmpty)
        item = _scalar_type(typing.get_args(base)[0])
        parse = lambda s: tuple(item(v) for v in s.split(",") if s)  # noqa: E731
    elif _scalar_type(kind) is bool:
        parse = lambda s: {"true": True, "false": False, "1": True, "0": False}[s.lower()]  # noqa: E731
    else:
        parse = _scalar_type(kind)

    def parse_and_check(text: str):
        try:
            value = parse(text)
        except KeyError as err:  # argparse reports a ValueError as "invalid <type> value"
            raise ValueError(text) from err
        found = field_problem(kind, value)
        if found:
            raise argparse.ArgumentTypeError(found)
        return value

    parse_and_check.__name__ = getattr(_scalar_type(kind), "__name__", name)
    return parse_and_check


def add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    """One `--field-name` flag per dataclass field, help showing the default, and `--preset`
    where the config has named presets (a class attribute `PRESETS: {name: {field: value}}`).

    Flags default to None so that only the ones given override the (quick or preset) config.
    """
    presets = getattr(config_cls, "PRESETS", {})
    if presets:
        parser.add_argument(
            "--preset",
            choices=sorted(presets),
            default=None,
            help="start from a named set of fields (other flags still override them)",
        )
    defaults = config_cls()
    hints = typing.get_type_hints(config_cls, include_extras=True)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        literal = typing.get_origin(kind) is typing.Literal
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            type=parse_field(field.name, kind),
            choices=typing.get_args(kind) if literal else None,
            default=None,
            help=f"(default {getattr(defaults, field.name)!r})",
        )


def config_from_args(config_cls, args: argparse.Namespace, quick: bool):
    """The default (or quick, or preset) config with the given flags applied.

    Raises:
      ValueError: both --quick and --preset, or a preset whose fields the config refuses.
    """
    preset = getattr(args, "preset", None)
    if preset is not None and quick:
        raise ValueError("--quick and --preset each pick a config; give one")
    config = config_cls().quick() if quick else config_cls()
    if preset is not None:
        config = dataclasses.replace(config, **config_cls.PRESETS[preset])
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_cls)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(config, **given)
