"""Object ablations of Hard ImageNet (Moayeri et al., 2022), as pure batched tensor functions.

A classifier that recognises the object should lose accuracy once the object is removed; one that
relies on spurious context (the water around a snorkel, the face under sunglasses) keeps it. Three
ablations remove the object from images whose segmentation mask is known:

``ablate_object_gray``
    every object pixel (``mask`` true) is set to gray.
``ablate_box_gray``
    the object's bounding box is filled with gray (the shape of the object is hidden too).
``ablate_box_tile``
    the bounding box is filled with the image content beside it, see :func:`ablate_box_tile`.

Conventions:
    * Images are ``(N, C, H, W)``, uint8 in ``[0, 255]`` or float in ``[0, 1]``; the output has the
      input's dtype. Gray is 0.5, i.e. ``128`` for uint8 (``0.5 * 255 = 127.5`` rounded half up).
    * Masks are boolean ``(N, H, W)`` (``(N, 1, H, W)`` and non-boolean masks are accepted:
      nonzero means object).
    * Boxes are int64 ``(N, 4)`` rows ``(ymin, ymax, xmin, xmax)`` with *inclusive* bounds: the box
      covers rows ``ymin..ymax`` and columns ``xmin..xmax``. An image without object pixels gets the
      empty box ``(-1, -1, -1, -1)``, which every ablation leaves untouched.
    * One box per image encloses *all* its object pixels (the original code boxes each connected
      instance separately); as a consequence the regions beside the box hold no object pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "EMPTY_BOX",
    "GRAY_UINT8",
    "SegmentedImages",
    "ablate_box_gray",
    "ablate_box_tile",
    "ablate_object_gray",
    "box_masks",
    "boxes_from_masks",
]

GRAY_UINT8 = 128
"""Gray for uint8 images: 0.5 * 255 = 127.5, rounded half up."""

EMPTY_BOX = (-1, -1, -1, -1)
"""The box of an image without object pixels."""


@dataclass(frozen=True)
class SegmentedImages:
    """Labelled images with an object mask each, the input of the ablation evaluation.

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)`` class ids.
        masks: bool ``(N, H, W)``, true on object pixels.
        boxes: int64 ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)``; ``None`` derives them from
            the masks with :func:`boxes_from_masks`.
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


def _as_masks(masks: Tensor, images: Tensor | None = None) -> Tensor:
    """Boolean ``(N, H, W)`` masks from ``(N, H, W)`` or ``(N, 1, H, W)`` input."""
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) or (N, 1, H, W), got {tuple(masks.shape)}")
    if images is not None and (masks.shape[0] != images.shape[0] or masks.shape[1:] != images.shape[2:]):
        raise ValueError(f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    return masks if masks.dtype == torch.bool else masks != 0


def _check_images(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")


def _check_boxes(boxes: Tensor, images: Tensor) -> Tensor:
    if boxes.shape != (images.shape[0], 4):
        raise ValueError(
            f"boxes must be ({images.shape[0]}, 4) rows (ymin, ymax, xmin, xmax), got {tuple(boxes.shape)}"
        )
    return boxes.to(device=images.device, dtype=torch.long)


def _gray_like(images: Tensor) -> Tensor:
    value = GRAY_UINT8 if images.dtype == torch.uint8 else 0.5
    return torch.tensor(value, dtype=images.dtype, device=images.device)


def boxes_from_masks(masks: Tensor) -> Tensor:
    """The bounding box of each mask's object pixels.

    Args:
        masks: ``(N, H, W)`` or ``(N, 1, H, W)``; nonzero means object.

    Returns:
        int64 ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)``; ``(-1, -1, -1, -1)`` for an empty mask.
    """
    masks = _as_masks(masks)
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


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boolean ``(N, H, W)`` masks, true inside each inclusive box (all false for an empty box)."""
    boxes = boxes.long()
    ymin, ymax, xmin, xmax = (boxes[:, i, None, None] for i in range(4))
    y = torch.arange(height, device=boxes.device)[None, :, None]
    x = torch.arange(width, device=boxes.device)[None, None, :]
    return (y >= ymin) & (y <= ymax) & (x >= xmin) & (x <= xmax)


def ablate_object_gray(images: Tensor, masks: Tensor) -> Tensor:
    """Set every object pixel to gray (0.5; 128 for uint8), in every channel.

    Args:
        images: ``(N, C, H, W)`` uint8 or float in [0, 1].
        masks: ``(N, H, W)`` (or ``(N, 1, H, W)``), nonzero on the object.

    Returns:
        A new tensor like ``images``.
    """
    _check_images(images)
    masks = _as_masks(masks, images).to(images.device)
    return torch.where(masks[:, None], _gray_like(images), images)


def ablate_box_gray(images: Tensor, boxes: Tensor) -> Tensor:
    """Fill each inclusive bounding box with gray (0.5; 128 for uint8).

    Args:
        images: ``(N, C, H, W)`` uint8 or float in [0, 1].
        boxes: ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)``.

    Returns:
        A new tensor like ``images``.
    """
    _check_images(images)
    boxes = _check_boxes(boxes, images)
    inside = box_masks(boxes, images.shape[2], images.shape[3])
    return torch.where(inside[:, None], _gray_like(images), images)


def ablate_box_tile(images: Tensor, boxes: Tensor) -> Tensor:
    """Fill each bounding box with the image content beside it (Moayeri et al.'s "tile" ablation).

    For a box of height ``h`` and width ``w`` the four regions of the same size that touch it are
    considered, each clipped at the image border:

    ========  ======================================================  =========================
    side      region (inclusive)                                      strip size ``t``
    ========  ======================================================  =========================
    right     rows ``ymin..ymax``, columns ``xmax+1 .. xmax+t``       ``min(w, W-1-xmax)`` cols
    left      rows ``ymin..ymax``, columns ``xmin-t .. xmin-1``       ``min(w, xmin)`` cols
    below     rows ``ymax+1 .. ymax+t``, columns ``xmin..xmax``       ``min(h, H-1-ymax)`` rows
    above     rows ``ymin-t .. ymin-1``, columns ``xmin..xmax``       ``min(h, ymin)`` rows
    ========  ======================================================  =========================

    The region with the largest area wins (ties: right, left, below, above, in that order). The
    box is then filled by repeating that strip periodically along its axis, anchored as in the
    reference implementation:

    * right:  pixel ``(y, x)`` of the box takes ``(y, xmax + 1 + (x - xmin) % t)``;
    * left:   ``(y, xmin - 1 - (xmax - x) % t)``;
    * below:  ``(ymax + 1 + (y - ymin) % t, x)``;
    * above:  ``(ymin - 1 - (ymax - y) % t, x)``.

    When the strip is as large as the box (``t == w`` or ``t == h``) this is a plain copy of the
    neighbouring region, translated by the box size. A box that spans the whole image has no
    neighbouring region and is filled with gray; an empty box leaves the image unchanged.

    Args:
        images: ``(N, C, H, W)`` uint8 or float.
        boxes: ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)``, e.g. from :func:`boxes_from_masks`.

    Returns:
        A new tensor like ``images``.
    """
    _check_images(images)
    boxes = _check_boxes(boxes, images)
    n, c, height, width = images.shape
    ymin, ymax, xmin, xmax = (boxes[:, i, None, None] for i in range(4))
    box_h, box_w = ymax - ymin + 1, xmax - xmin + 1
    strips = torch.stack(
        [
            torch.minimum(box_w, width - 1 - xmax),  # right
            torch.minimum(box_w, xmin),  # left
            torch.minimum(box_h, height - 1 - ymax),  # below
            torch.minimum(box_h, ymin),  # above
        ]
    ).clamp(min=0)  # (4, N, 1, 1)
    areas = strips * torch.stack([box_h, box_h, box_w, box_w])
    side = areas.flatten(1).argmax(0)[:, None, None]  # first maximum: the tie order above
    fillable = areas.flatten(1).amax(0)[:, None, None] > 0
    t = strips.clamp(min=1)  # the modulus of sides that are not chosen must not be 0

    y = torch.arange(height, device=images.device)[None, :, None]
    x = torch.arange(width, device=images.device)[None, None, :]
    src_x = torch.where(side == 0, xmax + 1 + (x - xmin) % t[0], xmin - 1 - (xmax - x) % t[1])
    src_y = torch.where(side == 2, ymax + 1 + (y - ymin) % t[2], ymin - 1 - (ymax - y) % t[3])
    inside = box_masks(boxes, height, width)
    horizontal = inside & fillable & (side <= 1)
    vertical = inside & fillable & (side >= 2)
    src_x = torch.where(horizontal, src_x, x).clamp(0, width - 1)
    src_y = torch.where(vertical, src_y, y).clamp(0, height - 1)
    index = (src_y * width + src_x).reshape(n, 1, height * width).expand(n, c, height * width)
    tiled = images.reshape(n, c, height * width).gather(2, index).reshape(n, c, height, width)
    return torch.where((inside & ~fillable)[:, None], _gray_like(images), tiled)
