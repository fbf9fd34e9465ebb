"""Tell the run's progress how far a fit is, so its ETA can count the rest of a long fit."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from selfloop.console.progress import PhaseProgress
from selfloop.run.phases import Phase, PhaseRunner


def fit_fraction(trainer: L.Trainer, batches_done: int) -> float:
    """The share of a fit done after ``batches_done`` batches of the current epoch, in [0, 1].

    A fit ends at ``max_steps`` (``trainer.global_step`` counts the optimizer steps) or after ``max_epochs``
    of ``num_training_batches``, whichever comes first, so the share is the larger of the two; early
    stopping may end it sooner. 0 when neither limit is known.
    """
    shares = []
    if trainer.max_steps is not None and trainer.max_steps > 0:
        shares.append(trainer.global_step / trainer.max_steps)
    batches = trainer.num_training_batches
    if trainer.max_epochs is not None and trainer.max_epochs > 0 and 0 < batches < math.inf:
        shares.append((trainer.current_epoch + batches_done / batches) / trainer.max_epochs)
    return min(1.0, max(shares, default=0.0))


class FitProgress(Callback):
    """After every training batch, hand ``PhaseProgress.fit_progress`` the share of the fit done (rank 0).

    Args:
        runner: the run's phases; its ``progress`` is told (nothing happens when it is not a
            ``PhaseProgress``).
        phase: the phase this fit belongs to.
    """

    def __init__(self, runner: PhaseRunner, phase: Phase) -> None:
        self.runner = runner
        self.phase = phase

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        progress = self.runner.progress
        if trainer.is_global_zero and isinstance(progress, PhaseProgress):
            fraction = fit_fraction(trainer, batch_idx + 1)
            progress.fit_progress(self.phase, fraction, self.runner.manifest.completed)
