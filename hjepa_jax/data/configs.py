"""Builder configs named by their settings: one tfds config (and data folder) per setting.

A generator's settings are the fields of its `tfds.core.BuilderConfig` subclass beyond tfds's
own. The registered default keeps its name; any other setting gets a config named
`custom_<sha1 of the settings>` (e.g. `hjepa_two_rooms/custom_1a2b3c4d5e/1.0.0`), so two
settings never share a folder and the same settings always find theirs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import tensorflow_datasets as tfds

__all__ = ["named_config", "settings"]


def settings(config: tfds.core.BuilderConfig) -> dict:
    """The generation settings of `config` (every field but tfds's own), JSON-able."""
    base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    # Through JSON so a tuple and the list it round-trips to compare equal.
    return json.loads(json.dumps({k: v for k, v in out.items() if k not in base}))


def named_config(default: tfds.core.BuilderConfig, **changes):
    """`default` with `changes` applied: `default` itself if they change nothing, else a
    config named by a hash of its settings (described by them)."""
    config = dataclasses.replace(default, **changes)
    if settings(config) == settings(default):
        return default
    text = json.dumps(settings(config), sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return dataclasses.replace(config, name=f"custom_{digest}", description=text)
