"""Plain values that cannot work: a hyperparameter out of its range, a seed beyond 32 bits, no epochs.

These read nothing but the values themselves, so they run twice: on the typed config the parser builds, and
before it, on the raw command line (``preflight``), so that a refused value answers before the training stack
is imported. Nothing here may import torch or Lightning.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jsonargparse import Namespace

# The largest base seed: numpy's seeds are 32-bit, and torch's generators overflow on larger ones.
MAX_SEED = 2**32 - 1
# Hyperparameters of the model and generator groups, by name, with the range each must lie in: the
# optimisers and layers would refuse these only when the first fit builds them, after the run has started.
_POSITIVE = ("lr",)
_UNIT = ("dropout", "beta1", "beta2", "ema_decay", "momentum")
_NON_NEGATIVE = ("weight_decay", "aux_weight", "guidance_scale")
_COUNTS = ("width", "latent_dim", "rank", "alpha", "sample_steps", "sample_batch_size")


def value_problems(config: Namespace) -> list[str]:
    """Messages naming each flag whose plain value cannot work: ``--trainer.max_epochs``, ``--loop.seed`` and the
    model's and generator's hyperparameters (learning rate, dropout, betas, widths, ...)."""
    found = [p for p in (_max_epochs(config), _seed(config)) if p]
    for prefix, group in (
        ("--model.", config.get("model")),
        ("--generator.init_args.", config.get("generator.init_args")),
    ):
        found += _hyperparameters(prefix, group)
    return found


def _seed(config: Namespace) -> str | None:
    seed = config.get("loop.seed")
    if isinstance(seed, int) and not 0 <= seed <= MAX_SEED:
        return f"--loop.seed must be an integer in [0, {MAX_SEED}], got {seed}"
    return None


def _hyperparameters(prefix: str, group: Namespace | None) -> list[str]:
    """Messages for each known hyperparameter of a group that lies outside its range."""
    found = []
    for name, value in (vars(group) if group is not None else {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        flag = f"{prefix}{name}"
        if name in _POSITIVE and not (math.isfinite(value) and value > 0):
            found.append(f"{flag} must be a finite number > 0, got {value}")
        elif name in _UNIT and not 0 <= value < 1:
            found.append(f"{flag} must be in [0, 1), got {value}")
        elif name in _NON_NEGATIVE and not (math.isfinite(value) and value >= 0):
            found.append(f"{flag} must be a finite number >= 0, got {value}")
        elif name in _COUNTS and not (isinstance(value, int) and value >= 1):
            found.append(f"{flag} must be an integer >= 1, got {value}")
    return found


def _max_epochs(config: Namespace) -> str | None:
    epochs = config.get("trainer.max_epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < 1:
        return (
            "--trainer.max_epochs must be >= 1 (the epoch cap of every classifier fit; 0 would evaluate "
            f"untrained classifiers), got {epochs}"
        )
    return None
