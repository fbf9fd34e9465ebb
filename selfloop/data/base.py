"""The LightningDataModule base: real data loaded once, train set rebuilt from real + queue every phase."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from selfloop.data.device_batches import DeviceBatches
from selfloop.data.image_set import ImageSet, collate_batch


@dataclass(frozen=True)
class RealSplits:
    """The real data, never modified by the loop."""

    train: ImageSet
    val: ImageSet
    test: ImageSet


class SelfLoopDataModule(L.LightningDataModule, ABC):
    """A data set of the self-consuming loop.

    Subclasses say what the data is (``num_classes``, ``num_subgroups``, ``channels``, ``image_size``,
    names) and load it in ``load_real``. This class keeps the real splits in memory as uint8 tensors,
    and at every ``setup`` rebuilds the train set as the real train split plus the generated images
    the loop handed over with ``set_generated``.

    Args:
        root: folder where the data set lives on disk.
        batch_size: images per batch for every loader.
        num_workers: DataLoader worker processes (0 keeps loading in the main process; batches are
            tensor gathers, so workers rarely pay off).
        device_batches: keep the train and validation sets on the training device and gather every
            batch there (:class:`~selfloop.data.device_batches.DeviceBatches`) instead of a CPU
            DataLoader plus a copy per step. Same batches in the same order, bit for bit, and the
            same random numbers drawn, so a run's metrics are identical. Meant for small images
            (28-32 px), whose whole set takes a few hundred MB at most; one process only (not DDP), no
            workers.
    """

    num_classes: int
    num_subgroups: int
    # Subgroup ids of (generated) images where an exact attribute oracle exists (colour), used to
    # measure unbalanced generation u_t; None where the data set has none.
    subgroup_oracle: Callable[[torch.Tensor], torch.Tensor] | None = None
    channels: int
    image_size: int
    # How a trained classifier is evaluated: accuracy and bias across the hidden subgroups of the test
    # split, or (data sets with object masks and no subgroups) accuracy under object ablations.
    evaluation: Literal["subgroups", "ablations"] = "subgroups"

    def __init__(
        self, root: str = "data", batch_size: int = 64, num_workers: int = 0, device_batches: bool = False
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"--data.batch_size must be >= 1, got {batch_size}")
        if device_batches and num_workers > 0:
            raise ValueError(
                "--data.init_args.device_batches true gathers batches on the device in the main process; "
                f"set --data.init_args.num_workers 0 (got {num_workers})"
            )
        self.root = root
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device_batches = device_batches
        self.loader_seed = 0
        self._real: RealSplits | None = None
        self._generated: ImageSet | None = None
        self._real_index: torch.Tensor | None = None
        self.train_set: ImageSet | None = None

    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """A human-readable name per class (prompts, plots)."""

    @property
    @abstractmethod
    def subgroup_names(self) -> list[str]:
        """A name per subgroup index."""

    @abstractmethod
    def load_real(self) -> RealSplits:
        """Read the real data set from ``root`` (or memory) as uint8 tensors."""

    @property
    def real(self) -> RealSplits:
        """The real splits, loaded on first use."""
        if self._real is None:
            self._real = self.load_real()
        return self._real

    @property
    def test_set(self) -> ImageSet:
        """The subgroup-labelled test split used for every fairness evaluation."""
        return self.real.test

    def set_generated(self, generated: ImageSet | None, real_index: torch.Tensor | None = None) -> None:
        """Hand over the generated images (the queue's contents) for the next phases, and which real
        training images go with them (``None``: all)."""
        self._generated = generated
        self._real_index = real_index

    def setup(self, stage: str) -> None:
        real = self.real.train
        parts = [real if self._real_index is None else real.subset(self._real_index)]
        if self._generated is not None and len(self._generated):
            parts.append(self._generated)
        self.train_set = ImageSet.concat(parts)

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        # An explicit generator keyed to the phase makes the order independent of global RNG state.
        generator = torch.Generator().manual_seed(self.loader_seed)
        return self._loader(self.train_set, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.real.val, shuffle=False)

    def _loader(
        self, data: ImageSet, shuffle: bool, generator: torch.Generator | None = None
    ) -> DataLoader | DeviceBatches:
        if self.device_batches:
            return DeviceBatches(
                data, self.batch_size, shuffle=shuffle, generator=generator, device=self._batch_device()
            )
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=collate_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _batch_device(self) -> torch.device:
        """The device ``device_batches`` gathers on: the attached Trainer's, else the CPU."""
        trainer = self.trainer
        if trainer is None:
            return torch.device("cpu")
        if trainer.world_size > 1:
            raise ValueError(
                f"--data.init_args.device_batches true runs on one device, but this run has {trainer.world_size} "
                "processes; set it false there (the DataLoader path gives every process its own shard)"
            )
        return trainer.strategy.root_device
