"""Which config changes a resumed run accepts, and which it refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfloop.core.errors import SelfLoopError


class ConfigMismatchError(SelfLoopError, ValueError):
    """A run directory is resumed with a config that would change its results."""


# Keys that change how a run is shown or where it is stored, never what it computes.
HARMLESS_KEYS = (
    "config",
    "ckpt_path",
    "weights_only",
    "seed_everything",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.logger",
    "loop.generations",
    "loop.grid_per_class",
    "loop.panel_workers",
    "loop.root",
    "loop.name",
    "loop.run_dir",
    "data.init_args.root",
    "data.init_args.download",
    "data.init_args.num_workers",
)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists and scalars stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def result_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened config minus the harmless keys: everything that shapes the results."""
    return {
        k: _jsonable(v)
        for k, v in flatten(config).items()
        if not any(k == h or k.startswith(f"{h}.") for h in HARMLESS_KEYS)
    }


def incompatible_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every result-shaping key that differs."""
    keys = sorted(set(recorded) | set(current))
    return [
        f"{k}: {recorded.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
        for k in keys
        if recorded.get(k, "<unset>") != current.get(k, "<unset>")
    ]


def _jsonable(value: Any) -> Any:
    # The manifest is JSON: tuples become lists there, so compare them as lists.
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
