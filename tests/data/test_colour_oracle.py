"""The colour oracle reads the painted colour of colourised digits back exactly, and abstains on mixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfloop.data.coloring import colorize
from selfloop.data.colour_oracle import AMBIGUOUS, colour_oracle
from selfloop.data.image_set import UNKNOWN_SUBGROUP


def _strokes(rgb: tuple[int, int, int], size: int = 8) -> np.ndarray:
    """One image: a cross-shaped stroke of colour ``rgb`` on black."""
    image = np.zeros((1, 3, size, size), dtype=np.uint8)
    for channel, value in enumerate(rgb):
        image[0, channel, size // 2, 1:-1] = value
        image[0, channel, 1:-1, size // 2] = value
    return image


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
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        colour_oracle(np.zeros((3, 4, 4), dtype=np.uint8))


def test_ambiguous_is_minus_one_like_unknown_subgroup() -> None:
    assert AMBIGUOUS == UNKNOWN_SUBGROUP == -1


@pytest.mark.parametrize(("rgb", "expected"), [((255, 0, 0), 0), ((0, 200, 0), 1), ((0, 0, 90), 2)])
def test_pure_strokes_are_exact(rgb, expected) -> None:
    assert colour_oracle(_strokes(rgb)).tolist() == [expected]
    assert colour_oracle(_strokes(rgb), dominance=0.99).tolist() == [expected]  # share is exactly 1


@pytest.mark.parametrize(
    "rgb",
    [
        (255, 255, 0),  # yellow: red and green tie (share 1/2); a plain argmax called it red
        (200, 0, 200),  # magenta
        (0, 128, 128),  # cyan
        (255, 255, 255),  # white (share 1/3)
        (128, 128, 128),  # grey
        (200, 150, 120),  # no strict majority: 200 < 150 + 120
    ],
)
def test_mixed_colours_are_ambiguous(rgb) -> None:
    assert colour_oracle(_strokes(rgb)).tolist() == [AMBIGUOUS]
    as_tensor = colour_oracle(torch.from_numpy(_strokes(rgb)))
    assert as_tensor.dtype == torch.int64 and as_tensor.tolist() == [AMBIGUOUS]


def test_noisy_but_dominant_colour_keeps_its_colour() -> None:
    generator = np.random.default_rng(0)
    images = np.zeros((30, 3, 12, 12), dtype=np.uint8)
    colors = np.arange(30) % 3
    for i, colour in enumerate(colors):
        # Every channel carries noise up to 60 everywhere; the painted channel has strokes at 160..255.
        images[i] = generator.integers(0, 61, (3, 12, 12))
        strokes = generator.random((12, 12)) > 0.6
        strokes[6, 6] = True
        images[i, colour][strokes] = generator.integers(160, 256, int(strokes.sum()))
    assert np.array_equal(colour_oracle(images), colors)
    # Orange (share 2/3) is red at the default dominance, ambiguous at a stricter one.
    assert colour_oracle(_strokes((240, 120, 0))).tolist() == [0]
    assert colour_oracle(_strokes((240, 120, 0)), dominance=0.7).tolist() == [AMBIGUOUS]


def test_blank_or_faint_images_are_ambiguous() -> None:
    blank = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    assert colour_oracle(blank).tolist() == [AMBIGUOUS, AMBIGUOUS]
    assert colour_oracle(blank, dominance=0.0).tolist() == [AMBIGUOUS, AMBIGUOUS]
    faint = np.zeros((1, 3, 4, 4), dtype=np.uint8)
    faint[0, 0] = 63  # all red, but not one pixel reaches the stroke threshold
    assert colour_oracle(faint).tolist() == [AMBIGUOUS]
    assert colour_oracle(faint, threshold=63).tolist() == [0]
    mixed = np.concatenate([_strokes((0, 255, 0)), _strokes((0, 0, 0)), _strokes((9, 9, 9))])
    assert colour_oracle(mixed).tolist() == [1, AMBIGUOUS, AMBIGUOUS]


@pytest.mark.parametrize("dominance", [-0.1, 1.0, 1.5])
def test_bad_dominance_raises(dominance) -> None:
    with pytest.raises(ValueError, match=r"dominance must lie in \[0, 1\)"):
        colour_oracle(_strokes((255, 0, 0)), dominance=dominance)
