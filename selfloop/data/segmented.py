"""Labelled images with object masks and bounding boxes: the input of the Hard ImageNet ablations.

Conventions:
    * Masks are boolean ``(N, H, W)`` (``(N, 1, H, W)`` and non-boolean masks are accepted by
      :func:`as_masks`: nonzero means object).
    * Boxes are int64 ``(N, 4)`` rows ``(ymin, ymax, xmin, xmax)`` with *inclusive* bounds: the box
      covers rows ``ymin..ymax`` and columns ``xmin..xmax``. An image without object pixels gets the
      empty box :data:`EMPTY_BOX`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["EMPTY_BOX", "SegmentedImages", "as_masks", "boxes_from_masks"]

EMPTY_BOX = (-1, -1, -1, -1)
"""The box of an image without object pixels."""


def as_masks(masks: Tensor, images: Tensor | None = None) -> Tensor:
    """Boolean ``(N, H, W)`` masks from ``(N, H, W)`` or ``(N, 1, H, W)`` input (nonzero means object).

    Args:
        masks: the masks.
        images: when given, ``(N, C, H, W)`` images the masks must match.

    Raises:
        ValueError: for any other shape, or masks that do not match ``images``.
    """
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) or (N, 1, H, W), got {tuple(masks.shape)}")
    if images is not None and (masks.shape[0] != images.shape[0] or masks.shape[1:] != images.shape[2:]):
        raise ValueError(f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    return masks if masks.dtype == torch.bool else masks != 0


def boxes_from_masks(masks: Tensor) -> Tensor:
    """The bounding box of each mask's object pixels.

    Args:
        masks: ``(N, H, W)`` or ``(N, 1, H, W)``; nonzero means object.

    Returns:
        int64 ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)``; ``(-1, -1, -1, -1)`` for an empty mask.
    """
    masks = as_masks(masks)
    n, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    # argmax of a 0/1 tensor returns the first maximum: the first row/column holding the object.
    ymin = rows.byte().argmax(1)
    ymax = h - 1 - rows.flip(1).byte().argmax(1)
    xmin = cols.byte().argmax(1)
    xmax = w - 1 - cols.flip(1).byte().argmax(1)
    boxes = torch.stack([ymin, ymax, xmin, xmax], dim=1).long()
    empty = ~rows.any(1)
    boxes[empty] = torch.tensor(EMPTY_BOX, dtype=torch.long, device=boxes.device)
    return boxes


@dataclass(frozen=True)
class SegmentedImages:
    """Labelled images with an object mask each, the input of the ablation evaluation.

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)`` class ids.
        masks: bool ``(N, H, W)``, true on object pixels.
        boxes: int64 ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)`` around all object pixels of an
            image; ``None`` derives them from the masks with :func:`boxes_from_masks`.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    boxes: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(self.images.shape)}")
        if self.masks.shape != (n, *self.images.shape[2:]):
            raise ValueError(f"masks must be {(n, *self.images.shape[2:])}, got {tuple(self.masks.shape)}")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must be ({n},), got {tuple(self.labels.shape)}")
        if self.boxes is None:
            object.__setattr__(self, "boxes", boxes_from_masks(self.masks))
        elif self.boxes.shape != (n, 4):
            raise ValueError(f"boxes must be ({n}, 4), got {tuple(self.boxes.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]
