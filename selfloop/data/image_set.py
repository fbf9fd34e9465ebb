"""In-memory image sets as uint8 tensors, batched without per-item Python."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

UNKNOWN_SUBGROUP = -1
"""Subgroup id of generated images: the generator is never told the hidden attribute."""


@dataclass(frozen=True)
class ImageSet:
    """Images with their class labels and hidden subgroup ids.

    Images stay uint8 ``(N, C, H, W)`` in memory (4x smaller than float and cheap to move to a GPU);
    models convert them per batch.

    Args:
        images: uint8 tensor ``(N, C, H, W)``.
        labels: int64 tensor ``(N,)`` of class ids.
        subgroups: int64 tensor ``(N,)`` of subgroup ids, ``UNKNOWN_SUBGROUP`` where unknown.
    """

    images: Tensor
    labels: Tensor
    subgroups: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.labels.shape != (n,) or self.subgroups.shape != (n,):
            raise ValueError(
                f"labels {tuple(self.labels.shape)} and subgroups {tuple(self.subgroups.shape)} must be ({n},)"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index], self.labels[index], self.subgroups[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        # DataLoader hands the whole batch of indices here: one gather per tensor, no per-item collate.
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.images[index], self.labels[index], self.subgroups[index]

    def subset(self, index: Tensor) -> ImageSet:
        """The rows selected by an index or boolean mask tensor."""
        return ImageSet(self.images[index], self.labels[index], self.subgroups[index])

    @staticmethod
    def concat(parts: Sequence[ImageSet]) -> ImageSet:
        """Concatenate image sets of the same image shape."""
        return ImageSet(
            torch.cat([p.images for p in parts]),
            torch.cat([p.labels for p in parts]),
            torch.cat([p.subgroups for p in parts]),
        )

    @staticmethod
    def generated(images: Tensor, labels: Tensor) -> ImageSet:
        """An image set of generated images, whose subgroups are unknown."""
        return ImageSet(images, labels.long(), torch.full_like(labels, UNKNOWN_SUBGROUP, dtype=torch.long))


def collate_batch(batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Collate function for ``ImageSet``: ``__getitems__`` already returns the stacked batch."""
    return batch
