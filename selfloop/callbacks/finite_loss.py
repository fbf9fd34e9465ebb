"""Stop a phase whose loss became NaN or infinite, naming where it happened."""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from selfloop.core.errors import NonFiniteLossError


class FiniteLossCheck(Callback):
    """Raise ``NonFiniteLossError`` when a logged loss is not finite.

    The check reads the epoch-aggregated losses the module logged (any metric whose name contains
    ``loss``) at the end of every training epoch and of the fit (a module that logs in its own
    ``on_train_epoch_end`` is seen one epoch later, or at the end of the fit), so it costs no extra
    device synchronisation per step; a NaN in any step makes the epoch mean NaN.

    Args:
        where: names the phase in the message, e.g. ``"generation 2, classifier resnet50"``.
    """

    def __init__(self, where: str) -> None:
        self.where = where

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        for name, value in trainer.callback_metrics.items():
            if "loss" in name and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"{self.where}: {name} is {float(value)} in epoch {trainer.current_epoch}; "
                    "everything produced so far is kept. Lower the learning rate (--model.lr, or the generator's lr) and start a new run"
                )
