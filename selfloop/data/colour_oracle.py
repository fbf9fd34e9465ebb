"""The exact subgroup oracle of colourised digits: the dominant colour channel of the strokes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

AMBIGUOUS = -1
"""Subgroup id of an image whose colour the oracle will not read: no stroke, or no dominant channel.

Equal to ``selfloop.data.image_set.UNKNOWN_SUBGROUP`` on purpose: either way the subgroup is not known.
"""


def colour_oracle(images_uint8: Any, threshold: int = 64, dominance: float = 0.5) -> Any:
    """The subgroup of colourised digits: the dominant colour channel of the stroke pixels.

    Stroke pixels are those whose brightest channel reaches ``threshold``; ignoring the fainter pixels
    keeps a generated image's background haze from outvoting its strokes. Let ``s_k`` be the sum of
    channel ``k`` over the stroke pixels and ``share = max_k s_k / sum_k s_k``. The subgroup is
    ``argmax_k s_k`` when ``share > dominance``; otherwise, and when the image has no stroke pixel at
    all, it is :data:`AMBIGUOUS` (-1).

    Why this rule: a plain argmax reads every mixed colour as its lowest tied channel, so yellow (R = G),
    magenta, white and grey strokes all became "red", and the mixed-colour samples a GAN draws between
    modes inflated one subgroup of ``u_t``. The default ``dominance = 0.5`` is the weakest threshold that
    asks the winning channel for a strict majority of the stroke intensity (more than all other channels
    together), for any number of channels: it abstains on every two-channel tie (share exactly 1/2) and
    on white and grey (1/3), and on nothing with a clear majority, such as a red digit whose green and
    blue noise together stay below its red intensity. Raise it to abstain on more mixtures (e.g.
    orange, share 2/3, passes 0.5 but not 0.7); ``dominance = 0`` abstains on blank images only.

    For the colourised digits (strokes in one channel, the others 0) ``share = 1``, so the oracle is
    exact whenever the digit has a pixel of at least ``threshold`` (every real digit does).

    Args:
        images_uint8: ``(N, C, H, W)`` uint8 images, channels first (red, green, blue for the digits);
            a torch tensor (any device) or an array.
        threshold: the intensity (0..255) from which a pixel counts as stroke.
        dominance: in ``[0, 1)``; the share of the stroke intensity that the brightest channel must
            exceed for the image to get a subgroup.

    Returns:
        int64 subgroup ids of shape ``(N,)`` in ``[0, C)`` or :data:`AMBIGUOUS`: a CPU torch tensor when
        the input is a tensor, else an array.

    Raises:
        ValueError: when the images are not 4-D or ``dominance`` is outside ``[0, 1)``.

    Example:
        >>> image = np.zeros((3, 3, 2, 2), dtype=np.uint8)
        >>> image[0, 1] = 200  # green
        >>> image[1, :2] = 200  # yellow: red and green tie
        >>> colour_oracle(image).tolist()  # the third image is blank
        [1, -1, -1]
    """
    if not 0.0 <= dominance < 1.0:
        raise ValueError(f"colour_oracle: dominance must lie in [0, 1), got {dominance}")
    is_tensor = isinstance(images_uint8, torch.Tensor)
    images = images_uint8.detach().cpu().numpy() if is_tensor else np.asarray(images_uint8)
    if images.ndim != 4:
        raise ValueError(f"colour_oracle expects (N, C, H, W) images; got shape {images.shape}")
    pixels = images.astype(np.int64)
    stroke = pixels.max(axis=1, keepdims=True) >= threshold
    sums = (pixels * stroke).sum(axis=(2, 3))
    total = sums.sum(axis=1)
    # total == 0: no stroke pixel (or, with threshold 0, a black image); nothing to read a colour from.
    # Integer sums are exact in float64, so a tie such as yellow gives share == 0.5 exactly.
    ambiguous = (total == 0) | (sums.max(axis=1) <= dominance * total)
    ids = np.where(ambiguous, AMBIGUOUS, sums.argmax(axis=1)).astype(np.int64)
    return torch.from_numpy(ids) if is_tensor else ids
