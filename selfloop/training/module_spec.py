"""A model parsed from the config but not built: a phase builds a fresh one when it needs it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from jsonargparse import Namespace

T = TypeVar("T")


@dataclass(frozen=True)
class ModuleSpec(Generic[T]):
    """A class and the arguments that build a fresh instance of it.

    Args:
        cls: the class (e.g. ``ImageClassifier`` or a ``ConditionalGenerator`` subclass).
        init_args: its ``__init__`` arguments.
    """

    cls: type[T]
    init_args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Namespace | dict, default_cls: type[T] | None = None) -> ModuleSpec[T]:
        """From a parsed group: ``{class_path, init_args}`` (subclass mode) or the init arguments of ``default_cls``."""
        values = config.as_dict() if isinstance(config, Namespace) else dict(config)
        if "class_path" in values:
            return cls(_import(values["class_path"]), dict(values.get("init_args") or {}))
        if default_cls is None:
            raise TypeError("a group without class_path needs default_cls")
        return cls(default_cls, {k: v for k, v in values.items() if not k.startswith("__")})

    def build(self, **overrides: Any) -> T:
        """A fresh instance, with ``overrides`` replacing init arguments."""
        return self.cls(**{**self.init_args, **overrides})


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)
