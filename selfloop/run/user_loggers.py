"""The user's own Lightning loggers (``--trainer.logger``: W&B, MLflow, CSV, ...) beside the run's TensorBoard.

Every phase is a fit of its own, so one logger instance receives the curves of every phase; each phase
hands it its metrics under a prefix naming the phase (``gen_001/lenet/train_loss``), so the curves of two
phases never share a key. The per-generation summary (``<arch>/<metric>`` with step = generation) goes
to the same loggers through ``MetricsLog``.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import Logger
from typing_extensions import override


def user_loggers(setting: Any) -> list[Logger]:
    """The configured loggers: a ``Logger`` or a list of them; ``True`` / ``False`` / ``None`` give none
    (the run's own TensorBoard logs are written whatever this says)."""
    if isinstance(setting, Logger):
        return [setting]
    if isinstance(setting, list | tuple):
        return [logger for logger in setting if isinstance(logger, Logger)]
    return []


class PhasePrefixed(Logger):
    """Forwards one phase's logging to a user's logger with every metric key under ``prefix/``.

    Args:
        logger: the user's logger (shared by every phase).
        prefix: the phase, e.g. ``gen_001/lenet``.
    """

    def __init__(self, logger: Logger, prefix: str) -> None:
        super().__init__()
        self.logger = logger
        self.prefix = prefix

    @property
    @override
    def name(self) -> str | None:
        return self.logger.name

    @property
    @override
    def version(self) -> int | str | None:
        return self.logger.version

    @property
    @override
    def save_dir(self) -> str | None:
        return self.logger.save_dir

    @property
    @override
    def log_dir(self) -> str | None:
        return self.logger.log_dir

    @property
    def experiment(self) -> Any:
        return getattr(self.logger, "experiment", None)

    @override
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.logger.log_metrics({f"{self.prefix}/{k}": v for k, v in metrics.items()}, step)

    @override
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self.logger.log_hyperparams(params, *args, **kwargs)

    @override
    def save(self) -> None:
        self.logger.save()

    @override
    def finalize(self, status: str) -> None:
        # Only saved: the user's logger lives on across phases (and W&B runs must not end per phase).
        self.logger.save()
