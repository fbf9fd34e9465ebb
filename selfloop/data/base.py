"""The LightningDataModule base: real data loaded once, train set rebuilt from real + queue every phase."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

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

    def __init__(self, root: str = "data", batch_size: int = 64, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"--data.batch_size must be >= 1, got {batch_size}")
        self.root = root
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.loader_seed = 0
        self._real: RealSplits | None = None
        self._generated: ImageSet | None = None
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

    def set_generated(self, generated: ImageSet | None) -> None:
        """Hand over the generated images (the queue's contents) for the next phases."""
        self._generated = generated

    def setup(self, stage: str) -> None:
        parts = [self.real.train]
        if self._generated is not None and len(self._generated):
            parts.append(self._generated)
        self.train_set = ImageSet.concat(parts)

    def train_dataloader(self) -> DataLoader:
        # An explicit generator keyed to the phase makes the order independent of global RNG state.
        generator = torch.Generator().manual_seed(self.loader_seed)
        return self._loader(self.train_set, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.real.val, shuffle=False)

    def _loader(self, data: ImageSet, shuffle: bool, generator: torch.Generator | None = None) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=collate_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
