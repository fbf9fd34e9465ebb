"""The real data relabelled by (class, subgroup) cell, to train a subgroup oracle."""

from __future__ import annotations

from selfloop.data.base import RealSplits, SelfLoopDataModule
from selfloop.data.image_set import ImageSet


class SubgroupCellData(SelfLoopDataModule):
    """A data set's real splits with label ``class * G + subgroup``: what a subgroup oracle learns.

    Where no exact attribute oracle exists (CIFAR-20's fine classes), a classifier trained on the real
    set alone reads the subgroups of generated images; its cell prediction modulo G is the subgroup.

    Args:
        data: the data set whose real splits are relabelled.
    """

    def __init__(self, data: SelfLoopDataModule) -> None:
        super().__init__(root=data.root, batch_size=data.batch_size, num_workers=data.num_workers)
        self.data = data
        self.num_classes = data.num_classes * data.num_subgroups
        self.num_subgroups = data.num_subgroups
        self.channels = data.channels
        self.image_size = data.image_size

    @property
    def class_names(self) -> list[str]:
        return [f"{c}/{g}" for c in self.data.class_names for g in self.data.subgroup_names]

    @property
    def subgroup_names(self) -> list[str]:
        return self.data.subgroup_names

    def load_real(self) -> RealSplits:
        real = self.data.real
        return RealSplits(
            train=self._cells(real.train), val=self._cells(real.val), test=self._cells(real.test)
        )

    def _cells(self, split: ImageSet) -> ImageSet:
        return ImageSet(split.images, split.labels * self.num_subgroups + split.subgroups, split.subgroups)
