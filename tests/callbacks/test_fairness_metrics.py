"""FairnessMetrics alone, in Lightning's BoringModel style: a tiny module, a real Trainer, exact values."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from selfloop.callbacks.fairness_metrics import FairnessMetrics
from selfloop.data.image_set import ImageSet


class ChannelReader(L.LightningModule):
    """Predicts the class stored in the image's first pixel, except for subgroup-2 images (class 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        label = images[:, 0, 0, 0].long()
        broken = images[:, 1, 0, 0] == 2
        label = torch.where(broken, torch.zeros_like(label), label)
        return nn.functional.one_hot(label, 3).float() + 0 * self.anchor

    def training_step(self, batch, batch_idx):
        return (self.anchor**2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _test_set() -> ImageSet:
    labels = torch.tensor([0, 1, 2] * 6)
    subgroups = torch.tensor([0] * 6 + [1] * 6 + [2] * 6)
    images = torch.zeros(18, 2, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = labels.to(torch.uint8)
    images[:, 1, 0, 0] = subgroups.to(torch.uint8)
    return ImageSet(images, labels, subgroups)


def test_evaluates_the_fitted_module_on_the_test_split_at_fit_end():
    records = []
    callback = FairnessMetrics(
        _test_set(), num_classes=3, num_subgroups=3, record=records.append, batch_size=5
    )
    train = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(ChannelReader(), train_dataloaders=train)

    assert len(records) == 1 and records[0] is callback.result
    result = records[0]
    # Subgroups 0 and 1 are read perfectly; subgroup 2 is always "class 0": right on a third of it.
    assert result["subgroup_acc"] == pytest.approx([1.0, 1.0, 1 / 3])
    assert result["acc"] == pytest.approx(14 / 18)
    assert result["md"] == pytest.approx(2 / 3)
    assert result["meo"] == pytest.approx(1 - (0 + 2 / 3 + 2 / 3) / 3)
    assert result["worst_group_acc"] == 0.0  # the (class 1, subgroup 2) cell
    assert result["num_evaluated"] == 18.0


def test_evaluation_restores_the_training_mode():
    module = ChannelReader().train()
    callback = FairnessMetrics(_test_set(), 3, 3, record=lambda m: None)
    callback.evaluate(module)
    assert module.training
