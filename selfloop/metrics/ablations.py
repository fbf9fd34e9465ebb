"""Object ablations of Hard ImageNet (Moayeri et al., 2022), as pure batched tensor functions.

A classifier that recognises the object should lose accuracy once the object is removed; one that
relies on spurious context (the water around a snorkel, the face under sunglasses) keeps it. Three
ablations remove the object from images whose segmentation mask is known:

``ablate_object_gray``
    every object pixel (``mask`` true) is set to gray.
``ablate_box_gray``
    the bounding box around all object pixels is filled with gray (the object's shape is hidden too).
``ablate_box_tile``
    each object's own bounding box is filled with the image content beside it, see
    :func:`ablate_box_tile`.

Conventions:
    * Images are ``(N, C, H, W)``, uint8 in ``[0, 255]`` or float in ``[0, 1]``; the output has the
      input's dtype. Gray is 0.5, i.e. ``128`` for uint8 (``0.5 * 255 = 127.5`` rounded half up).
    * Masks and boxes follow :mod:`selfloop.data.segmented`: boolean ``(N, H, W)`` masks, int64
      ``(N, 4)`` inclusive ``(ymin, ymax, xmin, xmax)`` boxes, ``(-1, -1, -1, -1)`` for an image
      without object pixels, which every ablation leaves untouched.
    * ``ablate_box_gray`` takes one box per image around *all* its object pixels, as the release's
      ``replace_with_gray(keep_shape=False)`` does; ``ablate_box_tile`` boxes each connected object
      separately, as the release's ``tile`` does.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from selfloop.data.segmented import as_masks, boxes_from_masks

__all__ = [
    "GRAY_UINT8",
    "ablate_box_gray",
    "ablate_box_tile",
    "ablate_object_gray",
    "box_masks",
    "object_labels",
]

GRAY_UINT8 = 128
"""Gray for uint8 images: 0.5 * 255 = 127.5, rounded half up."""


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
    masks = as_masks(masks, images).to(images.device)
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


def object_labels(masks: Tensor) -> Tensor:
    """Number the connected objects of each mask as ``scipy.ndimage.label`` does on one image.

    Pixels are connected 4-wise (``scipy.ndimage.label``'s default, which the release uses), and
    the objects of each image are numbered ``1, 2, ...`` in the order of their first pixel in a
    row-major scan; 0 is background. Images never connect to each other.

    Args:
        masks: ``(N, H, W)`` or ``(N, 1, H, W)``; nonzero means object.

    Returns:
        int64 ``(N, H, W)`` object numbers, on the masks' device.
    """
    masks = as_masks(masks)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # 4-connected within an image only
    labels, _ = ndimage.label(masks.cpu().numpy(), structure=structure)
    labels = torch.from_numpy(labels).to(device=masks.device, dtype=torch.long)
    # One label call numbers the whole batch in scan order, so each image's labels are consecutive:
    # shift them to start at 1.
    flat = labels.flatten(1)
    first = torch.where(flat > 0, flat, torch.iinfo(torch.long).max).amin(1, keepdim=True)
    return torch.where(labels > 0, labels - first[:, :, None] + 1, 0)


def ablate_box_tile(images: Tensor, masks: Tensor) -> Tensor:
    """Fill each object's bounding box with the image content beside it (Moayeri et al.'s "tile").

    This is the ``tile`` ablation of the Hard ImageNet release (``ablations.py`` of
    github.com/mmoayeri/HardImageNet) without its slips (boxes one pixel short, rows and columns
    swapped when cutting the tile), batched over images. The connected objects of each mask (see
    :func:`object_labels`) are ablated one after another, in their label order. For an object with
    inclusive box rows ``ymin..ymax`` (height ``h``) and columns ``xmin..xmax`` (width ``w``), the
    four regions of the box's size that touch it are candidate tiles:

    ========  ==================================================  ===============================
    side      region (inclusive), before trimming                 depth ``t`` after trimming
    ========  ==================================================  ===============================
    below     rows ``ymax+1 .. ymax+h``, columns ``xmin..xmax``   rows up to the first blocked row
    above     rows ``ymin-h .. ymin-1``, columns ``xmin..xmax``   rows back to the last blocked row
    right     rows ``ymin..ymax``, columns ``xmax+1 .. xmax+w``   columns up to the first blocked one
    left      rows ``ymin..ymax``, columns ``xmin-w .. xmin-1``   columns back to the last blocked one
    ========  ==================================================  ===============================

    Each region is cut at the image border and, counting outwards from the box, at the first row
    (below/above) or column (right/left) that holds a pixel of any object within the box's span, so
    a tile never contains an object. The tile of the largest area wins (ties: below, above, right,
    left, the release's order). The box is then filled by repeating the tile along its axis, the
    tile's line next to the box landing on the box's opposite edge, as in the release:

    * below:  pixel ``(y, x)`` of the box takes ``(ymax + 1 + (y - ymin) % t, x)``;
    * above:  ``(ymin - 1 - (ymax - y) % t, x)``;
    * right:  ``(y, xmax + 1 + (x - xmin) % t)``;
    * left:   ``(y, xmin - 1 - (xmax - x) % t)``.

    With ``t`` equal to the box size this is a plain copy of the neighbouring region. As in the
    release, a later object's tile is read from the image as ablated so far: it may hold the fill
    of an earlier object's box, never an object pixel. An object without any tile (its box spans
    the image, or objects touch it on every side; the release divides by zero there) has its box
    filled with gray; an image without object pixels is left unchanged.

    Args:
        images: ``(N, C, H, W)`` uint8 or float.
        masks: ``(N, H, W)`` (or ``(N, 1, H, W)``), nonzero on the objects.

    Returns:
        A new tensor like ``images``.

    Raises:
        ValueError: for ``(N, 4)`` boxes in place of masks (the objects are boxed here), or masks
            that do not match the images.
    """
    _check_images(images)
    if masks.ndim == 2 and masks.shape[1] == 4:
        raise ValueError(
            f"ablate_box_tile takes the object masks (N, H, W) and boxes each connected object itself; "
            f"got {tuple(masks.shape)}, which looks like boxes: pass the masks the boxes came from"
        )
    masks = as_masks(masks, images).to(images.device)
    labels = object_labels(masks)
    count = int(labels.amax()) if labels.numel() else 0
    out = images.clone()
    for k in range(1, count + 1):
        out = _tile_boxes(out, boxes_from_masks(labels == k), masks)
    return out


def _tile_boxes(images: Tensor, boxes: Tensor, masks: Tensor) -> Tensor:
    """Fill one inclusive box per image with its largest adjacent tile free of ``masks`` pixels."""
    n, c, height, width = images.shape
    ymin, ymax, xmin, xmax = (boxes[:, i, None] for i in range(4))  # (N, 1)
    box_h, box_w = ymax - ymin + 1, xmax - xmin + 1
    y = torch.arange(height, device=images.device)[None]
    x = torch.arange(width, device=images.device)[None]
    in_rows = (y >= ymin) & (y <= ymax)
    in_cols = (x >= xmin) & (x <= xmax)
    # A row beside the box is blocked when an object crosses the box's columns there; a column, rows.
    blocked_rows = (masks & in_cols[:, None, :]).any(2)
    blocked_cols = (masks & in_rows[:, :, None]).any(1)
    first_below = torch.where(blocked_rows & (y > ymax), y, height).amin(1, keepdim=True)
    last_above = torch.where(blocked_rows & (y < ymin), y, -1).amax(1, keepdim=True)
    first_right = torch.where(blocked_cols & (x > xmax), x, width).amin(1, keepdim=True)
    last_left = torch.where(blocked_cols & (x < xmin), x, -1).amax(1, keepdim=True)
    depths = torch.stack(
        [
            torch.minimum(box_h, first_below - ymax - 1),  # below
            torch.minimum(box_h, ymin - 1 - last_above),  # above
            torch.minimum(box_w, first_right - xmax - 1),  # right
            torch.minimum(box_w, xmin - 1 - last_left),  # left
        ]
    ).clamp(min=0)  # (4, N, 1)
    areas = (depths * torch.stack([box_w, box_w, box_h, box_h]))[..., 0]  # (4, N)
    side = areas.argmax(0)[:, None, None]  # the first maximum: the release's tie order
    fillable = areas.amax(0)[:, None, None] > 0
    t = depths[..., None].clamp(min=1)  # (4, N, 1, 1); sides not chosen must not divide by 0

    ymin, ymax, xmin, xmax = (b[..., None] for b in (ymin, ymax, xmin, xmax))  # (N, 1, 1)
    y, x = y[:, :, None], x[:, None, :]
    src_y = torch.where(side == 0, ymax + 1 + (y - ymin) % t[0], ymin - 1 - (ymax - y) % t[1])
    src_x = torch.where(side == 2, xmax + 1 + (x - xmin) % t[2], xmin - 1 - (xmax - x) % t[3])
    inside = box_masks(boxes, height, width)
    vertical = inside & fillable & (side <= 1)
    horizontal = inside & fillable & (side >= 2)
    src_y = torch.where(vertical, src_y, y).clamp(0, height - 1)
    src_x = torch.where(horizontal, src_x, x).clamp(0, width - 1)
    index = (src_y * width + src_x).reshape(n, 1, height * width).expand(n, c, height * width)
    tiled = images.reshape(n, c, height * width).gather(2, index).reshape(n, c, height, width)
    return torch.where((inside & ~fillable)[:, None], _gray_like(images), tiled)
