"""The colour oracle reads the painted colour of colourised digits back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfloop.data.coloring import colorize
from selfloop.data.colour_oracle import colour_oracle


def test_colour_oracle_is_exact_on_colourised_digits() -> None:
    generator = torch.Generator().manual_seed(0)
    gray = (torch.rand(30, 1, 12, 12, generator=generator) > 0.7).to(torch.uint8) * torch.randint(
        1, 256, (30, 1, 12, 12), generator=generator, dtype=torch.uint8
    )
    gray[:, :, 5, 5] = 255  # every digit has a stroke
    colors = torch.arange(30) % 3
    predicted = colour_oracle(colorize(gray, colors))
    assert isinstance(predicted, torch.Tensor) and predicted.dtype == torch.int64
    assert torch.equal(predicted, colors)
    assert np.array_equal(colour_oracle(colorize(gray, colors).numpy()), colors.numpy())


def test_colour_oracle_ignores_background_noise() -> None:
    # 3 red stroke pixels (sum 765) on a faint blue haze over all 64 pixels (sum 1280): the haze would win
    # an argmax over all pixels, but it is below the stroke threshold.
    image = np.zeros((1, 3, 8, 8), dtype=np.uint8)
    image[0, 2] = 20
    image[0, 0, 3, 2:5] = 255
    assert colour_oracle(image).tolist() == [0]
    image[0, 0, 3, 2:5] = 0
    image[0, 1, 0, 0] = 200  # one green stroke pixel
    assert colour_oracle(image).tolist() == [1]
    assert colour_oracle(np.zeros((2, 3, 4, 4), dtype=np.uint8)).tolist() == [0, 0]  # blank: subgroup 0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        colour_oracle(np.zeros((3, 4, 4), dtype=np.uint8))
