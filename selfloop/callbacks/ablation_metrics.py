"""Evaluate each trained classifier on segmented images, clean and with the object ablated."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from typing_extensions import override

from selfloop.core.eval_mode import evaluating
from selfloop.data.base import SelfLoopDataModule
from selfloop.data.segmented import SegmentedImages
from selfloop.metrics.ablations import ablate_box_gray, ablate_box_tile, ablate_object_gray

ABLATIONS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "object_gray": lambda images, masks, boxes: ablate_object_gray(images, masks),
    "box_gray": lambda images, masks, boxes: ablate_box_gray(images, boxes),
    "box_tile": lambda images, masks, boxes: ablate_box_tile(images, masks),
}
"""The ablations of Moayeri et al. (2022), by the suffix of their metric names."""

METRIC_KEYS = (
    "acc",
    *(f"acc_{name}" for name in ABLATIONS),
    *(f"drop_{name}" for name in ABLATIONS),
)


class AblationMetrics(Callback):
    """At the end of a classifier fit, measure accuracy on clean and object-ablated images.

    Recorded metrics (all fractions in [0, 1], NaN when the evaluation set is empty):

    ====================  ==============================================================
    ``acc``               accuracy on the clean images
    ``acc_object_gray``   accuracy with every object pixel set to gray
    ``acc_box_gray``      accuracy with the bounding box around all object pixels filled with gray
    ``acc_box_tile``      accuracy with each object's own bounding box filled with the largest
                          object-free region beside it (``ablate_box_tile``)
    ``drop_<ablation>``   ``acc - acc_<ablation>``: the *absolute* drop in accuracy (a large
                          drop means the classifier looks at the object; a small one, that
                          it relies on the spurious context)
    ====================  ==============================================================

    Each rank evaluates a disjoint slice (``rank::world_size``) of the images, so every image is
    counted exactly once; the correct counts are summed across ranks with
    ``trainer.strategy.reduce`` before dividing.

    Args:
        data: the segmented evaluation images (Hard ImageNet: ImageNet's val split with masks).
        record: called on every rank with the metrics dict.
        batch_size: evaluation batch size.

    Example::

        callback = AblationMetrics(dm.segmented_test_set, record=lambda m: print(m["drop_box_tile"]))
        Trainer(callbacks=[callback]).fit(model, dm)
    """

    def __init__(self, data: SegmentedImages, record: Callable[[dict], None], batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data = data
        self.record = record
        self.batch_size = batch_size
        self.result: dict[str, float] | None = None

    @classmethod
    def for_datamodule(
        cls, datamodule: SelfLoopDataModule, record: Callable[[dict], None]
    ) -> AblationMetrics:
        """The ablation evaluation of a data set with object masks (its ``segmented_test_set``)."""
        segmented = datamodule.segmented_test_set  # type: ignore[attr-defined]
        return cls(segmented, record, batch_size=max(datamodule.batch_size, 64))

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = self.count(pl_module, trainer.global_rank, trainer.world_size)
        counts = trainer.strategy.reduce(counts, reduce_op="sum")
        self.result = self.summarize(counts)
        self.record(self.result)

    @torch.no_grad()
    def count(self, model: L.LightningModule, rank: int = 0, world_size: int = 1) -> Tensor:
        """Counts of this rank's slice: ``[images, correct clean, correct per ablation...]`` (int64).

        Ablations are applied to the uint8 images on the model's device; the model maps uint8
        images to logits (``ImageClassifier.forward`` does its own preprocessing).
        """
        with evaluating(model):
            device = model.device
            counts = torch.zeros(2 + len(ABLATIONS), dtype=torch.long, device=device)
            mine = torch.arange(rank, len(self.data), world_size)
            for index in mine.split(self.batch_size):
                images = self.data.images[index].to(device)
                labels = self.data.labels[index].to(device)
                masks = self.data.masks[index].to(device)
                boxes = self.data.boxes[index].to(device)
                counts[0] += len(index)
                counts[1] += (model(images).argmax(1) == labels).sum()
                for i, ablate in enumerate(ABLATIONS.values()):
                    counts[2 + i] += (model(ablate(images, masks, boxes)).argmax(1) == labels).sum()
        return counts

    @staticmethod
    def summarize(counts: Tensor) -> dict[str, float]:
        """The metrics dict from counts summed over ranks (see the class docstring)."""
        total = int(counts[0])
        accs = [float(c) / total if total else float("nan") for c in counts[1:].tolist()]
        result = {"acc": accs[0]}
        for name, acc in zip(ABLATIONS, accs[1:], strict=True):
            result[f"acc_{name}"] = acc
        for name in ABLATIONS:
            result[f"drop_{name}"] = result["acc"] - result[f"acc_{name}"]
        return result

    def evaluate(self, model: L.LightningModule) -> dict[str, float]:
        """The metrics of ``model`` on all images, in this process (no trainer needed)."""
        return self.summarize(self.count(model).cpu())
