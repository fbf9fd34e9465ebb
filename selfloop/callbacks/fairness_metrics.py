"""Evaluate each trained classifier on the subgroup-labelled test split."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from selfloop.core.eval_mode import evaluating
from selfloop.data.base import SelfLoopDataModule
from selfloop.data.image_set import ImageSet
from selfloop.metrics.fairness import GroupFairness


class FairnessMetrics(Callback):
    """At the end of a classifier fit, measure accuracy and bias across hidden subgroups.

    Each rank evaluates a disjoint slice of the test split (no sampler padding, so every test image
    is counted exactly once); ``GroupFairness`` sums the counts across ranks in ``compute``.

    Args:
        test_set: the test split with subgroup ids.
        num_classes: number of classes.
        num_subgroups: number of subgroups.
        record: called on every rank with the metrics dict (see ``fairness_summary``).
        batch_size: evaluation batch size.

    Example::

        callback = FairnessMetrics(dm.test_set, 10, 3, record=lambda m: print(m["md"]))
        Trainer(callbacks=[callback]).fit(model, dm)
    """

    def __init__(
        self,
        test_set: ImageSet,
        num_classes: int,
        num_subgroups: int,
        record: Callable[[dict], None],
        batch_size: int = 512,
    ) -> None:
        self.test_set = test_set
        self.metric = GroupFairness(num_classes, num_subgroups)
        self.record = record
        self.batch_size = batch_size
        self.result: dict | None = None

    @classmethod
    def for_datamodule(
        cls, datamodule: SelfLoopDataModule, record: Callable[[dict], None]
    ) -> FairnessMetrics:
        """The fairness evaluation of a data set on its subgroup-labelled test split."""
        return cls(datamodule.test_set, datamodule.num_classes, datamodule.num_subgroups, record)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Lightning does not move a callback's metric to the device.
        self.metric = self.metric.to(pl_module.device)

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.result = self.evaluate(pl_module, trainer.global_rank, trainer.world_size)
        # Every test image once: the slices are disjoint and unpadded, so their sizes add up.
        mine = len(range(trainer.global_rank, len(self.test_set), trainer.world_size))
        evaluated = trainer.strategy.reduce(
            torch.tensor(float(mine), device=pl_module.device), reduce_op="sum"
        )
        self.result["num_evaluated"] = float(evaluated)
        self.record(self.result)

    @torch.no_grad()
    def evaluate(self, model: L.LightningModule, rank: int = 0, world_size: int = 1) -> dict:
        """Fairness metrics of ``model`` on the test split, summed over ranks."""
        self.metric.reset()
        mine = torch.arange(rank, len(self.test_set), world_size)
        with evaluating(model):
            for index in mine.split(self.batch_size):
                images, labels, subgroups = self.test_set.__getitems__(index)
                device = self.metric.device
                preds = model(images.to(device)).argmax(1)
                self.metric.update(preds, labels.to(device), subgroups.to(device))
        return self.metric.compute()
