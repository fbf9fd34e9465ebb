"""FiniteLossCheck alone, in Lightning's BoringModel style: a tiny module that logs its loss, a real Trainer."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from selfloop.callbacks.finite_loss import FiniteLossCheck
from selfloop.core.errors import NonFiniteLossError


class LoggedLoss(L.LightningModule):
    """A one-weight regression that logs ``train_loss``; from step ``bad_step`` on the loss is ``bad``."""

    def __init__(self, bad_step: int | None = None, bad: float = float("nan")) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.bad_step = bad_step
        self.bad = bad

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.layer(x).pow(2).mean()
        if self.bad_step is not None and self.global_step >= self.bad_step:
            loss = loss * self.bad
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(model: LoggedLoss, max_epochs: int = 3) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[FiniteLossCheck("generation 2, classifier lenet")],
    )
    trainer.fit(model, DataLoader(TensorDataset(torch.ones(8, 1)), batch_size=4))
    return trainer


def test_a_finite_loss_lets_the_fit_run_to_its_end():
    trainer = _fit(LoggedLoss())
    assert trainer.current_epoch == 3 and trainer.global_step == 6


@pytest.mark.parametrize(("bad", "shown"), [(float("nan"), "nan"), (float("inf"), "inf")])
def test_a_non_finite_loss_stops_the_fit_at_the_end_of_its_epoch_naming_the_phase(bad, shown):
    # Step 3 is in the second epoch (2 steps per epoch): the check sees the epoch mean at its end.
    with pytest.raises(NonFiniteLossError) as info:
        _fit(LoggedLoss(bad_step=3, bad=bad))
    assert str(info.value).startswith(f"generation 2, classifier lenet: train_loss is {shown} in epoch 1; ")
    assert "Lower the learning rate" in str(info.value)
