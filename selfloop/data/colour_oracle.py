"""The exact subgroup oracle of colourised digits: the dominant colour channel of the strokes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def colour_oracle(images_uint8: Any, threshold: int = 64) -> Any:
    """The subgroup of colourised digits: the dominant colour channel of the stroke pixels.

    Stroke pixels are those whose brightest channel reaches ``threshold``; the subgroup is the argmax
    over channels of the channel sums over those pixels. For the colourised digits (strokes in one
    channel, the others 0) this is exact; for generated images, ignoring the faint background keeps
    noise from outvoting the strokes. An image without any stroke pixel falls back to the sums over all
    its pixels (an all-black image gets subgroup 0). Ties go to the lower channel.

    Args:
        images_uint8: ``(N, C, H, W)`` uint8 images, channels first (red, green, blue for the digits);
            a torch tensor (any device) or an array.
        threshold: the intensity (0..255) from which a pixel counts as stroke.

    Returns:
        int64 subgroup ids of shape ``(N,)``: a CPU torch tensor when the input is a tensor, else an array.

    Raises:
        ValueError: when the images are not 4-D.
    """
    is_tensor = isinstance(images_uint8, torch.Tensor)
    images = images_uint8.detach().cpu().numpy() if is_tensor else np.asarray(images_uint8)
    if images.ndim != 4:
        raise ValueError(f"colour_oracle expects (N, C, H, W) images; got shape {images.shape}")
    pixels = images.astype(np.int64)
    stroke = pixels.max(axis=1, keepdims=True) >= threshold
    sums = (pixels * stroke).sum(axis=(2, 3))
    empty = ~stroke.any(axis=(1, 2, 3))
    if empty.any():
        sums[empty] = pixels[empty].sum(axis=(2, 3))
    ids = sums.argmax(axis=1).astype(np.int64)
    return torch.from_numpy(ids) if is_tensor else ids
